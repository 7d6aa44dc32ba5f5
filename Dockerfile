# syntax=docker/dockerfile:1
# One image for every `notip` command:
#   docker run --rm notip:dev --help
#   docker run … notip:dev consumer | simulator | provisioning | mgmt | pki init --dir /pki | …
# Multi-stage: the build stage makes a virtualenv in /opt/venv; the runtime stage is the
# same slim Python image with that venv copied in, running as an unprivileged user.

ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

# --- build ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
# uv installs exactly the versions of uv.lock, hashes checked, into /opt/venv (the venv
# the runtime stage copies); uv itself stays in this stage. Its version is the one
# ./just pins. No cache dirs in the layers, .pyc compiled at install time.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
RUN pip install uv==0.13.9 \
 && python -m venv /opt/venv
WORKDIR /src

# Runtime dependencies first, from the lock alone: this layer stays cached until
# uv.lock or pyproject.toml changes (every dependency ships wheels, no compiler needed).
# --frozen: the lock as it is, never re-resolved; no --extra: the dev tools stay out.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself (not editable).
COPY README.md ./
COPY notip ./notip
RUN uv sync --frozen --no-dev --no-editable \
 && /opt/venv/bin/notip --help > /dev/null

# --- runtime --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="notip" \
      org.opencontainers.image.description="NoTIP daemons on Trio: data consumer, gateway simulator, platform stand-ins"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# uid/gid 10001: not root, and not a uid the base image or the host is likely to use.
# The directories below are mount points for named volumes; a fresh named volume takes
# their ownership, so the unprivileged user can write the PKI, the NATS config and its
# SQLite state there.
RUN groupadd --system --gid 10001 notip \
 && useradd --system --uid 10001 --gid notip --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin notip \
 && install -d -o 10001 -g 10001 -m 0755 /data /pki /nats-config

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/notip-healthcheck

USER 10001:10001
WORKDIR /data

# provisioning 3000, mgmt 8080, simulator REST 8090 and gRPC 50051, metrics 9090
EXPOSE 3000 8080 8090 9090 50051

# Every daemon turns the first SIGTERM (or SIGINT) into a cancellation of its nursery
# (notip/runner.py): in-flight work finishes under shielded, time-limited clean-up and
# the process exits 0; a second signal forces the exit.
STOPSIGNAL SIGTERM

# Works for every command: the probe finds the running sub-command and asks its health
# endpoint (see deploy/healthcheck.py); one-shot commands count as healthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["notip-healthcheck"]

ENTRYPOINT ["notip"]
CMD ["--help"]
