"""The continuous-credit batch pull against a real nats-server: expiring requests,
batches, a deleted consumer, and a server restart (a nats-server of our own)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from nats.aio.msg import Msg
from nats.js import api

from notip import bridge, natsio
from notip.jetstream.consumers import ensure_pull_consumer
from notip.jetstream.pull import BatchPuller, settle
from notip.localservers import NatsServer
from notip.pki import PkiPaths
from tests.waiting import eventually

from ...conftest import service_tls
from .conftest import count_rows, metric, publish_telemetry, start_consumer

EnvFactory = Callable[..., dict[str, str]]


def pull_config(durable: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=durable,
        durable_name=durable,
        deliver_policy=api.DeliverPolicy.NEW,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=30.0,
        filter_subject="telemetry.data.>",
        max_ack_pending=10_000,
    )


async def test_batches_expiry_and_heartbeats(nc: natsio.NATS) -> None:
    durable = f"test-pull-{uuid.uuid4().hex[:8]}"
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    await ensure_pull_consumer(nc, "TELEMETRY", pull_config(durable))
    puller = BatchPuller(
        nc, "TELEMETRY", durable, batch=10, flush_s=0.2, expires_s=1.0, heartbeat_s=0.3
    )
    await puller.start()
    try:
        await publish_telemetry(nc, tenant, gw, 25)
        got: list[Msg] = []
        with trio.fail_after(10):
            while len(got) < 25:
                batch = await puller.next_batch()
                assert 1 <= len(batch) <= 10
                got.extend(batch)
        assert all(m.subject == f"telemetry.data.{tenant}.{gw}" for m in got)
        assert await settle(nc, ack=[m.reply for m in got])

        # Idle for several request lifetimes: 408s release the credit, heartbeats keep
        # the pull alive, and a message published afterwards still arrives.
        with trio.move_on_after(2.5):
            await puller.next_batch()
        assert puller.credit.outstanding <= puller.credit.target
        await publish_telemetry(nc, tenant, gw, 1)
        with trio.fail_after(10):
            [late] = await puller.next_batch()
        assert await settle(nc, ack=[late.reply])

        async def settled() -> bool:
            info = await bridge.call(nc.jetstream().consumer_info, "TELEMETRY", durable)
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(settled, what="every message acked")
    finally:
        await puller.stop()
        await bridge.call(nc.jetstream().delete_consumer, "TELEMETRY", durable)


async def test_consumer_deleted_under_the_service_is_recreated(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env()
    durable = env["NATS_CONSUMER_DURABLE_NAME"]
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        await publish_telemetry(nc, tenant, gw, 5)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 5)
        await bridge.call(nc.jetstream().delete_consumer, "TELEMETRY", durable)
        await eventually(lambda: not info.ready, what="readiness false without the consumer")
        await eventually(lambda: info.ready, what="the consumer re-created")
        await publish_telemetry(nc, tenant, gw, 5)
        await eventually(lambda: _rows(pg_database, tenant, 10), what="ingest to resume")
        nursery.cancel_scope.cancel()


async def _rows(dsn: str, tenant: str, n: int) -> bool:
    return await count_rows(dsn, tenant) == n


@pytest.fixture
def own_nats(workdir: Path, pki: PkiPaths) -> Iterator[NatsServer]:
    server = NatsServer(workdir / f"own-nats-{uuid.uuid4().hex[:8]}", pki.root)
    server.start()

    bridge.run(lambda: natsio.bootstrap_streams(server.url, service_tls(pki, "management-api")))
    yield server
    server.stop()


async def test_nats_restart_resets_credit_and_ingest_resumes(
    aio_loop: None, own_nats: NatsServer, make_env: EnvFactory, pki: PkiPaths, pg_database: str
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env(NATS_URL=own_nats.url, INGEST_DELIVER_POLICY="all")
    tls = natsio.tls_context(
        natsio.TlsFiles(pki.ca_cert, pki.cert("simulator"), pki.key("simulator"))
    )
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        pub = await natsio.connect(own_nats.url, tls, name="test-pub", reconnect_wait=0.2)
        try:
            await publish_telemetry(pub, tenant, gw, 10)
            await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 10)
            own_nats.stop()
            own_nats.start()  # same port, same JetStream store
            await eventually(
                lambda: metric(info, "notip_consumer_nats_reconnects_total") >= 1,
                timeout=30,
                what="the consumer to reconnect",
            )
            await eventually(lambda: pub.is_connected, timeout=30)
            await publish_telemetry(pub, tenant, gw, 10)
            await eventually(
                lambda: _rows(pg_database, tenant, 20), timeout=30, what="ingest after the restart"
            )
        finally:
            await natsio.drain(pub)
        nursery.cancel_scope.cancel()
