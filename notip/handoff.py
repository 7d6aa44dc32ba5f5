"""The one hand-off from asyncio callbacks (nats-py's reader, connection hooks) to
Trio tasks (docs/design.md#the-trio-asyncio-bridge).

Under trio-asyncio both sides run on one thread, but an asyncio callback must not
drive Trio's scheduler itself: it leaves work for Trio with
`TrioToken.run_sync_soon`, and every such call is a trip through Trio. So the
asyncio side only appends to a deque; Trio is woken (one `run_sync_soon`) only when
a waiting task asked for that many items — on a busy subscription that is once per
batch, not once per message, which is what keeps the consumer's pull cheap.

- asyncio side: `put(item)` (False when a bounded hand-off is full: the caller drops
  and says so), `wake()` (wake the waiters without an item: a status change they
  must look at), `call_soon(fn, *args)` (run a small Trio-side function: state
  changes such as "reconnected").
- Trio side: `wait(n, timeout)`, `take(n)`, `receive()` and `async for`; any number
  of tasks may wait at once (a wake-up wakes them all; `receive()` re-checks).

Create it on the Trio side (it captures the current Trio token).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import trio

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, *, maxlen: int | None = None) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._buf: deque[T] = deque()
        self.maxlen = maxlen
        self._event = trio.Event()
        self._want = 0  # >0: wake the waiters once this many items are buffered
        self._waiters = 0

    def __len__(self) -> int:
        return len(self._buf)

    # -- asyncio side: tiny, never blocks ----------------------------------------------

    def put(self, item: T) -> bool:
        buf = self._buf
        if self.maxlen is not None and len(buf) >= self.maxlen:
            return False
        buf.append(item)
        want = self._want
        if want and len(buf) >= want:
            self._wake()
        return True

    def wake(self) -> None:
        if self._want:
            self._wake()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the Trio side soon; dropped once Trio has finished."""
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(fn, *args)

    def _wake(self) -> None:
        self._want = 0
        self.call_soon(self._event.set)

    # -- Trio side -------------------------------------------------------------------

    async def wait(self, n: int = 1, timeout: float = math.inf) -> bool:
        """Until at least `n` items are buffered, `wake()` was called, or `timeout`
        passed; True when `n` items are there."""
        buf = self._buf
        if len(buf) >= n:
            return True
        if not self._waiters or self._event.is_set():
            # A fresh event: a wake-up scheduled for an earlier wait must not end this one.
            self._event = trio.Event()
        event = self._event
        self._want = n if not self._want else min(self._want, n)
        self._waiters += 1
        try:
            with trio.move_on_after(timeout):
                await event.wait()
        finally:
            self._waiters -= 1
            if not self._waiters:
                self._want = 0
        return len(buf) >= n

    def take(self, n: int | None = None) -> list[T]:
        """Up to `n` buffered items (all of them when None), oldest first."""
        buf = self._buf
        if n is None or len(buf) <= n:
            out = list(buf)
            buf.clear()
            return out
        return [buf.popleft() for _ in range(n)]

    async def receive(self) -> T:
        while not self._buf:
            await self.wait(1)
        return self._buf.popleft()

    def __aiter__(self) -> Handoff[T]:
        return self

    async def __anext__(self) -> T:
        return await self.receive()
