# Recipes for working on NoTIP. `./just <recipe>` bootstraps .venv on a fresh machine;
# with just already installed, `just <recipe>` does the same.

set shell := ["bash", "-euo", "pipefail", "-c"]

# list the recipes
default:
    @{{just_executable()}} --list

# create .venv, or sync it to uv.lock when uv.lock or pyproject.toml changed (./just does it)
venv:
    @./just --version > /dev/null

# Run `just lock` after changing a dependency in pyproject.toml, and commit uv.lock
# with it (tests/unit/test_lock.py fails until then). pyproject.toml keeps floors; the
# lock pins exact versions with hashes, for every Python in requires-python, and is
# what ./just, CI and the image install. `.venv/bin/uv lock --upgrade` moves everything
# to the newest versions the floors allow. The guards around private library
# attributes (notip/guards.py) were verified with the locked nats-py 2.16.0,
# trio-asyncio 0.16.0, trio 0.35.0 and grpcio 1.85.3: when a re-lock moves one of
# them, re-check those guards and run the whole suite before committing.

# re-resolve uv.lock from pyproject.toml (after changing a dependency)
lock: venv
    .venv/bin/uv lock

# run the whole test suite (real nats-server and PostgreSQL, no Docker)
test *ARGS: venv
    .venv/bin/python -m pytest {{ARGS}}

# run the whole platform locally (embedded: no Docker)
dev *ARGS: venv
    .venv/bin/notip dev {{ARGS}}

# The NATS the compose daemons connect to (compose.yaml's NOTIP_NATS_URL): when
# COMPOSE_PROFILES names `cluster`, the profile's three nodes; otherwise empty, which
# compose.yaml reads as the single `nats`. A NOTIP_NATS_URL of your own wins.
# docs/operations.md#cluster-profile
compose_nats_url := env("NOTIP_NATS_URL", if env("COMPOSE_PROFILES", "") =~ '(^|,) *cluster *(,|$)' { "tls://nats-1:4222,tls://nats-2:4222,tls://nats-3:4222" } else { "" })

# start the platform with Docker compose (COMPOSE_PROFILES=observability adds Prometheus and Grafana, COMPOSE_PROFILES=cluster runs it on three NATS nodes)
up *ARGS:
    NOTIP_NATS_URL={{quote(compose_nats_url)}} docker compose up -d --build {{ARGS}}

# stop the compose platform, every profile included (`just down -v` also deletes its volumes)
down *ARGS:
    docker compose --profile observability --profile cluster down {{ARGS}}

# follow the compose logs (`just logs consumer` for one service)
logs *ARGS:
    docker compose --profile observability --profile cluster logs -f {{ARGS}}

# regenerate the gRPC/protobuf stubs from proto/
proto: venv
    .venv/bin/python -m notip.protogen

# lint, format check and type check
lint: venv
    .venv/bin/ruff check notip tests bench
    .venv/bin/ruff format --check notip tests bench
    .venv/bin/mypy notip bench tests

# benchmarks (short profile; pass --full for the long one)
bench *ARGS: venv
    .venv/bin/python -m bench {{ARGS}}
