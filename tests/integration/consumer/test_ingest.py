"""Ingest on real NATS + PostgreSQL: verbatim rows, idempotence, poison isolation,
database data errors, the durable consumer, restart without replay, metrics."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

from notip import bridge, natsio
from notip.consumer.ingest import MAX_PAYLOAD_BYTES
from notip.envelope import parse_iso
from notip.pki import PkiPaths
from tests.waiting import eventually

from .conftest import (
    Collector,
    count_rows,
    encode,
    envelope,
    execute,
    metric,
    publish,
    publish_telemetry,
    query,
    start_consumer,
)

EnvFactory = Callable[..., dict[str, str]]


async def consumer_info(nc: natsio.NATS, durable: str):  # type: ignore[no-untyped-def]
    return await bridge.call(nc.jetstream().consumer_info, "TELEMETRY", durable)


async def test_envelope_becomes_exactly_one_verbatim_row(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, make_env())
        [env] = await publish_telemetry(nc, tenant, gw)
        await eventually(lambda: count_rows(pg_database, tenant), what="the row")
        rows = await query(pg_database, "SELECT * FROM telemetry WHERE tenant_id = $1", tenant)
        assert len(rows) == 1
        row = rows[0]
        assert row["time"] == parse_iso(env["timestamp"])
        assert row["gateway_id"] == gw == env["gatewayId"]
        assert row["sensor_id"] == env["sensorId"]
        assert row["sensor_type"] == env["sensorType"]
        assert row["encrypted_data"] == env["encryptedData"]
        assert row["iv"] == env["iv"]
        assert row["auth_tag"] == env["authTag"]
        assert row["key_version"] == env["keyVersion"] == 1
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 1)
        assert metric(info, "notip_consumer_rows_inserted_total") == 1
        nursery.cancel_scope.cancel()


async def test_same_message_twice_is_one_row(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    """Published twice (two stream messages), and once more after its row already
    exists (as after a crash between commit and ack): one row, two duplicates."""
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    settings_env = make_env()
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, settings_env)
        env = envelope(gw)
        subject = f"telemetry.data.{tenant}.{gw}"
        await publish(nc, [(subject, encode(env)), (subject, encode(env))])
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 2)
        assert await count_rows(pg_database, tenant) == 1
        assert metric(info, "notip_consumer_duplicates_skipped_total") == 1
        await publish(nc, [(subject, encode(env))])
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 3)
        assert await count_rows(pg_database, tenant) == 1
        assert metric(info, "notip_consumer_duplicates_skipped_total") == 2
        cinfo = await consumer_info(nc, settings_env["NATS_CONSUMER_DURABLE_NAME"])
        assert cinfo.num_ack_pending == 0
        nursery.cancel_scope.cancel()


async def test_one_poison_in_a_hundred(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env(INGEST_BATCH_SIZE="100", INGEST_FLUSH_MS="500")
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        subject = f"telemetry.data.{tenant}.{gw}"
        items = [(subject, encode(envelope(gw))) for _ in range(100)]
        items[37] = (subject, b'{"gatewayId": "not json')
        seqs = await publish(nc, items)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 99)
        assert await count_rows(pg_database, tenant) == 99
        assert metric(info, "notip_consumer_message_parsing_errors_total") == 1
        assert metric(info, "notip_consumer_poison_messages_total", reason="bad_json") == 1
        durable = env["NATS_CONSUMER_DURABLE_NAME"]
        # Terminated, not left pending: nothing waits for an ack, nothing is redelivered.
        cinfo = await eventually(
            lambda: _settled(nc, durable, seqs[-1]), what="every message acked or terminated"
        )
        assert cinfo.num_redelivered == 0
        assert metric(info, "notip_consumer_messages_received_total") == 100
        nursery.cancel_scope.cancel()


async def _settled(nc: natsio.NATS, durable: str, last_seq: int):  # type: ignore[no-untyped-def]
    info = await consumer_info(nc, durable)
    if info.num_ack_pending == 0 and info.ack_floor.stream_seq >= last_seq:
        return info
    return None


async def test_each_bad_message_is_rejected_alone(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    other_gw = str(uuid.uuid4())
    subject = f"telemetry.data.{tenant}.{gw}"
    good = [envelope(gw) for _ in range(5)]
    bad = {
        "nul_byte": encode(envelope(gw, sensorType="temper\u0000ature")),
        "bad_key_version": encode(envelope(gw, keyVersion=2**31)),
        "timestamp_without_zone": encode(envelope(gw, timestamp="2025-01-01T10:00:00.000")),
        "gateway_mismatch": encode(envelope(other_gw)),
        "bad_field": encode({k: v for k, v in envelope(gw).items() if k != "iv"}),
        "timestamp_out_of_range": encode(envelope(gw, timestamp="1999-01-01T00:00:00Z")),
    }
    env = make_env(INGEST_BATCH_SIZE="50", INGEST_FLUSH_MS="500")
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        items = [(subject, encode(g)) for g in good[:2]]
        items += [(subject, payload) for payload in bad.values()]
        items.append((f"telemetry.data.{tenant}.{gw}.extra", encode(envelope(gw))))
        items += [(subject, encode(g)) for g in good[2:]]
        seqs = await publish(nc, items)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 5)
        await eventually(lambda: metric(info, "notip_consumer_message_parsing_errors_total") == 7)
        for reason in bad:
            assert metric(info, "notip_consumer_poison_messages_total", reason=reason) == 1, reason
        assert metric(info, "notip_consumer_poison_messages_total", reason="bad_subject") == 1
        rows = await query(pg_database, "SELECT iv FROM telemetry WHERE tenant_id = $1", tenant)
        assert sorted(r["iv"] for r in rows) == sorted(g["iv"] for g in good)
        await eventually(lambda: _settled(nc, env["NATS_CONSUMER_DURABLE_NAME"], seqs[-1]))
        nursery.cancel_scope.cancel()


async def test_hostile_payloads_never_stop_ingestion(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    """A ~2 KB payload nesting arrays 1,000 deep used to raise RecursionError out of
    validation and stop the consumer (then again on every redelivery: a crash loop).
    In one batch with valid messages and an oversized payload: both poisons are
    terminated and counted by reason, the valid rows are written, nothing is
    redelivered, and the consumer keeps consuming."""
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    subject = f"telemetry.data.{tenant}.{gw}"
    deep = b'{"gatewayId": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    oversized = encode(envelope(gw, pad="x" * (MAX_PAYLOAD_BYTES + 1)))
    assert len(deep) < 2100 and MAX_PAYLOAD_BYTES < len(oversized) < 1024 * 1024  # NATS max
    good = [envelope(gw) for _ in range(3)]
    env = make_env(INGEST_BATCH_SIZE="50", INGEST_FLUSH_MS="500")
    durable = env["NATS_CONSUMER_DURABLE_NAME"]
    terminated = await Collector().start(
        nc, f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.TELEMETRY.{durable}"
    )
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        items = [(subject, encode(good[0])), (subject, deep), (subject, oversized)]
        seqs = await publish(nc, [*items, (subject, encode(good[1]))])
        await eventually(
            lambda: metric(info, "notip_consumer_messages_written_total") == 2, what="2 rows"
        )
        await eventually(
            lambda: metric(info, "notip_consumer_message_parsing_errors_total") == 2,
            what="2 rejects",
        )
        poison = "notip_consumer_poison_messages_total"
        assert metric(info, poison, reason="too_deep") == 1
        assert metric(info, poison, reason="payload_too_large") == 1
        rows = await query(pg_database, "SELECT iv FROM telemetry WHERE tenant_id = $1", tenant)
        assert sorted(r["iv"] for r in rows) == sorted(g["iv"] for g in good[:2])
        # Terminated, not pending: no ack awaited, nothing left, nothing redelivered.
        cinfo = await eventually(
            lambda: _drained(nc, durable, seqs[-1]), what="every message acked or terminated"
        )
        assert cinfo.num_redelivered == 0 and cinfo.num_pending == 0
        assert metric(info, "notip_consumer_redelivered_messages_total") == 0
        # +TERM (JetStream's advisory), exactly the two poisons, each on first delivery.
        await eventually(lambda: len(terminated.msgs) >= 2, what="2 termination advisories")
        advisories = terminated.json()
        assert sorted(a["stream_seq"] for a in advisories) == [seqs[1], seqs[2]]
        assert all(a["deliveries"] == 1 for a in advisories), advisories
        # Still consuming: a message published afterwards is written too.
        assert info.ready
        await publish(nc, [(subject, encode(good[2]))])
        await eventually(
            lambda: metric(info, "notip_consumer_messages_written_total") == 3, what="a 3rd row"
        )
        assert await count_rows(pg_database, tenant) == 3
        cinfo = await consumer_info(nc, durable)
        assert cinfo.num_redelivered == 0
        assert metric(info, "notip_consumer_messages_received_total") == 5
        nursery.cancel_scope.cancel()


async def _drained(nc: natsio.NATS, durable: str, last_seq: int):  # type: ignore[no-untyped-def]
    info = await consumer_info(nc, durable)
    if (
        info.num_ack_pending == 0
        and info.num_pending == 0
        and info.delivered.stream_seq >= last_seq
        and info.ack_floor.stream_seq >= last_seq
    ):
        return info
    return None


async def test_database_data_error_isolates_the_row(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    """A row the database refuses on its own (here: a CHECK constraint) is terminated
    and counted; the rest of its batch is written."""
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    refused_sensor = str(uuid.uuid4())
    env = make_env(INGEST_BATCH_SIZE="20", INGEST_FLUSH_MS="500")
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        await execute(
            pg_database,
            f"ALTER TABLE telemetry ADD CONSTRAINT t_refuse CHECK (sensor_id <> '{refused_sensor}')",
        )
        subject = f"telemetry.data.{tenant}.{gw}"
        items = [(subject, encode(envelope(gw))) for _ in range(20)]
        items[13] = (subject, encode(envelope(gw, sensorId=refused_sensor)))
        seqs = await publish(nc, items)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 19)
        assert await count_rows(pg_database, tenant) == 19
        assert metric(info, "notip_consumer_poison_messages_total", reason="db_rejected") == 1
        assert metric(info, "notip_consumer_write_errors_total") >= 1
        await eventually(lambda: _settled(nc, env["NATS_CONSUMER_DURABLE_NAME"], seqs[-1]))
        nursery.cancel_scope.cancel()


async def test_durable_is_explicit_and_restart_does_not_replay(
    nc: natsio.NATS, make_env: EnvFactory, pg_database: str
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env()
    durable = env["NATS_CONSUMER_DURABLE_NAME"]
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        await publish_telemetry(nc, tenant, gw, 30)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 30)
        nursery.cancel_scope.cancel()

    cinfo = await consumer_info(nc, durable)  # still there after shutdown
    cfg = cinfo.config
    assert cfg.durable_name == durable
    assert cfg.filter_subject == "telemetry.data.>"
    assert cfg.ack_policy == "explicit"
    assert cfg.max_deliver == 20
    assert cfg.ack_wait == 30.0 and cfg.backoff and cfg.backoff[0] == 30.0
    assert cinfo.num_ack_pending == 0

    # Published while nobody consumes: exactly these are delivered to the next run.
    await publish_telemetry(nc, tenant, gw, 20)
    async with trio.open_nursery() as nursery:
        info2 = await start_consumer(nursery, env)
        await eventually(lambda: metric(info2, "notip_consumer_messages_written_total") == 20)
        assert await count_rows(pg_database, tenant) == 50
        # Give a replay every chance to show up, then check that none did.
        await publish_telemetry(nc, tenant, gw, 1)
        await eventually(lambda: metric(info2, "notip_consumer_messages_written_total") == 21)
        assert metric(info2, "notip_consumer_messages_received_total") == 21
        assert metric(info2, "notip_consumer_duplicates_skipped_total") == 0
        assert metric(info2, "notip_consumer_redelivered_messages_total") == 0
        nursery.cancel_scope.cancel()
    assert await count_rows(pg_database, tenant) == 51


async def test_metrics_health_and_readiness_endpoints(
    nc: natsio.NATS, make_env: EnvFactory
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
        info = await start_consumer(nursery, make_env())
        base = f"http://127.0.0.1:{info.metrics_port}"
        assert (await http.get(f"{base}/healthz")).status_code == 200
        ready = await http.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"nats": True, "database": True, "consumer": True}

        before = (await http.get(f"{base}/metrics")).text
        for name in CONTRACT_METRICS:
            assert f"\n{name}" in before or before.startswith(name), name
        await publish_telemetry(nc, tenant, gw, 7)
        await eventually(lambda: metric(info, "notip_consumer_messages_written_total") == 7)
        after = (await http.get(f"{base}/metrics")).text
        assert _sample(after, "notip_consumer_messages_received_total") == 7
        assert _sample(after, "notip_consumer_messages_written_total") == 7
        assert _sample(after, "notip_consumer_batch_size_count") >= 1
        assert _sample(after, "notip_consumer_write_duration_seconds_count") >= 1
        assert _sample(before, "notip_consumer_messages_written_total") == 0
        nursery.cancel_scope.cancel()


CONTRACT_METRICS = [
    "notip_consumer_" + n
    for n in (
        "messages_received_total",
        "message_parsing_errors_total",
        "messages_written_total",
        "write_errors_total",
        "write_duration_seconds_bucket",
        "batch_size_bucket",
        "alerts_published_total",
        "alert_publish_errors_total",
        "heartbeat_map_size",
        "heartbeat_tick_duration_seconds_bucket",
        "status_update_errors_total",
        "status_update_dropped_total",
        "dispatch_queue_length",
        "alert_cache_refresh_errors_total",
        "alert_cache_last_success_timestamp",
        "nats_reconnects_total",
        "lifecycle_query_errors_total",
    )
]


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_verify_full_tls_to_the_database(
    nc: natsio.NATS,
    make_env: EnvFactory,
    pg_database: str,
    pki: PkiPaths,
    tmp_path: Path,
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    env = make_env(DB_SSL_MODE="verify-full", DB_SSL_ROOT_CERT=str(pki.ca_cert))
    async with trio.open_nursery() as nursery:
        await start_consumer(nursery, env)
        await publish_telemetry(nc, tenant, gw, 1)
        await eventually(lambda: count_rows(pg_database, tenant), what="the row")
        ssl_rows = await query(
            pg_database,
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = 'notip-consumer' AND a.datname = current_database()",
        )
        assert ssl_rows and all(r["ssl"] for r in ssl_rows)
        nursery.cancel_scope.cancel()


async def test_verify_full_refuses_a_server_from_another_ca(
    aio_loop: None,
    make_env: EnvFactory,
    tmp_path: Path,
) -> None:
    from notip.consumer.settings import Settings
    from notip.consumer.store import DbUnavailable, Store
    from notip.pki import PkiPaths, init_pki

    init_pki(tmp_path / "other")
    env = make_env(
        DB_SSL_MODE="verify-full", DB_SSL_ROOT_CERT=str(PkiPaths(tmp_path / "other").ca_cert)
    )
    try:
        with trio.fail_after(20):
            store = await Store.open(Settings.from_env(env))
    except DbUnavailable as exc:
        refusal = str(exc).lower()
    else:
        await store.close()
        raise AssertionError("connected to a server whose certificate the CA did not sign")
    assert "certificate" in refusal or "ssl" in refusal, refusal
