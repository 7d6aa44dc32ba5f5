from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notip.simulator.buffer import DropOldestBuffer


def test_drops_the_oldest_when_full() -> None:
    b: DropOldestBuffer[int] = DropOldestBuffer(3)
    assert b.extend([1, 2, 3]) == 0
    assert b.push(4) == 1
    assert b.peek_all() == [2, 3, 4]
    assert b.extend([5, 6, 7, 8]) == 4
    assert b.peek_all() == [6, 7, 8]


def test_take_and_requeue_keep_order() -> None:
    b: DropOldestBuffer[int] = DropOldestBuffer(5)
    b.extend([1, 2, 3, 4])
    batch = b.take(3)
    assert batch == [1, 2, 3] and b.peek_all() == [4]
    b.push(5)
    assert b.requeue([2, 3]) == 0  # the two that failed go back in front
    assert b.peek_all() == [2, 3, 4, 5]
    b.extend([6, 7])
    assert b.peek_all() == [3, 4, 5, 6, 7]  # overflow drops the requeued oldest first


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        DropOldestBuffer(0)


@given(st.integers(1, 20), st.lists(st.integers(), max_size=100))
def test_never_exceeds_capacity_and_keeps_the_newest(cap: int, items: list[int]) -> None:
    b: DropOldestBuffer[int] = DropOldestBuffer(cap)
    dropped = 0
    for item in items:
        dropped += b.push(item)
        assert len(b) <= cap
    assert b.peek_all() == items[-cap:] if items else b.peek_all() == []
    assert dropped == max(0, len(items) - cap)
