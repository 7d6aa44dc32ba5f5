"""The liveness driver (ticks, grace period, checks, alerts, status reports) and the
alert-config refresher, under MockClock: milliseconds of test time, no sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from notip.consumer.dispatcher import Dispatcher, StatusQueue, Update
from notip.consumer.heartbeat import Liveness, run_config_refresh
from notip.consumer.liveness import AlertConfigs, ConfigHolder, Key, SeedRow, Tracker, iso_epoch
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.mgmt import OK, MgmtError

T0 = 1_700_000_000.0
A: Key = ("t1", "gw-a")
B: Key = ("t1", "gw-b")


def clock() -> float:
    return T0 + trio.current_time()


@dataclass
class FakeMgmt:
    states: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fail: bool = False
    checks: list[tuple[float, str]] = field(default_factory=list)
    active: int = 0
    peak: int = 0

    async def gateway_state(self, tenant: str, gateway: str) -> str:
        self.checks.append((trio.current_time(), gateway))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await trio.sleep(self.delay)
        finally:
            self.active -= 1
        if self.fail:
            raise MgmtError("no answer")
        return self.states.get(gateway, "online")


@dataclass
class Harness:
    live: Liveness
    mgmt: FakeMgmt
    metrics: ConsumerMetrics
    alerts: list[tuple[float, str, dict[str, Any], str]]
    statuses: list[tuple[str, str, float]]
    holder: ConfigHolder
    publish_fails: list[bool]

    def status_of(self, gw: str) -> list[str]:
        return [s for g, s, _ in self.statuses if g == gw]

    def metric(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name) or 0.0


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    """Tests using it must request `autojump_clock` themselves: pytest-trio picks the
    clock from the test's own arguments."""
    import json

    metrics = ConsumerMetrics()
    holder = ConfigHolder(AlertConfigs(1000))
    statuses: list[tuple[str, str, float]] = []
    alerts: list[tuple[float, str, dict[str, Any], str]] = []
    publish_fails: list[bool] = []

    async def send(key: Key, u: Update) -> str:
        statuses.append((key[1], u.status, u.last_seen))
        return OK

    async def publish(subject: str, body: bytes, msg_id: str) -> None:
        if publish_fails and publish_fails.pop(0):
            raise RuntimeError("stream unavailable")
        alerts.append((trio.current_time(), subject, json.loads(body), msg_id))

    mgmt = FakeMgmt()
    dispatcher = Dispatcher(StatusQueue(100), send, concurrency=2, metrics=metrics)
    live = Liveness(
        tracker=Tracker(holder.timeout_ms, quarantine_s=60),
        configs=holder,
        mgmt=mgmt,  # type: ignore[arg-type]
        dispatcher=dispatcher,
        publish_alert=publish,
        alert_subject=lambda t, g: f"alert.gw_offline.{t}",
        metrics=metrics,
        tick_s=0.5,
        grace_s=10.0,
        check_concurrency=4,
        clock=clock,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher.run)
        yield Harness(live, mgmt, metrics, alerts, statuses, holder, publish_fails)
        nursery.cancel_scope.cancel()


async def test_grace_period_then_lifecycle(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.live.run_ticks)
        h.live.committed({A: clock()})
        await trio.sleep(0.01)
        assert h.status_of("gw-a") == ["online"]
        await trio.sleep(9.9)  # silent for 9.9 s, timeout 1 s, but still in the grace period
        assert h.mgmt.checks == [] and h.alerts == []
        await trio.sleep(0.2)
        assert [c[0] - t0 for c in h.mgmt.checks] == [pytest.approx(10.0)]
        [(at, subject, body, _msg_id)] = h.alerts
        assert at - t0 == pytest.approx(10.0) and subject == "alert.gw_offline.t1"
        assert body["gatewayId"] == "gw-a" and body["timeoutMs"] == 1000
        assert h.status_of("gw-a") == ["online", "offline"]

        await trio.sleep(5)  # once per transition
        assert len(h.alerts) == 1 and len(h.mgmt.checks) == 1

        h.live.committed({A: clock()})
        await trio.sleep(0.01)
        assert h.status_of("gw-a") == ["online", "offline", "online"]
        await trio.sleep(1.6)  # silent again: a second transition, a second alert
        assert len(h.alerts) == 2 and h.alerts[1][3] != h.alerts[0][3]
        nursery.cancel_scope.cancel()
    assert h.metric("notip_consumer_alerts_published_total") == 2
    assert h.metric("notip_consumer_heartbeat_tick_duration_seconds_count") > 10


async def test_paused_gateway_no_alert_no_status(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    h.live.grace_s = 0
    h.mgmt.states["gw-a"] = "paused"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.live.run_ticks)
        h.live.committed({A: clock()})
        await trio.sleep(5)
        assert len(h.mgmt.checks) >= 7  # asked at every tick while it is due
        assert h.alerts == [] and h.status_of("gw-a") == ["online"]
        assert h.metric("notip_consumer_alerts_suppressed_total") == len(h.mgmt.checks)
        nursery.cancel_scope.cancel()


async def test_lifecycle_error_fails_open(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    h.live.grace_s = 0
    h.mgmt.fail = True
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.live.run_ticks)
        h.live.committed({A: clock()})
        await trio.sleep(2)
        assert len(h.alerts) == 1 and h.status_of("gw-a") == ["online", "offline"]
        assert h.metric("notip_consumer_lifecycle_query_errors_total") == 1
        nursery.cancel_scope.cancel()


async def test_failed_alert_is_retried_with_the_same_id_and_no_status_before(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    h.live.grace_s = 0
    h.publish_fails.extend([True, True])
    ids: list[str] = []
    publish = h.live.publish_alert

    async def recording(subject: str, body: bytes, msg_id: str) -> None:
        ids.append(msg_id)
        await publish(subject, body, msg_id)

    h.live.publish_alert = recording
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.live.run_ticks)
        h.live.committed({A: clock()})
        await trio.sleep(2.2)  # due from the 1.5 s tick on; 1.5 and 2.0 fail
        assert h.alerts == [] and h.status_of("gw-a") == ["online"]  # alert first, then status
        await trio.sleep(0.5)
        assert len(h.alerts) == 1 and h.status_of("gw-a") == ["online", "offline"]
        nursery.cancel_scope.cancel()
    assert len(ids) == 3 and len(set(ids)) == 1  # the stream deduplicates retries
    assert h.metric("notip_consumer_alert_publish_errors_total") == 2


async def test_a_slow_tick_never_stacks(h: Harness, autojump_clock: trio.testing.MockClock) -> None:
    h.live.grace_s = 0
    h.mgmt.delay = 1.3  # each check takes 2.6 ticks
    h.mgmt.states["gw-a"] = "paused"
    starts: list[float] = []
    ends: list[float] = []
    tick = h.live.tick

    async def traced() -> None:
        starts.append(trio.current_time())
        await tick()
        ends.append(trio.current_time())

    h.live.tick = traced  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.live.run_ticks)
        h.live.committed({A: clock()})
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert all(nxt >= end for end, nxt in zip(ends, starts[1:], strict=False))
    assert h.mgmt.peak == 1
    # Ticks stay on the 0.5 s grid: missed ones are skipped, not queued up.
    assert len(starts) >= 4
    assert all(round((s - starts[0]) / 0.5, 6).is_integer() for s in starts)


async def test_checks_of_one_tick_run_concurrently_under_the_limit(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    h.live.grace_s = 0
    h.mgmt.delay = 1.0
    now = clock()
    h.live.committed({("t1", f"gw-{i}"): now for i in range(20)})
    t0 = trio.current_time()
    await trio.sleep(1.1)
    await h.live.tick()
    assert h.mgmt.peak == 4  # LIVENESS_CHECK_CONCURRENCY
    assert trio.current_time() - t0 == pytest.approx(1.1 + 5.0)  # 20 checks / 4 at a time
    assert len(h.alerts) == 20


async def test_unconfirmed_gateway_management_knows_offline_is_not_alerted_again(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    async def newest(window_s: float) -> list[SeedRow]:
        assert window_s == 1.0
        return [
            ("t1", "gw-a", clock() - 0.5, None, None),
            ("t1", "gw-b", clock() - 0.5, None, None),
        ]

    async def decommissions(since: float) -> list[tuple[str, str, float]]:
        return []

    assert await h.live.seed(newest, decommissions, 60) == 2
    h.mgmt.states["gw-a"] = "offline"
    await trio.sleep(1)
    await h.live.tick()
    assert [a[2]["gatewayId"] for a in h.alerts] == ["gw-b"]
    assert h.live.tracker.state(A) == "offline" and h.live.tracker.state(B) == "offline"
    await trio.sleep(0.1)
    assert h.status_of("gw-a") == [] and h.status_of("gw-b") == ["offline"]


async def test_every_alert_is_recorded_before_it_is_published_and_not_without_it(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    """The record (consumer_liveness_alerts) is what lets the next owner derive the same
    Nats-Msg-Id: an alert is never published before its record is written, and a failed
    record holds the alert back to the next tick."""
    events: list[tuple[str, str, float, float]] = []
    fail = [True]

    async def record(tenant: str, gateway: str, last_seen: float, window_s: float) -> None:
        if fail and fail.pop():
            raise RuntimeError("database unavailable")
        events.append((tenant, gateway, last_seen, window_s))

    h.live.record_alert = record
    seen = clock()
    h.live.committed({A: seen})
    await trio.sleep(1.1)
    await h.live.tick()
    assert h.alerts == [] and events == []  # the record failed: no alert
    assert h.metric("notip_consumer_alert_publish_errors_total") == 1
    await h.live.tick()
    assert events == [("t1", "gw-a", seen, 1.0)]
    [(_at, _subject, body, msg_id)] = h.alerts
    assert msg_id == f"gw_offline.t1.gw-a.{iso_epoch(seen)}" and body["lastSeen"] == iso_epoch(seen)


async def test_a_seed_from_an_alert_record_re_alerts_with_the_same_id(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    """A new owner seeding a gateway the former owner alerted (no newer row since) uses
    the recorded stored time, not the row's envelope time: same lastSeen, same id."""
    stored = clock() - 0.4  # what the former owner alerted with
    row = stored - 0.25  # the envelope's own timestamp of that message

    async def newest(window_s: float) -> list[SeedRow]:
        return [("t1", "gw-a", row, stored, row), ("t1", "gw-b", row + 0.1, stored, row)]

    async def decommissions(since: float) -> list[tuple[str, str, float]]:
        return []

    await h.live.seed(newest, decommissions, 60)
    assert h.live.tracker.entries[A].last_seen == stored
    assert h.live.tracker.entries[B].last_seen == row + 0.1  # spoke again: its row
    await trio.sleep(1)
    await h.live.tick()
    ids = {a[2]["gatewayId"]: a[3] for a in h.alerts}
    assert ids["gw-a"] == f"gw_offline.t1.gw-a.{iso_epoch(stored)}"
    assert ids["gw-b"] == f"gw_offline.t1.gw-b.{iso_epoch(row + 0.1)}"


async def test_a_silence_the_previous_owner_died_before_alerting_is_seeded_and_alerted(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    """The seed looks back the largest timeout plus the handover allowance: a gateway
    that fell due while the former owner was dying (it never alerted) is still seeded
    by the next owner (the store is asked for that window) and alerted once."""
    h.live.handover_s = 4.0
    assert h.live.seed_window_s() == 5.0
    windows: list[float] = []

    async def newest(window_s: float) -> list[SeedRow]:
        windows.append(window_s)
        # The store returns rows within the window only; gw-a fell due 2 s ago.
        return [("t1", "gw-a", clock() - 3.0, None, None)]

    async def decommissions(since: float) -> list[tuple[str, str, float]]:
        return []

    assert await h.live.seed(newest, decommissions, 60) == 1
    assert windows == [5.0]
    await h.live.tick()
    await h.live.tick()
    assert [a[2]["gatewayId"] for a in h.alerts] == ["gw-a"]
    await trio.sleep(0.1)
    assert h.status_of("gw-a") == ["offline"]


async def test_seed_honours_decommission_quarantine(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    async def newest(window_s: float) -> list[SeedRow]:
        return [("t1", "gw-a", clock() - 0.2, None, None)]

    async def decommissions(since: float) -> list[tuple[str, str, float]]:
        assert since == pytest.approx(clock() - 60)
        return [("t1", "gw-a", clock() - 10)]

    await h.live.seed(newest, decommissions, 60)
    assert A not in h.live.tracker


async def test_decommission_drops_pending_status(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    h.live.committed({A: clock()})
    h.live.decommissioned(A, clock())
    await trio.sleep(1)
    assert A not in h.live.tracker
    assert h.metric("notip_consumer_heartbeat_map_size") == 0


# -- alert-config refresher --------------------------------------------------------------


async def test_config_startup_retries_then_periodic_refresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = ConsumerMetrics()
    holder = ConfigHolder(AlertConfigs(1000))
    attempts: list[float] = []
    script = [
        "fail",
        "fail",
        "fail",
        AlertConfigs(1000, {"t1": 5000}),
        "fail",
        AlertConfigs(1000, {"t1": 7000}),
    ]

    async def fetch() -> AlertConfigs:
        attempts.append(trio.current_time())
        item = script.pop(0) if script else "fail"
        if item == "fail":
            raise MgmtError("no responders")
        assert isinstance(item, AlertConfigs)
        return item

    first = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_config_refresh(
                fetch=fetch,
                holder=holder,
                metrics=metrics,
                max_retries=10,
                refresh_s=100,
                clock=clock,
                fetched=first,
            )
        )
        await first.wait()
        t0 = attempts[0]
        assert trio.current_time() == t0 and holder.timeout_ms(A) == 1000  # defaults meanwhile
        await trio.sleep(8)
        assert [a - t0 for a in attempts] == [0, 1, 3, 7]  # 1 s, 2 s, 4 s backoff
        assert holder.timeout_ms(A) == 5000
        assert metrics.registry.get_sample_value(
            "notip_consumer_alert_cache_last_success_timestamp"
        ) == pytest.approx(T0 + t0 + 7)
        await trio.sleep(100)  # failed refresh at 107: keeps the snapshot
        assert attempts[-1] - t0 == 107 and holder.timeout_ms(A) == 5000
        await trio.sleep(100)  # refresh at 207 succeeds
        assert holder.timeout_ms(A) == 7000
        nursery.cancel_scope.cancel()
    assert metrics.registry.get_sample_value("notip_consumer_alert_cache_refresh_errors_total") == 4


async def test_config_startup_gives_up_after_max_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = ConsumerMetrics()
    holder = ConfigHolder(AlertConfigs(1000))
    attempts: list[float] = []

    async def fetch() -> AlertConfigs:
        attempts.append(trio.current_time())
        raise MgmtError("no responders")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_config_refresh(
                fetch=fetch, holder=holder, metrics=metrics, max_retries=2, refresh_s=1000
            )
        )
        await trio.sleep(500)
        t0 = attempts[0]
        assert [a - t0 for a in attempts] == [0, 1, 3]  # 1 + 2 retries, then periodic
        await trio.sleep(1000)
        assert [a - t0 for a in attempts] == [0, 1, 3, 1003]
        nursery.cancel_scope.cancel()
