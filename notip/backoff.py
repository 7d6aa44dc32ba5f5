"""Retry delays, in one place: a sans-io capped exponential schedule (`Backoff`) and
one Trio retry loop over it (`retry`).

`Backoff` holds no clock and sleeps nowhere: it only says how long the next wait is,
so every schedule is unit-tested with literal numbers. `retry` is the one loop that
sleeps on it; loops with more to do between attempts (the pipeline's write retry
extends its messages' ack deadline, the alert-config refresher signals after its
first attempt) draw their delays from a `Backoff` themselves.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

import trio

T = TypeVar("T")


def delay(attempt: int, *, initial: float, cap: float, factor: float = 2.0) -> float:
    """The wait after failed attempt number `attempt` (1-based): `initial`,
    `initial·factor`, … capped at `cap`."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    # Capped before the power can overflow: factor**n grows past any cap quickly.
    if factor > 1 and initial > 0 and attempt - 1 > math.log(cap / initial, factor) + 1:
        return cap
    return float(min(cap, initial * factor ** (attempt - 1)))


class Backoff(Iterator[float]):
    """Capped exponential delays, endless: `next()` is the wait after the next
    failure; `reset()` after a success starts again from `initial`. `limit` makes it
    finite (that many delays, i.e. `limit + 1` attempts in all)."""

    def __init__(
        self, initial: float, cap: float, *, factor: float = 2.0, limit: int | None = None
    ) -> None:
        if initial < 0 or cap < initial or factor < 1:
            raise ValueError("need 0 <= initial <= cap and factor >= 1")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.limit = limit
        self.failures = 0

    def __next__(self) -> float:
        if self.limit is not None and self.failures >= self.limit:
            raise StopIteration
        self.failures += 1
        return delay(self.failures, initial=self.initial, cap=self.cap, factor=self.factor)

    def peek(self) -> float:
        """The delay `next()` would return (without counting a failure)."""
        return delay(self.failures + 1, initial=self.initial, cap=self.cap, factor=self.factor)

    def reset(self) -> None:
        self.failures = 0

    def schedule(self) -> tuple[float, ...]:
        """All delays of a finite schedule (for APIs that take a tuple)."""
        if self.limit is None:
            raise ValueError("an endless backoff has no finite schedule")
        return tuple(
            delay(i, initial=self.initial, cap=self.cap, factor=self.factor)
            for i in range(1, self.limit + 1)
        )


async def retry(
    op: Callable[[], Awaitable[T]],
    *,
    backoff: Iterable[float],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """`await op()` until it returns, sleeping the next delay of `backoff` after each
    failure of type `retry_on` (`on_retry(exc, delay)` first: the caller's log line
    and metric). When the schedule runs out the last failure propagates; an endless
    schedule retries until the caller's cancel scope ends it. Other exceptions
    propagate at once."""
    delays = iter(backoff)
    while True:
        try:
            return await op()
        except retry_on as exc:
            wait = next(delays, None)
            if wait is None:
                raise
            if on_retry is not None:
                on_retry(exc, wait)
            await trio.sleep(wait)
