"""`notip nats-auth`: settings from the environment, run by `notip.runner` (SIGTERM or
SIGINT → graceful stop, exit 0; bad settings → exit 2; crash → exit 1)."""

from __future__ import annotations

import argparse
import os
from functools import partial

from notip.runner import Main, run_daemon


def cmd_nats_auth(args: argparse.Namespace) -> int:
    def prepare() -> Main:
        from notip.natsauth.service import serve
        from notip.natsauth.settings import Settings

        return partial(serve, Settings.from_env(os.environ))

    return run_daemon("nats-auth", prepare)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "nats-auth",
        help="the NATS auth callout service: per-gateway permissions, decommission kicks",
        description="Configured by environment variables (docs/nats-auth.md#settings).",
    )
    p.set_defaults(func=cmd_nats_auth)
