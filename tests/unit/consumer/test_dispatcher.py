"""The status dispatcher: the sans-io queue directly, the driver under MockClock."""

from __future__ import annotations

import trio
import trio.testing

from notip.consumer.dispatcher import Dispatcher, StatusQueue, Update
from notip.consumer.liveness import Key
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.mgmt import FAIL, OK, RETRY

A: Key = ("t", "a")
B: Key = ("t", "b")
C: Key = ("t", "c")


def test_coalesces_per_gateway_keeping_its_place() -> None:
    q = StatusQueue(10)
    assert q.submit(A, Update("online", 1), 0) == ("queued", 0)
    assert q.submit(B, Update("online", 1), 0) == ("queued", 0)
    assert q.submit(A, Update("offline", 2), 0) == ("coalesced", 0)
    assert len(q) == 2
    assert q.next_ready(0) == (A, Update("offline", 2))
    assert q.next_ready(0) == (B, Update("online", 1))
    assert q.next_ready(0) is None


def test_one_in_flight_per_gateway_and_newer_supersedes_a_failure() -> None:
    q = StatusQueue(10)
    q.submit(A, Update("offline", 1), 0)
    assert q.next_ready(0) == (A, Update("offline", 1))
    q.submit(A, Update("online", 2), 0)
    assert q.next_ready(0) is None  # A is in flight: its newer update waits
    assert q.complete(A, RETRY, 1) == ("superseded", 0)
    assert q.next_ready(1) == (A, Update("online", 2))
    assert q.complete(A, OK, 2) == ("sent", 0)
    assert len(q) == 0 and q.inflight == 0


def test_retry_backoff_and_giving_up() -> None:
    q = StatusQueue(10, backoff_base=0.5, backoff_cap=2.0, max_attempts=4)
    q.submit(A, Update("offline", 1), 0)
    now = 0.0
    waits = []
    for _ in range(3):
        key, _u = q.next_ready(now)  # type: ignore[misc]
        assert q.complete(key, RETRY, now) == ("retry", 0)
        due = q.next_due()
        assert due is not None
        waits.append(due - now)
        assert q.next_ready(due - 0.01) is None
        now = due
    assert waits == [0.5, 1.0, 2.0]
    q.next_ready(now)
    assert q.complete(A, RETRY, now) == ("gave_up", 0)
    assert len(q) == 0


def test_permanent_failure_is_not_retried() -> None:
    q = StatusQueue(10)
    q.submit(A, Update("offline", 1), 0)
    q.next_ready(0)
    assert q.complete(A, FAIL, 0) == ("failed", 0)
    assert len(q) == 0


def test_full_queue_drops_the_oldest() -> None:
    q = StatusQueue(2)
    q.submit(A, Update("online", 1), 0)
    q.submit(B, Update("online", 1), 0)
    assert q.submit(A, Update("offline", 2), 0) == ("coalesced", 0)  # no growth
    assert q.submit(C, Update("online", 1), 0) == ("queued", 1)
    assert q.pending(A) is None and q.pending(B) and q.pending(C)


def test_forget() -> None:
    q = StatusQueue(2)
    q.submit(A, Update("online", 1), 0)
    q.forget(A)
    assert len(q) == 0 and q.next_ready(0) is None


async def test_driver_bounded_concurrency_and_coalescing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = ConsumerMetrics()
    sent: list[tuple[Key, Update]] = []
    active = 0
    peak = 0

    async def slow_send(key: Key, u: Update) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await trio.sleep(1.0)
        active -= 1
        sent.append((key, u))
        return OK

    d = Dispatcher(StatusQueue(100), slow_send, concurrency=3, metrics=metrics)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(d.run)
        for i in range(10):
            d.submit(("t", f"g{i}"), "online", float(i))
        for i in range(20):  # g0 flaps while it is being sent
            d.submit(("t", "g0"), "offline" if i % 2 else "online", 100.0 + i)
            await trio.sleep(0.01)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert peak == 3
    g0 = [u for k, u in sent if k == ("t", "g0")]
    assert len(g0) == 2 and g0[-1] == Update("offline", 119.0)
    assert len(sent) == 11
    assert metrics.registry.get_sample_value("notip_consumer_status_updates_coalesced_total") == 19
    assert metrics.registry.get_sample_value("notip_consumer_dispatch_queue_length") == 0


async def test_driver_retries_with_backoff_then_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = ConsumerMetrics()
    attempts: list[float] = []

    async def flaky(key: Key, u: Update) -> str:
        attempts.append(trio.current_time())
        return OK if len(attempts) == 4 else RETRY

    d = Dispatcher(StatusQueue(10), flaky, concurrency=2, metrics=metrics)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(d.run)
        t0 = trio.current_time()
        d.submit(A, "offline", 1.0)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 3) for a, b in zip([t0, *attempts], attempts, strict=False)]
    assert gaps == [0.0, 0.5, 1.0, 2.0]
    get = metrics.registry.get_sample_value
    assert get("notip_consumer_status_update_errors_total") == 3
    assert get("notip_consumer_status_updates_sent_total") == 1
    assert get("notip_consumer_status_update_dropped_total") == 0


async def test_driver_counts_drops(autojump_clock: trio.testing.MockClock) -> None:
    metrics = ConsumerMetrics()
    gate = trio.Event()

    async def blocked(key: Key, u: Update) -> str:
        await gate.wait()
        return FAIL

    d = Dispatcher(StatusQueue(2), blocked, concurrency=1, metrics=metrics)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(d.run)
        d.submit(A, "online", 1.0)
        await trio.sleep(0.1)  # A in flight
        d.submit(B, "online", 1.0)
        d.submit(C, "online", 1.0)
        d.submit(("t", "d"), "online", 1.0)  # full: B dropped
        gate.set()
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    # 1 dropped for room + 3 permanent failures (A, C, d).
    assert metrics.registry.get_sample_value("notip_consumer_status_update_dropped_total") == 4
