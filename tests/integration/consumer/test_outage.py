"""Failure and shutdown: the database stopped mid-stream (a PostgreSQL of our own, so
the session's is never touched), and SIGTERM to a real `notip consumer` process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nats.errors
import pytest
import trio

from notip import bridge, natsio
from notip.localservers import PostgresServer
from notip.pki import PkiPaths
from tests.waiting import eventually

from .conftest import (
    count_rows,
    encode,
    envelope,
    metric,
    publish,
    publish_telemetry,
    query,
    start_consumer,
    world_traversable,
)

EnvFactory = Callable[..., dict[str, str]]


@pytest.fixture
def own_postgres(workdir: Path, pki: PkiPaths) -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own (TLS on), started and stopped at will. Below the
    session's world-traversable work directory: it runs as `postgres` under root."""
    base = world_traversable(workdir / f"own-pg-{uuid.uuid4().hex[:8]}")
    server = PostgresServer(
        base / "data",
        tls_cert=pki.postgres_server_cert,
        tls_key=pki.postgres_server_key,
        fsync=False,
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


async def test_database_stopped_mid_stream_loses_nothing(
    nc: natsio.NATS, make_env: EnvFactory, own_postgres: PostgresServer
) -> None:
    dsn = own_postgres.dsn
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env(dsn)
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=5) as http:
        info = await start_consumer(nursery, env)
        readyz = f"http://127.0.0.1:{info.metrics_port}/readyz"
        await publish_telemetry(nc, tenant, gw, 40)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 40)

        # Outage: PostgreSQL stops (fast shutdown). Start/stop run on the main thread:
        # the server's parent-death signal follows the thread that started it.
        own_postgres.stop()
        await publish_telemetry(nc, tenant, gw, 60)
        await eventually(lambda: not info.ready, what="readiness to turn false")
        assert (await http.get(readyz)).status_code == 503
        await eventually(lambda: metric(info, "notip_consumer_write_errors_total") >= 2)
        assert metric(info, "notip_consumer_messages_written_total") == 40

        own_postgres.start()
        await eventually(
            lambda: metric(info, "notip_consumer_messages_written_total") >= 100,
            timeout=30,
            what="the backlog to be written after the outage",
        )
        await eventually(lambda: info.ready, what="readiness to come back")
        assert (await http.get(readyz)).status_code == 200
        assert await count_rows(dsn, tenant) == 100
        dupes = await query(
            dsn,
            "SELECT count(*) - count(DISTINCT iv) FROM telemetry WHERE tenant_id = $1",
            tenant,
        )
        assert dupes[0][0] == 0
        # The held batches were kept in progress, not redelivered: no delivery count grew.
        cinfo = await bridge.call(
            nc.jetstream().consumer_info, "TELEMETRY", env["NATS_CONSUMER_DURABLE_NAME"]
        )
        assert cinfo.num_ack_pending == 0
        nursery.cancel_scope.cancel()


async def test_shutdown_with_database_down_is_bounded_and_loses_nothing(
    nc: natsio.NATS, make_env: EnvFactory, own_postgres: PostgresServer
) -> None:
    """Cancelled while every writer holds a batch it cannot write: the service returns
    within SHUTDOWN_TIMEOUT_MS plus the clean-up bound, the batches are handed back,
    and the next run writes them all."""
    dsn = own_postgres.dsn
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env(dsn, SHUTDOWN_TIMEOUT_MS="1000")
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        await publish_telemetry(nc, tenant, gw, 5)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 5)
        own_postgres.stop()
        await publish_telemetry(nc, tenant, gw, 30)
        await eventually(lambda: metric(info, "notip_consumer_write_errors_total") >= 1)
        t0 = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - t0 < 15

    own_postgres.start()
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        # Within 20 s, well under the 30 s ack wait: they were handed back (NAK), not
        # left to time out.
        await eventually(lambda: _rows_at_least(dsn, tenant, 35), what="all 35 rows")
        nursery.cancel_scope.cancel()
    assert await count_rows(dsn, tenant) == 35


async def _rows_at_least(dsn: str, tenant: str, n: int) -> bool:
    return await count_rows(dsn, tenant) >= n


async def test_sigterm_mid_stream_everything_acked_was_written(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str, tmp_path: Path
) -> None:
    """A real `notip consumer` process, SIGTERM while messages flow: it exits 0 within a
    bound, and every message the stream considers acked has its row."""
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env(INGEST_ACK_WAIT_MS="2000", INGEST_BATCH_SIZE="50", LIVENESS_ENABLED="false")
    durable = env["NATS_CONSUMER_DURABLE_NAME"]
    log_file = tmp_path / "consumer.log"
    proc = _spawn_consumer(env, log_file)
    try:
        js = nc.jetstream()

        async def durable_exists() -> bool:
            try:
                await bridge.call(js.consumer_info, "TELEMETRY", durable)
                return True
            except nats.errors.Error:  # not found (yet), or a timeout
                return False

        await eventually(durable_exists, timeout=30, what="the consumer process to start")
        subject = f"telemetry.data.{tenant}.{gw}"
        envs = [envelope(gw) for _ in range(3000)]
        sent = 0

        async def produce() -> None:
            nonlocal sent
            for i in range(0, len(envs), 100):
                await publish(nc, [(subject, encode(e)) for e in envs[i : i + 100]])
                sent = i + 100

        async with trio.open_nursery() as producers:
            producers.start_soon(produce)
            await eventually(lambda: _rows_at_least(pg_database, tenant, 300), what="rows to flow")
            proc.send_signal(signal.SIGTERM)
        t0 = trio.current_time()
        rc = await trio.to_thread.run_sync(proc.wait, 30)
        assert rc == 0, log_file.read_text()
        assert trio.current_time() - t0 < 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Which messages did JetStream record as settled? Pull what is left on the durable
    # (un-acked messages come back after ack wait, NAKed ones at once): the rest is acked.
    written = {
        r["iv"]
        for r in await query(pg_database, "SELECT iv FROM telemetry WHERE tenant_id = $1", tenant)
    }
    left = await _drain_durable(nc, durable)
    left_ivs = {e["iv"] for e in left}
    acked = [e for e in envs if e["iv"] not in left_ivs]
    assert acked, "nothing was acked before SIGTERM"
    missing = [e["iv"] for e in acked if e["iv"] not in written]
    assert not missing, f"{len(missing)} acked messages have no row"


def _spawn_consumer(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """`python -m notip consumer` with `env`, logs to `log_file` (quick and blocking)."""
    with open(log_file, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "notip", "consumer"],
            env={**os.environ, **env, "LOG_LEVEL": "info"},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def _drain_durable(nc: natsio.NATS, durable: str) -> list[dict[str, object]]:
    import json

    js = nc.jetstream()
    sub = await bridge.call(js.pull_subscribe_bind, durable, "TELEMETRY")
    out: list[dict[str, object]] = []

    async def fetch() -> list[dict[str, object]]:
        got: list[dict[str, object]] = []
        try:
            msgs = await sub.fetch(500, timeout=4)
        except TimeoutError:  # nothing left (nats-py raises its own subclass or a bare one)
            return got
        for m in msgs:
            got.append(json.loads(m.data))
            await m.ack()
        return got

    while True:
        got = await bridge.call(fetch)
        if not got:
            info = await bridge.call(js.consumer_info, "TELEMETRY", durable)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                break
            continue
        out.extend(got)
    await bridge.shielded(sub.unsubscribe, timeout=2)
    return out
