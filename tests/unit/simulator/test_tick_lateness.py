"""`notip_sim_tick_lateness_seconds`: how late each tick starts after it was due
(the scale benchmark's tick-lateness p99 comes from it), and the fixed tick grid
(a late tick does not delay the following ones, so the rate does not drift).
The grid's arithmetic is tested with literal times in test_schedule.py; these drive
the publisher task under MockClock. A tick that blocks the loop is simulated by
jumping the clock inside it (through the injected wall clock, which every tick reads
once)."""

from __future__ import annotations

import datetime as dt

import trio
import trio.testing

from notip.simulator.gateway import GatewayDeps, GatewayRuntime

from .conftest import add_sensor, make_record

NAME = "notip_sim_tick_lateness_seconds"


def block_tick(
    deps: GatewayDeps, clock: trio.testing.MockClock, *, at_call: int, seconds: float
) -> list[float]:
    """Make the `at_call`-th tick hold the loop for `seconds`; returns the list the
    ticks' start times are recorded in."""
    times: list[float] = []

    def slow_wall_clock() -> dt.datetime:
        times.append(trio.current_time())
        if len(times) == at_call:
            clock.jump(seconds)
        return dt.datetime.now(dt.UTC)

    deps.now_utc = slow_wall_clock
    return times


def sample(deps: GatewayDeps, suffix: str, **labels: str) -> float:
    value = deps.metrics.registry.get_sample_value(NAME + suffix, labels)
    assert value is not None
    return value


async def test_on_time_ticks_are_observed_with_zero_lateness(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        n.start_soon(runtime.publisher)
        await trio.sleep(5.5)  # ticks at 0..5: the first has no due time
        n.cancel_scope.cancel()
    assert sample(deps, "_count") == 5
    assert sample(deps, "_sum") == 0
    assert sample(deps, "_bucket", le="0.0005") == 5


async def test_a_tick_delayed_by_a_blocked_loop_is_late_by_the_delay(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    times = block_tick(deps, autojump_clock, at_call=3, seconds=1.3)
    async with trio.open_nursery() as n:
        t0 = trio.current_time()
        n.start_soon(runtime.publisher)
        await trio.sleep(5.5)  # ticks at 0, 1, 2 (holds the loop until 3.3), 3.3, 4, 5
        n.cancel_scope.cancel()
    assert [round(t - t0, 3) for t in times] == [0.0, 1.0, 2.0, 3.3, 4.0, 5.0]  # no drift
    assert sample(deps, "_count") == 5
    assert abs(sample(deps, "_sum") - 0.3) < 1e-6
    assert sample(deps, "_bucket", le="0.25") == 4
    assert sample(deps, "_bucket", le="0.5") == 5


async def test_ticks_missed_by_a_long_stall_are_skipped_not_burst(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    times = block_tick(deps, autojump_clock, at_call=2, seconds=2.5)
    async with trio.open_nursery() as n:
        t0 = trio.current_time()
        n.start_soon(runtime.publisher)
        await trio.sleep(5.0)  # ticks at 0, 1 (holds the loop until 3.5), 3.5, 4.5
        n.cancel_scope.cancel()
    assert [round(t - t0, 3) for t in times] == [0.0, 1.0, 3.5, 4.5]
    assert abs(sample(deps, "_sum") - 1.5) < 1e-6  # the tick due at 2 ran at 3.5


async def test_a_tick_made_due_by_a_new_frequency_is_not_late(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=60_000)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        n.start_soon(runtime.publisher)
        await trio.sleep(1)
        rec.send_frequency_ms = 500  # due 0.5 s after the t=0 tick, i.e. already past
        rec.changed.fire()
        await trio.sleep(1.2)
        n.cancel_scope.cancel()
    # ticks at 0, then at once at t=1, then 1.5, 2.0: none late
    assert sample(deps, "_count") == 3
    assert sample(deps, "_sum") == 0
