"""`notip consumer`: settings from the environment, SIGTERM/SIGINT → graceful stop."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

from notip import bridge
from notip.config import ConfigError
from notip.consumer.settings import Settings

log = logging.getLogger("notip.consumer")


async def run_until_signalled(settings: Settings) -> None:
    """Run the service; the first SIGTERM/SIGINT cancels it (graceful shutdown, see
    service.py), a second one during shutdown is ignored: the clean-up is bounded."""
    from notip.consumer.service import serve

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, settings)

            async def watch() -> None:
                async for signum in signals:
                    log.info(
                        "signal received; shutting down",
                        extra={"signal": signal.Signals(signum).name},
                    )
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)


def cmd_consumer(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"notip consumer: {exc}", file=sys.stderr)
        return 2
    bridge.run(lambda: run_until_signalled(settings))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "consumer",
        help="the data consumer: telemetry → TimescaleDB, liveness, offline alerts",
        description="Configured by environment variables (README: Data consumer).",
    )
    p.set_defaults(func=cmd_consumer)
