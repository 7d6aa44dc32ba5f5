from __future__ import annotations

import math
import random

import pytest

from notip.simulator.anomalies import (
    DISCONNECT,
    NETWORK_DEGRADATION,
    AnomalyState,
    check_duration,
    normalise_packet_loss,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, 0.3), (0, 0.0), (0.25, 0.25), (1, 1.0), (50, 0.5), (100, 1.0), (1.5, 0.015)],
)
def test_packet_loss_normalisation(given: float | None, expected: float) -> None:
    assert normalise_packet_loss(given) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [-0.1, 100.5, 1000, math.nan, math.inf])
def test_packet_loss_outside_range_is_invalid(bad: float) -> None:
    with pytest.raises(ValueError, match=r"within \[0, 100\]"):
        normalise_packet_loss(bad)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_non_positive_durations_are_invalid(bad: float) -> None:
    with pytest.raises(ValueError, match="must be a positive number"):
        check_duration(bad)


def test_degradation_drops_with_its_probability_until_it_ends() -> None:
    s = AnomalyState()
    s.start_degradation(now=100.0, duration=10.0, loss=0.4)
    r = random.Random(5)
    drops = sum(s.drop(105.0, r) for _ in range(10_000))
    assert 0.37 < drops / 10_000 < 0.43
    assert s.commands_blocked(105.0)
    assert not s.drop(110.0, r)  # over
    assert s.expire(110.0) == [NETWORK_DEGRADATION]
    assert s.degradation is None and not s.commands_blocked(110.0)


def test_disconnect_window_and_deadlines() -> None:
    s = AnomalyState()
    assert s.next_deadline() is None
    until = s.start_disconnect(now=0.0, duration=5.0)
    s.start_degradation(now=0.0, duration=2.0, loss=1.0)
    assert until == 5.0 and s.next_deadline() == 2.0
    assert s.disconnected(4.9) and not s.disconnected(5.0)
    assert s.expire(3.0) == [NETWORK_DEGRADATION]
    assert s.next_deadline() == 5.0
    # a second, shorter disconnect does not shorten the first
    s.start_disconnect(now=1.0, duration=1.0)
    assert s.disconnect_until == 5.0
    assert s.expire(5.0) == [DISCONNECT]
