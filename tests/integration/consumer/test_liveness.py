"""Liveness end to end on real NATS + PostgreSQL, with scripted management
responders: lifecycle, paused suppression, fail open, decommission, alert-config
precedence and refresh, seeding, the status dispatcher, the ingest-only feed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable

import trio

from notip import bridge, natsio
from notip.consumer.dispatcher import Dispatcher, StatusQueue, Update
from notip.consumer.heartbeat import Liveness
from notip.consumer.liveness import Key, encode_sightings
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.mgmt import MgmtClient
from notip.consumer.service import ServiceInfo
from notip.envelope import parse_iso
from tests.waiting import eventually

from .conftest import (
    Collector,
    FakeMgmt,
    count_rows,
    execute,
    metric,
    publish,
    publish_telemetry,
    start_consumer,
)

EnvFactory = Callable[..., dict[str, str]]


def liveness_of(info: ServiceInfo) -> Liveness:
    assert info.liveness is not None
    return info.liveness


async def alerts_for(nc: natsio.NATS, tenant: str) -> Collector:
    return await Collector().start(nc, f"alert.gw_offline.{tenant}")


async def test_full_lifecycle_online_alert_offline_online(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 700}]
    alerts = await alerts_for(nc, tenant)
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, make_env())
        await eventually(
            lambda: metric(info, "notip_consumer_alert_cache_last_success_timestamp") > 0
        )
        await publish_telemetry(nc, tenant, gw)
        await eventually(lambda: mgmt.statuses(gw) == ["online"], what="first sighting online")

        await eventually(lambda: alerts.msgs, what="the gw_offline alert")
        await eventually(lambda: mgmt.statuses(gw) == ["online", "offline"], what="offline status")
        assert mgmt.status_checks(gw) >= 1  # the lifecycle was checked first
        [msg] = alerts.msgs
        body = json.loads(msg.data)
        assert set(body) == {"gatewayId", "lastSeen", "timeoutMs", "timestamp"}
        assert body["gatewayId"] == gw and body["timeoutMs"] == 700
        assert body["lastSeen"].endswith("Z") and body["timestamp"].endswith("Z")
        assert parse_iso(body["timestamp"]) - parse_iso(body["lastSeen"]) >= dt.timedelta(
            milliseconds=700
        )
        assert msg.headers and msg.headers["Nats-Msg-Id"].startswith(f"gw_offline.{tenant}.{gw}.")
        update = next(
            r
            for r in mgmt.requests["internal.mgmt.gateway.update-status"]
            if r["gateway_id"] == gw and r["status"] == "offline"
        )
        assert update["last_seen_at"] == body["lastSeen"]

        # Once per transition: more ticks, no second alert.
        live = info.liveness
        assert live is not None
        ticks = live.ticks
        await eventually(lambda: live.ticks >= ticks + 5)
        assert len(alerts.msgs) == 1 and mgmt.statuses(gw) == ["online", "offline"]

        await publish_telemetry(nc, tenant, gw)
        await eventually(
            lambda: mgmt.statuses(gw) == ["online", "offline", "online"], what="back online"
        )
        assert metric(info, "notip_consumer_alerts_published_total") == 1
        assert metric(info, "notip_consumer_heartbeat_map_size") == 1
        nursery.cancel_scope.cancel()


async def test_paused_gateway_is_not_alerted(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 300}]
    mgmt.states[gw] = "paused"
    alerts = await alerts_for(nc, tenant)
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, make_env())
        await eventually(
            lambda: metric(info, "notip_consumer_alert_cache_last_success_timestamp") > 0
        )
        await publish_telemetry(nc, tenant, gw)
        await eventually(lambda: mgmt.status_checks(gw) >= 3, what="several lifecycle checks")
        assert alerts.msgs == []
        assert mgmt.statuses(gw) == ["online"]
        # Counted once the check's answer is back in the consumer, just after the
        # fake management recorded the check.
        await eventually(lambda: metric(info, "notip_consumer_alerts_suppressed_total") >= 3)
        assert alerts.msgs == []
        # Resumed but still silent: now it is alerted.
        mgmt.states[gw] = "online"
        await eventually(lambda: alerts.msgs, what="the alert after resume")
        await eventually(lambda: mgmt.statuses(gw) == ["online", "offline"])
        nursery.cancel_scope.cancel()


async def test_lifecycle_error_fails_open(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 300}]
    # An answer about another gateway is an error: alert anyway.
    mgmt.get_status_answer = lambda body: {"gateway_id": str(uuid.uuid4()), "state": "paused"}
    alerts = await alerts_for(nc, tenant)
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, make_env())
        await eventually(
            lambda: metric(info, "notip_consumer_alert_cache_last_success_timestamp") > 0
        )
        await publish_telemetry(nc, tenant, gw)
        await eventually(lambda: alerts.msgs, what="the fail-open alert")
        assert metric(info, "notip_consumer_lifecycle_query_errors_total") >= 1
        await eventually(lambda: mgmt.statuses(gw) == ["online", "offline"])
        nursery.cancel_scope.cancel()


async def test_decommission_removes_and_quarantines_the_gateway(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory, pg_database: str
) -> None:
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 400}]
    alerts = await alerts_for(nc, tenant)
    env = make_env()
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        live = liveness_of(info)
        await publish_telemetry(nc, tenant, gw)
        await eventually(lambda: mgmt.statuses(gw) == ["online"])
        await publish(
            nc,
            [
                (
                    f"gateway.decommissioned.{tenant}.{gw}",
                    json.dumps({"gatewayId": gw, "timestamp": "2025-01-01T00:00:00Z"}).encode(),
                )
            ],
        )
        await eventually(lambda: (tenant, gw) not in live.tracker, what="the gateway to be dropped")
        assert metric(info, "notip_consumer_heartbeat_map_size") == 0

        # A late message: stored, but the gateway stays out of liveness.
        await publish_telemetry(nc, tenant, gw)
        await eventually(lambda: _rows(pg_database, tenant, 2), what="the late row")
        ticks = live.ticks
        await eventually(lambda: live.ticks >= ticks + 8)  # > the 400 ms timeout
        assert (tenant, gw) not in live.tracker
        assert alerts.msgs == [] and mgmt.status_checks(gw) == 0
        assert mgmt.statuses(gw) == ["online"]
        nursery.cancel_scope.cancel()

    # The quarantine survives a restart (it is in the database, and the durable does
    # not replay the event): the gateway is not seeded back.
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        live = liveness_of(info)
        await eventually(lambda: live.ticks >= 3)
        assert (tenant, gw) not in live.tracker
        nursery.cancel_scope.cancel()


async def _rows(dsn: str, tenant: str, n: int) -> bool:
    return await count_rows(dsn, tenant) == n


async def test_alert_config_precedence_and_refresh(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory
) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    gw_override, gw_tenant, gw_default = (str(uuid.uuid4()) for _ in range(3))
    mgmt.configs = [
        {"tenant_id": tenant, "timeout_ms": 1500},
        {"tenant_id": tenant, "gateway_id": gw_override, "timeout_ms": 300},
        {"tenant_id": tenant, "gateway_id": None, "timeout_ms": 1500},
    ]
    alerts = await alerts_for(nc, tenant)
    other_alerts = await alerts_for(nc, other)
    env = make_env(ALERT_CONFIG_REFRESH_MS="300", ALERT_CONFIG_DEFAULT_TIMEOUT_MS="600000")
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        live = liveness_of(info)
        await eventually(
            lambda: metric(info, "notip_consumer_alert_cache_last_success_timestamp") > 0
        )
        await publish_telemetry(nc, tenant, gw_override)
        await publish_telemetry(nc, tenant, gw_tenant)
        await publish_telemetry(nc, other, gw_default)

        await eventually(lambda: len(alerts.msgs) == 2, what="both tenant alerts")
        first, second = alerts.json()
        assert (first["gatewayId"], first["timeoutMs"]) == (gw_override, 300)
        assert (second["gatewayId"], second["timeoutMs"]) == (gw_tenant, 1500)
        assert other_alerts.msgs == []  # 600 s default

        # Refresh: the other tenant gets a short default, and is alerted with it.
        mgmt.configs = [*mgmt.configs, {"tenant_id": other, "timeout_ms": 200}]
        await eventually(lambda: other_alerts.msgs, what="the alert after the refresh")
        assert other_alerts.json()[0]["timeoutMs"] == 200

        # A failed refresh keeps the snapshot.
        errors = metric(info, "notip_consumer_alert_cache_refresh_errors_total")
        mgmt.configs = {"not": "an array"}
        await eventually(
            lambda: metric(info, "notip_consumer_alert_cache_refresh_errors_total") >= errors + 2
        )
        snapshot = live.configs.snapshot
        assert snapshot.timeout_ms((tenant, gw_override)) == 300
        assert snapshot.timeout_ms((tenant, gw_tenant)) == 1500
        assert snapshot.timeout_ms((other, gw_default)) == 200
        nursery.cancel_scope.cancel()


async def test_gateway_silent_while_the_consumer_was_down_is_alerted(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory, pg_database: str
) -> None:
    """Seeding: the newest row per gateway, within the largest timeout window. A
    gateway management still thinks online is alerted; one it already has offline
    (alerted by the previous run) is not alerted again; one older than the window is
    not tracked at all."""
    tenant = str(uuid.uuid4())
    died, known_offline, ancient = (str(uuid.uuid4()) for _ in range(3))
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 5000}]
    mgmt.states[known_offline] = "offline"
    alerts = await alerts_for(nc, tenant)
    env = make_env(ALERT_CONFIG_DEFAULT_TIMEOUT_MS="1000")
    async with trio.open_nursery() as nursery:  # first run: creates the schema
        await start_consumer(nursery, env)
        nursery.cancel_scope.cancel()
    now = dt.datetime.now(dt.UTC)
    for gw, age_s in ((died, 2), (known_offline, 3), (ancient, 3600)):
        await execute(
            pg_database,
            "INSERT INTO telemetry VALUES ($1, $2, $3, $4, 'temperature', 'AAAA', $5, $6, 1)",
            now - dt.timedelta(seconds=age_s),
            tenant,
            gw,
            str(uuid.uuid4()),
            uuid.uuid4().hex[:16],
            "A" * 22 + "==",
        )
    async with trio.open_nursery() as nursery:
        info = await start_consumer(nursery, env)
        live = liveness_of(info)
        await eventually(lambda: (tenant, died) in live.tracker, what="the seed")
        assert (tenant, ancient) not in live.tracker
        await eventually(lambda: alerts.msgs, timeout=20, what="the alert for the dead gateway")
        await eventually(lambda: mgmt.status_checks(known_offline) >= 1)
        await eventually(lambda: live.tracker.state((tenant, known_offline)) == "offline")
        await eventually(lambda: mgmt.statuses(died) == ["offline"], what="offline reported")
        assert [a["gatewayId"] for a in alerts.json()] == [died]
        assert mgmt.statuses(known_offline) == []
        nursery.cancel_scope.cancel()


async def test_dispatcher_coalesces_under_a_slow_responder(nc: natsio.NATS, mgmt: FakeMgmt) -> None:
    """One gateway flaps 40 times while management takes 300 ms per answer: only a
    handful of requests reach it, in order, and the last one carries the last status."""
    mgmt.update_delay = 0.3
    gw, gw2 = str(uuid.uuid4()), str(uuid.uuid4())
    key: Key = ("t", gw)
    metrics = ConsumerMetrics()
    client = MgmtClient(nc, timeout_s=5, retries=0)

    async def send(k: Key, u: Update) -> str:
        return await client.update_status(k[1], u.status, u.last_seen)

    dispatcher = Dispatcher(StatusQueue(100), send, concurrency=2, metrics=metrics)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher.run)
        for i in range(40):
            dispatcher.submit(key, "offline" if i % 2 == 0 else "online", 1000.0 + i)
            await trio.sleep(0.02)
        dispatcher.submit(("t", gw2), "offline", 5.0)
        await eventually(lambda: len(dispatcher.queue) == 0 and dispatcher.queue.inflight == 0)
        await eventually(lambda: mgmt.statuses(gw2) == ["offline"])
        nursery.cancel_scope.cancel()
    sent = [
        r for r in mgmt.requests["internal.mgmt.gateway.update-status"] if r["gateway_id"] == gw
    ]
    assert 2 <= len(sent) <= 6, len(sent)
    assert sent[-1]["status"] == "online"  # i = 39
    assert sent[-1]["last_seen_at"] == "1970-01-01T00:17:19.000Z"  # last_seen 1039
    stamps = [r["last_seen_at"] for r in sent]
    assert stamps == sorted(stamps)  # never two in flight for one gateway: in order
    coalesced = metrics.registry.get_sample_value("notip_consumer_status_updates_coalesced_total")
    assert coalesced is not None and coalesced >= 30


async def test_ingest_only_instance_feeds_the_liveness_owner(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory, pg_database: str
) -> None:
    """Scale-out: an instance with LIVENESS_ENABLED=false publishes what it committed on
    the feed subject; the owner tracks gateways it never ingested itself."""
    tenant, gw, gw_fed = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    feed_subject = f"test.liveness.{uuid.uuid4().hex[:8]}"
    feed = await Collector().start(nc, feed_subject)
    async with trio.open_nursery() as nursery:
        info = await start_consumer(
            nursery, make_env(LIVENESS_ENABLED="false", LIVENESS_FEED_SUBJECT=feed_subject)
        )
        assert info.liveness is None
        await publish_telemetry(nc, tenant, gw, 3)
        await eventually(lambda: feed.msgs, what="a digest on the feed")
        seen = [item for m in feed.json() for item in m["seen"]]
        assert {(t, g) for t, g, _ in seen} == {(tenant, gw)}
        assert mgmt.statuses(gw) == []  # nobody owns liveness here
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        owner = await start_consumer(nursery, make_env(LIVENESS_FEED_SUBJECT=feed_subject))
        assert owner.liveness is not None
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        await bridge.call(
            nc.publish, feed_subject, encode_sightings({(tenant, gw_fed): now_ms / 1000})
        )
        await eventually(lambda: mgmt.statuses(gw_fed) == ["online"], what="online via the feed")
        assert (tenant, gw_fed) in owner.liveness.tracker
        assert await count_rows(pg_database, tenant) == 3
        nursery.cancel_scope.cancel()
