"""Harness for the consumer's integration tests: real NATS (mTLS) and PostgreSQL,
scripted management responders, envelope publishing, metric and database helpers
(waiting for a condition: tests/waiting.py).

Isolation on the shared session servers: every consumer instance gets unique durable
names and a unique liveness-feed subject, starts its durable with
INGEST_DELIVER_POLICY=new (so it never replays the session's TELEMETRY history), and
writes into a fresh database; tests only publish and assert on fresh uuid4 tenants."""

from __future__ import annotations

import json
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
import trio
from nats.aio.msg import Msg

from notip import bridge, natsio
from notip.consumer.service import ServiceInfo, serve
from notip.consumer.settings import Settings
from notip.envelope import Envelope, seal
from notip.localservers import NatsServer
from notip.pki import PkiPaths

KEY = bytes(range(32))


def consumer_env(
    nats_server: NatsServer, pki: PkiPaths, dsn: str, tmp_path: Path, **overrides: str
) -> dict[str, str]:
    u = urlparse(dsn)
    pw = tmp_path / f"db-password-{uuid.uuid4().hex[:6]}"
    pw.write_text(f"  {u.password}\n")
    tag = uuid.uuid4().hex[:10]
    env = {
        "NATS_URL": nats_server.url,
        "NATS_TLS_CA": str(pki.ca_cert),
        "NATS_TLS_CERT": str(pki.cert("data-consumer")),
        "NATS_TLS_KEY": str(pki.key("data-consumer")),
        "DB_HOST": u.hostname or "127.0.0.1",
        "DB_PORT": str(u.port or 5432),
        "DB_NAME": u.path.lstrip("/"),
        "DB_USER": u.username or "notip",
        "DB_PASSWORD_FILE": str(pw),
        "DB_SSL_MODE": "require",
        "DB_MIN_CONNS": "1",
        "DB_MAX_CONNS": "5",
        "METRICS_ADDR": "127.0.0.1:0",
        "NATS_CONSUMER_DURABLE_NAME": f"test-consumer-{tag}",
        "NATS_DECOMMISSION_DURABLE_NAME": f"test-decom-{tag}",
        "LIVENESS_FEED_SUBJECT": f"test.liveness.{tag}",
        "INGEST_DELIVER_POLICY": "new",
        "INGEST_WRITERS": "2",
        "INGEST_BATCH_SIZE": "200",
        "INGEST_FLUSH_MS": "20",
        "INGEST_MAX_ACK_PENDING": "5000",
        "HEARTBEAT_TICK_MS": "100",
        "HEARTBEAT_GRACE_PERIOD_MS": "0",
        "ALERT_CONFIG_MAX_RETRIES": "0",
        "MGMT_REQUEST_TIMEOUT_MS": "1000",
        "MGMT_REQUEST_MAX_RETRIES": "0",
        "DB_PROBE_INTERVAL_MS": "200",
        "SHUTDOWN_TIMEOUT_MS": "5000",
    }
    env.update(overrides)
    return env


@pytest.fixture
def make_env(
    nats_server: NatsServer, pki: PkiPaths, pg_database: str, tmp_path: Path
) -> Callable[..., dict[str, str]]:
    def make(dsn: str | None = None, **overrides: str) -> dict[str, str]:
        return consumer_env(nats_server, pki, dsn or pg_database, tmp_path, **overrides)

    return make


async def start_consumer(nursery: trio.Nursery, env: dict[str, str]) -> ServiceInfo:
    with trio.fail_after(30):
        info: ServiceInfo = await nursery.start(serve, Settings.from_env(env))
    return info


# -- metrics ----------------------------------------------------------------------------


def metric(info: ServiceInfo, name: str, **labels: str) -> float:
    return info.metrics.registry.get_sample_value(name, labels) or 0.0


# -- database ---------------------------------------------------------------------------


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, ssl="require")
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return await bridge.call(run)


async def execute(dsn: str, sql: str, *args: Any) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn, ssl="require")
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    await bridge.call(run)


async def count_rows(dsn: str, tenant: str) -> int:
    try:
        rows = await query(dsn, "SELECT count(*) FROM telemetry WHERE tenant_id = $1", tenant)
    except asyncpg.exceptions.UndefinedTableError:
        return 0
    return int(rows[0][0])


# -- publishing -------------------------------------------------------------------------


def envelope(gateway: str, **overrides: Any) -> dict[str, Any]:
    env = seal(
        KEY,
        gateway_id=gateway,
        sensor_id=str(uuid.uuid4()),
        sensor_type="temperature",
        value=21.5,
    ).to_json()
    env.update(overrides)
    return env


def encode(obj: dict[str, Any] | Envelope | bytes) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, Envelope):
        return obj.encode()
    return json.dumps(obj, separators=(",", ":")).encode()


async def publish(nc: natsio.NATS, items: Iterable[tuple[str, bytes]]) -> list[int]:
    """JetStream-publish (subject, payload) pairs in one asyncio coroutine; returns
    their stream sequences."""
    batch = list(items)

    async def run() -> list[int]:
        js = nc.jetstream()
        seqs = []
        for subject, payload in batch:
            ack = await js.publish(subject, payload, timeout=10)
            seqs.append(ack.seq)
        return seqs

    return await bridge.call(run)


async def publish_telemetry(
    nc: natsio.NATS, tenant: str, gateway: str, n: int = 1, **overrides: Any
) -> list[dict[str, Any]]:
    envs = [envelope(gateway, **overrides) for _ in range(n)]
    await publish(nc, [(f"telemetry.data.{tenant}.{gateway}", encode(e)) for e in envs])
    return envs


class Collector:
    """Core subscription that records every message (e.g. alerts)."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []
        self._sub: Any = None

    async def start(self, nc: natsio.NATS, subject: str) -> Collector:
        async def cb(msg: Msg) -> None:
            self.msgs.append(msg)

        self._sub = await bridge.call(nc.subscribe, subject, cb=cb)
        return self

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(m.data) for m in self.msgs]


# -- management responders (docs/contracts.md#management-request-reply), scriptable ------------------------------------

Answer = Any  # a JSON-able object, raw bytes, or None (no reply at all)


@dataclass
class FakeMgmt:
    """Real NATS responders on `internal.mgmt.*` (queue group), answering from
    scripted state; records every request. Delays and failures are per test."""

    nc: natsio.NATS
    configs: Answer = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # gateway → state
    get_status_answer: Callable[[dict[str, Any]], Answer] | None = None
    update_answer: Callable[[dict[str, Any]], Answer] | None = None
    update_delay: float = 0.0
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    SUBJECTS = (
        "internal.mgmt.alert-configs.list",
        "internal.mgmt.gateway.get-status",
        "internal.mgmt.gateway.update-status",
    )

    def statuses(self, gateway: str) -> list[str]:
        return [
            r["status"]
            for r in self.requests["internal.mgmt.gateway.update-status"]
            if r.get("gateway_id") == gateway
        ]

    def status_checks(self, gateway: str) -> int:
        return sum(
            1
            for r in self.requests["internal.mgmt.gateway.get-status"]
            if r.get("gateway_id") == gateway
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send, recv = trio.open_memory_channel[Msg](1000)
        token = trio.lowlevel.current_trio_token()

        async def cb(msg: Msg) -> None:
            token.run_sync_soon(send.send_nowait, msg)

        subs = [
            await bridge.call(self.nc.subscribe, subject, queue="mgmt", cb=cb)
            for subject in self.SUBJECTS
        ]
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                async for msg in recv:
                    nursery.start_soon(self._handle, msg)
        finally:
            with trio.CancelScope(shield=True):
                for sub in subs:
                    await bridge.shielded(sub.unsubscribe, timeout=2)

    async def _handle(self, msg: Msg) -> None:
        subject = msg.subject
        try:
            body = json.loads(msg.data) if msg.data else {}
        except ValueError:
            body = {"_raw": msg.data}
        self.requests[subject].append(body)
        answer: Answer
        if subject.endswith("alert-configs.list"):
            answer = self.configs
        elif subject.endswith("get-status"):
            if self.get_status_answer is not None:
                answer = self.get_status_answer(body)
            else:
                gw = str(body.get("gateway_id"))
                answer = {"gateway_id": gw, "state": self.states.get(gw, "online")}
        else:
            if self.update_delay:
                await trio.sleep(self.update_delay)
            answer = self.update_answer(body) if self.update_answer else {"success": True}
        if answer is None or not msg.reply:
            return
        payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        await bridge.call(self.nc.publish, msg.reply, payload)


@pytest.fixture
async def mgmt(nc: natsio.NATS) -> AsyncIterator[FakeMgmt]:
    fake = FakeMgmt(nc)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        yield fake
        nursery.cancel_scope.cancel()


def new_ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


def world_traversable(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path
