"""A gateway's outbound buffer: bounded, drop-oldest, sans-io."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestBuffer(Generic[T]):
    """FIFO of at most `capacity` items; adding to a full buffer drops the oldest.
    Every method that can drop returns how many items it dropped."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._items: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def _trim(self) -> int:
        dropped = 0
        while len(self._items) > self.capacity:
            self._items.popleft()
            dropped += 1
        return dropped

    def push(self, item: T) -> int:
        self._items.append(item)
        return self._trim()

    def extend(self, items: Iterable[T]) -> int:
        self._items.extend(items)
        return self._trim()

    def take(self, limit: int | None = None) -> list[T]:
        """Remove and return up to `limit` oldest items (all by default)."""
        n = len(self._items) if limit is None else min(limit, len(self._items))
        return [self._items.popleft() for _ in range(n)]

    def requeue(self, items: list[T]) -> int:
        """Put items that could not be sent back in front, in their order: they are
        the oldest, so they are the first to go when the buffer overflows."""
        self._items.extendleft(reversed(items))
        return self._trim()

    def peek_all(self) -> list[T]:
        return list(self._items)
