"""Wall-clock time for the management stand-in, injectable for tests, and the one
timestamp format it stores and answers with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_us(ts: dt.datetime) -> str:
    """UTC ISO 8601 with microseconds and a `Z`, fixed width: stored strings sort
    chronologically, which the store relies on (last_seen_at comparisons)."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
