"""Status reports to management (`gateway.update-status`), coalesced per gateway.

`StatusQueue` is the sans-io core; `Dispatcher` drives it with N worker tasks.

- One entry per gateway: a newer status replaces the pending one (only the latest
  matters); a gateway never has two updates in flight, so they arrive in order.
- At most `capacity` (GATEWAY_BUFFER_SIZE) gateways wait; a new gateway arriving at
  a full queue drops the *oldest* waiting entry (counted).
- A failed attempt (transport failure, INTERNAL, malformed answer) is retried with
  exponential backoff (0.5 s doubling, capped at 30 s) up to `max_attempts`; a
  permanent refusal (NOT_FOUND, INVALID_PAYLOAD) is not retried. Both are counted.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from notip import backoff
from notip.consumer.liveness import Key
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.mgmt import FAIL, OK, RETRY

log = logging.getLogger("notip.consumer.dispatcher")


@dataclass(frozen=True, slots=True)
class Update:
    status: str
    last_seen: float


@dataclass(slots=True)
class _Item:
    update: Update
    attempts: int
    not_before: float


class StatusQueue:
    def __init__(
        self,
        capacity: int,
        *,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_attempts: int = 8,
    ) -> None:
        self.capacity = capacity
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_attempts = max_attempts
        self._pending: OrderedDict[Key, _Item] = OrderedDict()
        self._inflight: dict[Key, _Item] = {}

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def pending(self, key: Key) -> Update | None:
        item = self._pending.get(key)
        return None if item is None else item.update

    def backoff(self, attempts: int) -> float:
        """The wait after failed attempt number `attempts` (1-based)."""
        return backoff.delay(attempts, initial=self.backoff_base, cap=self.backoff_cap)

    def _add(self, key: Key, item: _Item) -> int:
        dropped = 0
        while len(self._pending) >= self.capacity:
            self._pending.popitem(last=False)
            dropped += 1
        self._pending[key] = item
        return dropped

    def submit(self, key: Key, update: Update, now: float) -> tuple[str, int]:
        """Returns ("queued" | "coalesced", number of entries dropped to make room)."""
        item = self._pending.get(key)
        if item is not None:
            item.update = update
            item.attempts = 0  # keep its place and any backoff already running
            return "coalesced", 0
        return "queued", self._add(key, _Item(update, 0, now))

    def next_ready(self, now: float) -> tuple[Key, Update] | None:
        for key, item in self._pending.items():
            if item.not_before <= now and key not in self._inflight:
                del self._pending[key]
                self._inflight[key] = item
                return key, item.update
        return None

    def next_due(self) -> float | None:
        due = [i.not_before for k, i in self._pending.items() if k not in self._inflight]
        return min(due) if due else None

    def complete(self, key: Key, outcome: str, now: float) -> tuple[str, int]:
        """Returns (what happened, entries dropped): "sent", "retry", "superseded" (a
        newer update is already waiting), "failed" (permanent), "gave_up"."""
        item = self._inflight.pop(key, None)
        if item is None:
            return "forgotten", 0
        if outcome == OK:
            return "sent", 0
        if key in self._pending:
            return "superseded", 0
        if outcome == FAIL:
            return "failed", 0
        attempts = item.attempts + 1
        if attempts >= self.max_attempts:
            return "gave_up", 0
        item.attempts = attempts
        item.not_before = now + self.backoff(attempts)
        return "retry", self._add(key, item)

    def forget(self, key: Key) -> None:
        self._pending.pop(key, None)


Sender = Callable[[Key, Update], Awaitable[str]]


class Dispatcher:
    def __init__(
        self,
        queue: StatusQueue,
        send: Sender,
        *,
        concurrency: int,
        metrics: ConsumerMetrics,
        fence: Callable[[], bool] = lambda: True,
    ) -> None:
        self.queue = queue
        #: False once this instance may no longer act as the liveness owner (lease.py)
        self.fence = fence
        self.send = send
        self.concurrency = concurrency
        self.metrics = metrics
        self._changed = trio.Event()

    def _kick(self) -> None:
        self.metrics.dispatch_queue_length.set(len(self.queue))
        self._changed.set()
        self._changed = trio.Event()

    def submit(self, key: Key, status: str, last_seen: float) -> None:
        how, dropped = self.queue.submit(key, Update(status, last_seen), trio.current_time())
        if how == "coalesced":
            self.metrics.status_updates_coalesced.inc()
        if dropped:
            self.metrics.status_update_dropped.inc(dropped)
            log.warning("status buffer full: oldest update dropped", extra={"dropped": dropped})
        self._kick()

    def forget(self, key: Key) -> None:
        self.queue.forget(key)
        self._kick()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self.concurrency):
                nursery.start_soon(self._worker)

    async def _next(self) -> tuple[Key, Update]:
        while True:
            got = self.queue.next_ready(trio.current_time())
            if got is not None:
                self.metrics.dispatch_queue_length.set(len(self.queue))
                return got
            due = self.queue.next_due()
            changed = self._changed
            with trio.move_on_at(due if due is not None else math.inf):
                await changed.wait()

    async def _worker(self) -> None:
        while True:
            key, update = await self._next()
            if not self.fence():
                # The lease lapsed: the owner's scope is being cancelled, and a former
                # owner never reports (the next owner reports from its own tracker).
                await trio.sleep_forever()
            try:
                outcome = await self.send(key, update)
            except Exception:
                log.exception("status update failed", extra={"gateway_id": key[1]})
                outcome = RETRY
            if outcome == OK:
                self.metrics.status_updates_sent.inc()
            else:
                self.metrics.status_update_errors.inc()
            what, dropped = self.queue.complete(key, outcome, trio.current_time())
            if what in ("failed", "gave_up"):
                self.metrics.status_update_dropped.inc()
                log.warning(
                    "status update given up",
                    extra={"gateway_id": key[1], "status": update.status, "why": what},
                )
            if dropped:
                self.metrics.status_update_dropped.inc(dropped)
            self._kick()
