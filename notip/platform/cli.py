"""`notip provisioning` and `notip mgmt [--seed FILE]`: the platform stand-ins.

Settings come from the environment (CONTRACTS §5); a bad setting or seed file prints
its message on stderr and exits 2. SIGTERM/SIGINT stop the service gracefully (exit 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from notip import bridge
from notip.config import ConfigError

log = logging.getLogger("notip.platform")


async def run_until_signalled(main: Callable[[], Awaitable[object]]) -> None:
    """Run `main`; the first SIGTERM/SIGINT cancels it (the services shut down
    cleanly on cancellation, with bounded clean-up)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    log.info(
                        "signal received; shutting down",
                        extra={"signal": signal.Signals(signum).name},
                    )
                    nursery.cancel_scope.cancel()
                    return

            async def run() -> None:
                await main()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(run)


def _fail(exc: BaseException) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def run_provisioning(args: argparse.Namespace) -> int:
    from notip.platform.provisioning.service import serve
    from notip.platform.provisioning.settings import Settings

    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        return _fail(exc)
    bridge.run(lambda: run_until_signalled(lambda: serve(settings)))
    return 0


def run_mgmt(args: argparse.Namespace) -> int:
    from notip.platform.management.seed import SeedError, load_seed_file
    from notip.platform.management.service import serve
    from notip.platform.management.settings import Settings

    try:
        settings = Settings.from_env(os.environ)
        if args.seed is not None:
            load_seed_file(args.seed)  # fail before connecting to anything
            settings = dataclasses.replace(settings, seed_file=args.seed)
    except (ConfigError, SeedError) as exc:
        return _fail(exc)
    failure: BaseException | None = None
    try:
        bridge.run(lambda: run_until_signalled(lambda: serve(settings)))
    except* SeedError as group:  # the seed conflicts with what the store holds
        failure = group.exceptions[0]
    return _fail(failure) if failure is not None else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "provisioning",
        help="Provisioning Service stand-in (HTTP onboarding; CSR signing; AES keys)",
        description="Settings: NATS_URL, NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY, "
        "CA_CERTS_PATH, CA_KEY_PATH, CERT_TTL_DAYS (90), HTTP_ADDR (:3000).",
    )
    p.set_defaults(func=run_provisioning)
    m = sub.add_parser(
        "mgmt",
        help="Management API stand-in, NATS side (responders, commands, admin HTTP)",
        description="Settings: NATS_URL, NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY, "
        "MGMT_DB_PATH (/data/mgmt.db), MGMT_KEY_FILE (optional), HTTP_ADDR (:8080).",
    )
    m.add_argument(
        "--seed", type=Path, metavar="FILE", help="load gateways and alert configs (idempotent)"
    )
    m.set_defaults(func=run_mgmt)
