"""`notip provisioning` and `notip mgmt [--seed FILE]`: the platform stand-ins.

Settings come from the environment (docs/contracts.md#environment-variables); both run through `notip.runner`: a bad
setting or seed file prints its message on stderr and exits 2; SIGTERM/SIGINT stop the
service gracefully (exit 0); a crash exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from functools import partial
from pathlib import Path

from notip.config import ConfigError
from notip.runner import Main, run_daemon


def run_provisioning(args: argparse.Namespace) -> int:
    def prepare() -> Main:
        from notip.platform.provisioning.service import serve
        from notip.platform.provisioning.settings import Settings

        return partial(serve, Settings.from_env(os.environ))

    return run_daemon("provisioning", prepare)


def run_mgmt(args: argparse.Namespace) -> int:
    from notip.platform.management.seed import SeedError

    def prepare() -> Main:
        from notip.platform.management.seed import load_seed_file
        from notip.platform.management.service import serve
        from notip.platform.management.settings import Settings

        settings = Settings.from_env(os.environ)
        if args.seed is not None:
            load_seed_file(args.seed)  # fail before connecting to anything
            settings = dataclasses.replace(settings, seed_file=args.seed)
        return partial(serve, settings)

    # SeedError also comes from the running service: the seed conflicts with the store.
    return run_daemon("mgmt", prepare, config_errors=(ConfigError, SeedError))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
