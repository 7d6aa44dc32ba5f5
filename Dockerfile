# syntax=docker/dockerfile:1
# One image for every `notip` command:
#   docker run --rm notip:dev --help
#   docker run … notip:dev consumer | simulator | provisioning | mgmt | pki init --dir /pki | …
# Multi-stage: the build stage makes a virtualenv in /opt/venv; the runtime stage is the
# same slim Python image with that venv copied in, running as an unprivileged user.

ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

# --- build ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src

# Runtime dependencies first, from pyproject.toml alone: this layer stays cached until
# the dependency list changes (every dependency ships wheels, no compiler needed).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt

# Then the project itself (not editable; .pyc compiled at install time).
COPY README.md ./
COPY notip ./notip
RUN /opt/venv/bin/pip install --no-deps . \
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
