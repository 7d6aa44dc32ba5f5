# Recipes for working on NoTIP. `./just <recipe>` bootstraps .venv on a fresh machine;
# with just already installed, `just <recipe>` does the same.

set shell := ["bash", "-euo", "pipefail", "-c"]

# list the recipes
default:
    @{{just_executable()}} --list

# create and fill .venv when it is missing or older than pyproject.toml (./just does it)
venv:
    @./just --version > /dev/null

# run the whole test suite (real nats-server and PostgreSQL, no Docker)
test *ARGS: venv
    .venv/bin/python -m pytest {{ARGS}}

# run the whole platform locally (embedded: no Docker)
dev *ARGS: venv
    .venv/bin/notip dev {{ARGS}}

# start the platform with Docker compose (COMPOSE_PROFILES=observability adds Prometheus and Grafana)
up *ARGS:
    docker compose up -d --build {{ARGS}}

# stop the compose platform, observability included (`just down -v` also deletes its volumes)
down *ARGS:
    docker compose --profile observability down {{ARGS}}

# follow the compose logs (`just logs consumer` for one service)
logs *ARGS:
    docker compose --profile observability logs -f {{ARGS}}

# regenerate the gRPC/protobuf stubs from proto/
proto: venv
    .venv/bin/python -m notip.protogen

# lint, format check and type check
lint: venv
    .venv/bin/ruff check notip tests bench
    .venv/bin/ruff format --check notip tests bench
    .venv/bin/mypy notip bench

# benchmarks (short profile; pass --full for the long one)
bench *ARGS: venv
    .venv/bin/python -m bench {{ARGS}}
