"""The enforcer's timing under trio's MockClock: follow-up kicks at their due time,
the sweep every interval."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from notip.natsauth.decide import Decider
from notip.natsauth.enforcer import Enforcer, follow_up_kicks
from notip.natsauth.metrics import Metrics


async def test_follow_ups_kick_at_their_due_time(autojump_clock: trio.testing.MockClock) -> None:
    kicked: list[tuple[float, tuple[str, str]]] = []

    async def kick(key: tuple[str, str]) -> None:
        kicked.append((trio.current_time(), key))

    send, receive = trio.open_memory_channel[tuple[float, tuple[str, str]]](10)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow_up_kicks, receive, kick)
        await send.send((start + 31, ("t", "a")))
        await trio.sleep(5)
        await send.send((start + 36, ("t", "b")))
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert kicked == [(start + 31, ("t", "a")), (start + 36, ("t", "b"))]


async def test_the_sweep_runs_every_interval(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []

    class Counting(Enforcer):
        async def sweep(self) -> int:
            times.append(trio.current_time())
            return 0

    async def ask(tenant_id: str, gateway_id: str) -> Any:
        return None

    enforcer = Counting(None, Decider(), Metrics(), ask)  # type: ignore[arg-type]
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(enforcer.sweep_forever, 60.0)
        await trio.sleep(185)
        nursery.cancel_scope.cancel()
    assert times == [start + 60, start + 120, start + 180]
