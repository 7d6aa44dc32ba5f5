"""Real services for the whole suite: a PKI, an mTLS nats-server with the platform's
streams, and a PostgreSQL cluster. Started once per session from local binaries (the
same helpers `notip dev` uses)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, settings

from notip import bridge, natsio
from notip.localservers import NatsServer, PostgresServer
from notip.pki import PkiPaths, init_pki

pytest_plugins = ["tests.platform_fixtures"]

# Property tests are deterministic and independent of the machine's load: the same
# examples on every run (derandomize), no per-example deadline, and no health check
# that measures wall-clock time (CI shares a 2-core machine with other work).
# `HYPOTHESIS_PROFILE=explore` searches with fresh random examples instead.
_NO_CLOCK_CHECKS = [HealthCheck.too_slow, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, suppress_health_check=_NO_CLOCK_CHECKS
)
settings.register_profile(
    "explore", max_examples=1000, deadline=None, suppress_health_check=_NO_CLOCK_CHECKS
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # World-traversable so that PostgreSQL, run as the `postgres` user when the
    # suite runs as root, can reach its data directory.
    path = Path(tempfile.mkdtemp(prefix="notip-tests-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(workdir: Path) -> PkiPaths:
    init_pki(workdir / "pki")
    return PkiPaths(workdir / "pki")


@pytest.fixture(scope="session")
def nats_server(workdir: Path, pki: PkiPaths) -> Iterator[NatsServer]:
    with NatsServer(workdir / "nats", pki.root) as server:
        bridge.run(lambda: natsio.bootstrap_streams(server.url, service_tls(pki, "management-api")))
        yield server


@pytest.fixture(scope="session")
def postgres(workdir: Path, pki: PkiPaths) -> Iterator[PostgresServer]:
    server = PostgresServer(
        workdir / "pg" / "data",
        tls_cert=pki.postgres_server_cert,
        tls_key=pki.postgres_server_key,
        fsync=False,
    )
    (workdir / "pg").mkdir(exist_ok=True)
    os.chmod(workdir / "pg", 0o755)
    with server:
        yield server


def service_tls(pki: PkiPaths, service: str) -> natsio.TlsFiles:
    return natsio.TlsFiles(pki.ca_cert, pki.cert(service), pki.key(service))


@pytest.fixture
async def aio_loop() -> AsyncIterator[None]:
    """The trio-asyncio loop, opened the way every daemon opens it."""
    async with bridge.loop():
        yield


@pytest.fixture
async def nc(aio_loop: None, nats_server: NatsServer, pki: PkiPaths) -> AsyncIterator[natsio.NATS]:
    """A service connection (management-api identity) for a test."""
    tls = natsio.tls_context(service_tls(pki, "management-api"))
    with trio.fail_after(10):
        conn = await natsio.connect(nats_server.url, tls, name="test")
    yield conn
    await natsio.drain(conn)


@pytest.fixture
def pg_database(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL; yields its DSN."""
    import uuid

    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres._psql(f'CREATE DATABASE "{name}"')
    yield postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    postgres._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
