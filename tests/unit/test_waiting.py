"""The tests' one way to wait (tests/waiting.py), under Trio's MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.waiting import NotMet, eventually, stays_true


async def test_returns_the_first_truthy_value_of_a_sync_check(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[float] = []

    def check() -> list[float]:
        calls.append(trio.current_time())
        return calls if len(calls) == 3 else []

    assert await eventually(check, every=0.5) == calls
    assert [round(t - calls[0], 6) for t in calls] == [0, 0.5, 1.0]


async def test_awaits_an_async_check_and_a_lambda_returning_a_coroutine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()

    async def after_two_seconds() -> str | None:
        return "ready" if trio.current_time() - start >= 2 else None

    assert await eventually(after_two_seconds) == "ready"
    assert await eventually(lambda: after_two_seconds()) == "ready"


async def test_timeout_names_what_was_awaited_and_the_last_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[int] = []
    start = trio.current_time()
    with pytest.raises(NotMet) as info:
        await eventually(lambda: len(seen) >= 2, timeout=3)
    assert trio.current_time() - start == pytest.approx(3)
    assert str(info.value) == "timed out after 3 s waiting for len(seen) >= 2; last value: False"
    # pytest reports it as a failed check; callers may also catch Trio's timeout.
    assert isinstance(info.value, AssertionError) and isinstance(info.value, trio.TooSlowError)


class Pending(dict[str, int]):
    """A value that says "not yet" (falsy) while carrying what it saw."""

    def __bool__(self) -> bool:
        return False


async def test_the_message_uses_what_or_the_checks_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(NotMet) as info:
        await eventually(lambda: Pending(pending=4), timeout=1, what="the queue to drain")
    assert str(info.value).endswith("waiting for the queue to drain; last value: {'pending': 4}")

    async def drained() -> Pending:
        return Pending(pending=4)

    with pytest.raises(NotMet, match=r"waiting for drained\(\); last value: \{'pending': 4\}$"):
        await eventually(drained, timeout=1)


async def test_an_exception_from_the_check_fails_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()

    def check() -> bool:
        raise AssertionError("the process exited")

    with pytest.raises(AssertionError, match="the process exited"):
        await eventually(check, timeout=30)
    assert trio.current_time() == start


async def test_an_outer_deadline_still_wins(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(trio.TooSlowError) as info:
        with trio.fail_after(1):
            await eventually(lambda: False, timeout=30)
    assert not isinstance(info.value, NotMet)


async def test_stays_true_takes_the_whole_window(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[float] = []

    def quiet() -> bool:
        calls.append(trio.current_time())
        return True

    start = trio.current_time()
    await stays_true(quiet, for_s=1.0, every=0.25)
    assert trio.current_time() - start == pytest.approx(1.0)
    assert len(calls) >= 5 and calls[-1] - start == pytest.approx(1.0)


async def test_stays_true_fails_at_the_first_falsy_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received: list[str] = []
    start = trio.current_time()

    async def deliver_late() -> None:
        await trio.sleep(0.25)  # between two checks: no tie for Trio's scheduler
        received.append("a message")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(deliver_late)
        with pytest.raises(
            AssertionError, match=r"^not received stopped holding after 0\.30 s; value: False$"
        ):
            await stays_true(lambda: not received, for_s=1.0, every=0.1)
    assert trio.current_time() - start == pytest.approx(0.3)
