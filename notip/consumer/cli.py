"""`notip consumer`: settings from the environment, run by `notip.runner` (SIGTERM or
SIGINT → graceful stop, exit 0; bad settings → exit 2; crash → exit 1)."""

from __future__ import annotations

import argparse
import gc
import os

import trio

from notip.runner import Main, run_daemon

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


def cmd_consumer(args: argparse.Namespace) -> int:
    def prepare() -> Main:
        from notip.consumer.service import serve
        from notip.consumer.settings import Settings

        settings = Settings.from_env(os.environ)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(serve, settings)
                tune_gc()

        return main

    return run_daemon("consumer", prepare)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "consumer",
        help="the data consumer: telemetry → TimescaleDB, liveness, offline alerts",
        description="Configured by environment variables (docs/consumer.md#settings).",
    )
    p.set_defaults(func=cmd_consumer)
