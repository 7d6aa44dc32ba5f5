"""`notip consumer`: settings from the environment, run by `notip.runner` (SIGTERM or
SIGINT → graceful stop, exit 0; bad settings → exit 2; crash → exit 1)."""

from __future__ import annotations

import argparse
import os

import trio

from notip.gctuning import tune_gc
from notip.runner import Main, run_daemon


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
