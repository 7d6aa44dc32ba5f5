"""`notip dev`: the embedded platform on one machine, no Docker.

Start order: PKI → nats-server (mTLS) → streams → PostgreSQL → services; stop order is
the reverse. The servers are children that die with this process (see localservers).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import trio

from notip import bridge, natsio
from notip.localservers import NatsServer, PostgresServer
from notip.pki import PkiPaths, init_pki


@dataclass
class DevPaths:
    root: Path

    @property
    def pki(self) -> PkiPaths:
        return PkiPaths(self.root / "pki")

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def pg_data(self) -> Path:
        # PostgreSQL runs as `postgres` when we are root; it must be able to reach its
        # data directory. When the state directory sits below a private one (e.g.
        # /root), keep the cluster in /var/tmp under a name derived from it.
        inside = self.root / "pg" / "data"
        if os.geteuid() != 0 or _reachable_by_others(self.root):
            return inside
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"notip-pg-{digest}" / "data"


def _reachable_by_others(path: Path) -> bool:
    for part in [path.resolve(), *path.resolve().parents]:
        if part.exists() and not part.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _open_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)


def service_tls(paths: DevPaths, service: str) -> natsio.TlsFiles:
    pki = paths.pki
    return natsio.TlsFiles(pki.ca_cert, pki.cert(service), pki.key(service))


async def _init_streams(nats: NatsServer, paths: DevPaths) -> None:
    tls = natsio.tls_context(service_tls(paths, "management-api"))
    with trio.fail_after(30):
        nc = await natsio.connect(nats.url, tls, name="notip-dev-bootstrap")
    try:
        await natsio.init_streams(nc)
    finally:
        await natsio.drain(nc)


def run(args: argparse.Namespace) -> int:
    paths = DevPaths(Path(args.state_dir).resolve())
    if args.fresh:
        shutil.rmtree(paths.root, ignore_errors=True)
        shutil.rmtree(paths.pg_data.parent, ignore_errors=True)
    _open_dir(paths.root)
    init_pki(paths.pki.root)
    _open_dir(paths.pg_data.parent)

    with NatsServer(paths.nats, paths.pki.root, port=args.nats_port or None) as nats:
        bridge.run(lambda: _init_streams(nats, paths))
        with PostgresServer(
            paths.pg_data,
            port=args.pg_port or None,
            tls_cert=paths.pki.postgres_server_cert,
            tls_key=paths.pki.postgres_server_key,
        ) as pg:
            print(
                "\nNoTIP dev stack (this stage starts the infrastructure only: nats-server "
                "with mTLS and the platform streams, and PostgreSQL)\n"
                f"  state         {paths.root}\n"
                f"  NATS          {nats.url}  (monitoring {nats.monitor_url})\n"
                f"  CA / certs    {paths.pki.root}\n"
                f"  PostgreSQL    {pg.dsn}?sslmode=require\n"
                "  stop          Ctrl-C\n",
                flush=True,
            )
            try:
                trio.run(trio.sleep_forever)
            except KeyboardInterrupt:
                print("stopping…", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dev", help="run the platform locally (embedded, no Docker)")
    p.add_argument("--state-dir", default=".notip", help="where state lives (default .notip)")
    p.add_argument("--fresh", action="store_true", help="delete the state and start over")
    p.add_argument("--nats-port", type=int, default=4222)
    p.add_argument("--pg-port", type=int, default=55432)
    p.set_defaults(func=run)
