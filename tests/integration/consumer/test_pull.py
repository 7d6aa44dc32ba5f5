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

from notip import bridge, guards, natsio
from notip.jetstream import pull
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


async def _pulled(nc: natsio.NATS, durable: str, n: int) -> tuple[BatchPuller, list[Msg]]:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    await ensure_pull_consumer(nc, "TELEMETRY", pull_config(durable))
    puller = BatchPuller(nc, "TELEMETRY", durable, batch=n, flush_s=0.2)
    await puller.start()
    await publish_telemetry(nc, tenant, gw, n)
    got: list[Msg] = []
    with trio.fail_after(10):
        while len(got) < n:
            got.extend(await puller.next_batch())
    return puller, got


async def _all_acked(nc: natsio.NATS, durable: str) -> None:
    async def settled() -> bool:
        info = await bridge.call(nc.jetstream().consumer_info, "TELEMETRY", durable)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(settled, what="every message acked")


async def test_a_batch_of_acks_is_written_as_one_buffer(
    nc: natsio.NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    durable = f"test-acks-{uuid.uuid4().hex[:8]}"
    puller, got = await _pulled(nc, durable, 6)
    try:
        publishes: list[str] = []
        real_publish = nc.publish

        async def counting(subject: str, *args: object, **kwargs: object) -> None:
            publishes.append(subject)
            await real_publish(subject, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(nc, "publish", counting)
        assert await settle(nc, ack=[m.reply for m in got[:4]], term=[m.reply for m in got[4:]])
        assert publishes == []  # no per-message publish: the frames went out as one buffer
        await _all_acked(nc, durable)
    finally:
        await puller.stop()
        await bridge.call(nc.jetstream().delete_consumer, "TELEMETRY", durable)


async def test_a_reply_unsafe_to_splice_goes_through_publish_and_the_rest_are_acked(
    nc: natsio.NATS,
) -> None:
    durable = f"test-acks-{uuid.uuid4().hex[:8]}"
    puller, got = await _pulled(nc, durable, 5)
    try:
        replies = [m.reply for m in got]
        # nats-py's publish refuses it (BadSubjectError): not confirmed, the batch
        # would be redelivered; every spliceable ack was still sent.
        assert not await settle(nc, ack=[*replies[:2], "$JS.ACK.x y\r\nPUB z 0", *replies[2:]])
        await _all_acked(nc, durable)
    finally:
        await puller.stop()
        await bridge.call(nc.jetstream().delete_consumer, "TELEMETRY", durable)


async def test_without_the_private_write_acks_go_one_publish_each_and_the_guard_counts(
    nc: natsio.NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    durable = f"test-acks-{uuid.uuid4().hex[:8]}"
    puller, got = await _pulled(nc, durable, 5)
    try:
        monkeypatch.setattr(pull, "_SEND_COMMAND", "_gone_in_a_later_nats_py")
        sample = ("notip_library_guard_missing_total", {"guard": guards.NATS_SEND_COMMAND})
        before = guards.REGISTRY.get_sample_value(*sample) or 0.0
        assert await settle(nc, ack=[m.reply for m in got])
        assert guards.REGISTRY.get_sample_value(*sample) == before + 1
        await _all_acked(nc, durable)
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
        # Readiness is false only while the durable is missing, which may be a few
        # milliseconds: a watcher that looks at every scheduling pass cannot miss it
        # (the flag is set and cleared around a network round trip, a checkpoint).
        seen_unready = trio.Event()

        async def watch_readiness(task_status: trio.TaskStatus[None]) -> None:
            assert info.ready
            task_status.started()
            while info.ready:
                await trio.lowlevel.checkpoint()
            seen_unready.set()

        await nursery.start(watch_readiness)
        await bridge.call(nc.jetstream().delete_consumer, "TELEMETRY", durable)
        await eventually(seen_unready.is_set, what="readiness false without the consumer")
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
