"""When a gateway's ticks are due: a sans-io fixed grid (no clock reads, no I/O; the
publisher loop in gateway.py passes the times in).

- Each tick is due one period after the previous one was *due*, not after it ran, so
  lateness does not accumulate into a lower rate.
- A change of the gateway's record (a new send frequency, a status change) applies at
  once: the next deadline is recomputed with the new period, and a tick that the
  change makes due (the new deadline is already past) is due from the change, so it
  is not counted late.
- A tick that starts a whole period late or more skips the ticks it missed (no burst
  to catch up): the grid restarts from that tick.
"""

from __future__ import annotations

import math


class TickSchedule:
    def __init__(self, period_s: float, start: float) -> None:
        """The first tick is due at `start`; the next ones every `period_s`."""
        self.period_s = period_s
        self._start = start
        self._due: float | None = None  # when the latest tick was due; None before it
        self._changed_at = -math.inf  # the latest change since the latest tick

    def next_deadline(self) -> float:
        """When the next tick is due."""
        if self._due is None:
            return self._start
        return self._due + self.period_s

    def change(self, period_s: float, now: float) -> None:
        """The record changed at `now`; its send frequency is now one per `period_s`."""
        self.period_s = period_s
        self._changed_at = now

    def start_tick(self, now: float) -> float | None:
        """The next tick starts at `now` (not before `next_deadline()`). Returns how late
        it starts after it was due (None for the first tick, which was never waited
        for) and moves the grid on."""
        if self._due is None:
            self._due = now
            return None
        due = max(self._due + self.period_s, self._changed_at)
        self._changed_at = -math.inf
        late = now - due
        # Stalled for a whole period or more: the grid restarts from now.
        self._due = now if late >= self.period_s else due
        return max(0.0, late)
