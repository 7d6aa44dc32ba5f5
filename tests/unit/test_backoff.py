"""notip.backoff: the delay schedule with literal numbers, the retry loop under
MockClock (no real sleeps)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from notip.backoff import Backoff, delay, retry


def test_doubles_up_to_the_cap_and_resets() -> None:
    b = Backoff(0.2, cap=5.0)
    assert [next(b) for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert b.failures == 7
    b.reset()
    assert b.peek() == 0.2 and next(b) == 0.2


def test_other_factors_and_constant_delays() -> None:
    assert [next(b) for b in [Backoff(1.0, cap=60.0, factor=3.0)] for _ in range(5)] == [
        1.0,
        3.0,
        9.0,
        27.0,
        60.0,
    ]
    constant = Backoff(2.0, cap=2.0)
    assert [next(constant) for _ in range(3)] == [2.0, 2.0, 2.0]


def test_a_limited_schedule_ends() -> None:
    b = Backoff(1.0, cap=4.0, limit=5)
    assert list(b) == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert Backoff(1.0, cap=4.0, limit=3).schedule() == (1.0, 2.0, 4.0)
    assert Backoff(1.0, cap=4.0, limit=0).schedule() == ()
    with pytest.raises(ValueError, match="endless backoff"):
        Backoff(1.0, cap=4.0).schedule()


def test_delay_formula() -> None:
    assert delay(1, initial=0.5, cap=30.0) == 0.5
    assert delay(4, initial=0.5, cap=30.0) == 4.0
    assert delay(7, initial=0.5, cap=30.0) == 30.0
    assert delay(10_000, initial=0.5, cap=30.0) == 30.0  # no overflow
    with pytest.raises(ValueError, match="attempt numbers start at 1"):
        delay(0, initial=0.5, cap=30.0)


@pytest.mark.parametrize(("initial", "cap", "factor"), [(-1, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_rejects_nonsense(initial: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError, match="initial <= cap and factor >= 1"):
        Backoff(initial, cap, factor=factor)


class Flaky:
    def __init__(self, failures: int, exc: type[Exception] = OSError) -> None:
        self.failures = failures
        self.exc = exc
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(trio.current_time())
        if len(self.calls) <= self.failures:
            raise self.exc(f"failure {len(self.calls)}")
        return "done"


async def test_retry_sleeps_the_schedule_and_reports_each_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    op = Flaky(failures=4)
    seen: list[tuple[str, float]] = []
    t0 = trio.current_time()
    result = await retry(
        op,
        backoff=Backoff(0.5, cap=2.0),
        retry_on=OSError,
        on_retry=lambda exc, wait: seen.append((str(exc), wait)),
    )
    assert result == "done"
    assert seen == [("failure 1", 0.5), ("failure 2", 1.0), ("failure 3", 2.0), ("failure 4", 2.0)]
    assert [round(t - t0, 6) for t in op.calls] == [0.0, 0.5, 1.5, 3.5, 5.5]


async def test_retry_gives_up_when_a_finite_schedule_runs_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    op = Flaky(failures=10)
    with pytest.raises(OSError, match="failure 4"):
        await retry(op, backoff=(1.0, 2.0, 4.0), retry_on=OSError)
    assert len(op.calls) == 4
    with pytest.raises(OSError, match="failure 5"):
        await retry(op, backoff=(), retry_on=OSError)  # one attempt, no retry


async def test_retry_does_not_retry_other_errors(autojump_clock: trio.testing.MockClock) -> None:
    op = Flaky(failures=1, exc=KeyError)
    with pytest.raises(KeyError):
        await retry(op, backoff=Backoff(1.0, cap=1.0), retry_on=OSError)
    assert len(op.calls) == 1


async def test_an_endless_retry_ends_with_its_cancel_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    op = Flaky(failures=10**9)
    with trio.move_on_after(100) as scope:
        await retry(op, backoff=Backoff(1.0, cap=10.0), retry_on=OSError)
    assert scope.cancelled_caught
    # 0, 1, 3, 7, 15, 25, 35, …, 95: attempts until the deadline
    assert len(op.calls) == 4 + 9
