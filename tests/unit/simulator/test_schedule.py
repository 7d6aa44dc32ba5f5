"""The tick grid (schedule.py) with literal times: what the publisher loop in
gateway.py waits for and what lateness it records."""

from __future__ import annotations

import pytest

from notip.simulator.schedule import TickSchedule


def run_on_time(schedule: TickSchedule, ticks: int) -> list[float]:
    """Start `ticks` ticks, each exactly at its deadline; returns their start times."""
    times = []
    for _ in range(ticks):
        now = schedule.next_deadline()
        schedule.start_tick(now)
        times.append(now)
    return times


def test_the_first_tick_is_due_at_start_and_is_never_late() -> None:
    schedule = TickSchedule(1.0, start=100.0)
    assert schedule.next_deadline() == 100.0
    assert schedule.start_tick(100.0) is None  # no due time: nothing to observe
    assert schedule.next_deadline() == 101.0


def test_on_time_ticks_follow_the_period_with_zero_lateness() -> None:
    schedule = TickSchedule(1.0, start=0.0)
    schedule.start_tick(0.0)
    for expected in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert schedule.next_deadline() == expected
        assert schedule.start_tick(expected) == 0.0


def test_a_late_tick_is_late_by_the_delay_and_the_grid_does_not_drift() -> None:
    schedule = TickSchedule(1.0, start=0.0)
    assert run_on_time(schedule, 3) == [0.0, 1.0, 2.0]
    assert schedule.next_deadline() == 3.0
    assert schedule.start_tick(3.3) == pytest.approx(0.3)  # the loop was held until 3.3
    assert schedule.next_deadline() == 4.0  # due one period after 3, not after 3.3
    assert run_on_time(schedule, 2) == [4.0, 5.0]


def test_ticks_missed_by_a_long_stall_are_skipped_not_burst() -> None:
    schedule = TickSchedule(1.0, start=0.0)
    assert run_on_time(schedule, 2) == [0.0, 1.0]
    assert schedule.start_tick(3.5) == pytest.approx(1.5)  # the tick due at 2 ran at 3.5
    assert schedule.next_deadline() == 4.5  # the grid restarts from 3.5: no tick at 4
    assert schedule.start_tick(4.5) == 0.0


def test_exactly_one_period_late_restarts_the_grid() -> None:
    schedule = TickSchedule(1.0, start=0.0)
    schedule.start_tick(0.0)
    assert schedule.start_tick(2.0) == 1.0
    assert schedule.next_deadline() == 3.0
    schedule.start_tick(3.0)
    assert schedule.start_tick(4.999) == pytest.approx(0.999)  # just under a period
    assert schedule.next_deadline() == 5.0  # the grid is kept: due at 5, not 5.999


def test_a_shorter_period_applies_at_once_and_its_tick_is_not_late() -> None:
    schedule = TickSchedule(60.0, start=0.0)
    schedule.start_tick(0.0)
    assert schedule.next_deadline() == 60.0
    schedule.change(0.5, now=1.0)
    assert schedule.next_deadline() == 0.5  # already past: the loop ticks at once
    assert schedule.start_tick(1.0) == 0.0  # due from the change, not from 0.5
    assert schedule.next_deadline() == 1.5
    assert run_on_time(schedule, 2) == [1.5, 2.0]


def test_a_longer_period_moves_the_next_deadline_out() -> None:
    schedule = TickSchedule(1.0, start=0.0)
    schedule.start_tick(0.0)
    schedule.change(10.0, now=0.5)
    assert schedule.next_deadline() == 10.0
    assert schedule.start_tick(10.0) == 0.0


def test_a_change_that_makes_no_tick_due_leaves_the_grid() -> None:
    """A status change (same period) before the deadline: the tick stays on the grid."""
    schedule = TickSchedule(1.0, start=0.0)
    run_on_time(schedule, 4)  # 0, 1, 2, 3
    schedule.change(1.0, now=3.5)
    assert schedule.next_deadline() == 4.0
    assert schedule.start_tick(4.0) == 0.0
    assert schedule.next_deadline() == 5.0


def test_a_change_counts_for_the_next_tick_only() -> None:
    schedule = TickSchedule(60.0, start=0.0)
    schedule.start_tick(0.0)
    schedule.change(0.5, now=1.0)
    schedule.start_tick(1.0)
    # the next tick, held up by 0.2 s, is late by 0.2 s from its grid time 1.5
    assert schedule.start_tick(1.7) == pytest.approx(0.2)
