"""Garbage-collector settings for a daemon once its start-up is done
(docs/design.md#measurements-behind-the-design): both daemons allocate many short-lived
objects per message or envelope and keep a large, long-lived heap (connections,
pools, gateways), which CPython's default thresholds make the collector walk again and
again."""

from __future__ import annotations

import gc

#: The collector's thresholds once the daemon is ready (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (50_000, 50, 100)


def tune_gc() -> None:
    """Once start-up is done: collect what start-up left, move every object alive now
    (modules, settings, connections, pools) out of the collector's sight for good
    (`gc.freeze`), and collect the young generation less often. The ingest path makes
    few reference cycles, but each batch keeps ~1,000 messages alive, so with
    CPython's defaults the collector ran ~230 times per 100,000 messages and walked
    the start-up heap (~70,000 objects): 1.3-2.1 µs of CPU per message in collections
    during a drain, 0.24-0.41 µs with this (timed with `gc.callbacks`,
    docs/design.md#measurements-behind-the-design)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
