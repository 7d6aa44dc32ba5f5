"""notip.handoff: items and wake-ups from asyncio callbacks to Trio tasks."""

from __future__ import annotations

import asyncio

import trio
import trio.testing

from notip import bridge
from notip.handoff import Handoff


async def test_receive_in_order_and_async_for() -> None:
    h: Handoff[int] = Handoff()
    got: list[int] = []

    async def consumer() -> None:
        async for item in h:
            got.append(item)
            if item == 3:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        for i in (1, 2, 3):
            assert h.put(i)
    assert got == [1, 2, 3]


async def test_a_waiter_is_woken_once_it_has_what_it_asked_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h: Handoff[str] = Handoff()
    woken_at: list[float] = []

    async def waiter() -> None:
        assert await h.wait(3, timeout=60)
        woken_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        h.put("a")
        h.put("b")
        await trio.sleep(1)
        assert woken_at == []  # two of three: still waiting
        h.put("c")
    assert woken_at == [1.0]
    assert h.take(2) == ["a", "b"] and len(h) == 1 and h.take() == ["c"]


async def test_wait_times_out_and_wake_ends_a_wait_early(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h: Handoff[int] = Handoff()
    t0 = trio.current_time()
    assert not await h.wait(1, timeout=5)
    assert trio.current_time() - t0 == 5

    async def wake_later() -> None:
        await trio.sleep(2)
        h.wake()  # a status change, no item

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wake_later)
        t1 = trio.current_time()
        assert not await h.wait(1, timeout=30)
        assert trio.current_time() - t1 == 2


async def test_a_stale_wake_up_does_not_end_the_next_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h: Handoff[int] = Handoff()
    with trio.move_on_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(h.wait, 1)
            await trio.testing.wait_all_tasks_blocked()
            h.wake()  # schedules the set …
            nursery.cancel_scope.cancel()  # … but that wait is gone
    t0 = trio.current_time()
    assert not await h.wait(1, timeout=3)
    assert trio.current_time() - t0 == 3


async def test_a_bounded_handoff_refuses_when_full() -> None:
    h: Handoff[int] = Handoff(maxlen=2)
    assert h.put(1) and h.put(2)
    assert not h.put(3)
    assert await h.receive() == 1
    assert h.put(3)
    assert h.take() == [2, 3]


async def test_many_receivers_share_the_items() -> None:
    h: Handoff[int] = Handoff()
    got: list[tuple[int, int]] = []

    async def worker(n: int) -> None:
        while True:
            got.append((n, await h.receive()))

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(worker, n)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(10):
            h.put(i)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert sorted(item for _, item in got) == list(range(10))


async def test_call_soon_runs_on_the_trio_side() -> None:
    h: Handoff[None] = Handoff()
    done = trio.Event()
    h.call_soon(done.set)
    with trio.fail_after(5):
        await done.wait()


async def test_from_real_asyncio_callbacks() -> None:
    """What nats-py does: plain asyncio callbacks put, a Trio task receives."""
    async with bridge.loop():
        h: Handoff[int] = Handoff()

        async def asyncio_side() -> None:
            loop = asyncio.get_running_loop()
            for i in range(5):
                loop.call_soon(h.put, i)
            await asyncio.sleep(0)

        await bridge.call(asyncio_side)
        with trio.fail_after(5):
            assert [await h.receive() for _ in range(5)] == [0, 1, 2, 3, 4]
