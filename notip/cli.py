"""`notip …` entry points. Thin: each sub-package registers its own commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from notip import bridge, logs

# Modules that contribute sub-commands through `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "notip.devstack",
    "notip.tail",
    "notip.platform.cli",
    "notip.consumer.cli",
    "notip.simulator.cli",
    "notip.natsauth.cli",
)


def _tls_from_env(args: argparse.Namespace) -> tuple[str, Path, Path, Path]:
    def pick(flag: str | None, env: str) -> str:
        value = flag or os.environ.get(env)
        if not value:
            raise SystemExit(f"error: {env} is required (or pass the matching option)")
        return value

    return (
        pick(args.nats_url, "NATS_URL"),
        Path(pick(args.ca, "NATS_TLS_CA")),
        Path(pick(args.cert, "NATS_TLS_CERT")),
        Path(pick(args.key, "NATS_TLS_KEY")),
    )


def _replicas(value: str) -> int:
    # JetStream allows 1 to 5 copies of a stream.
    try:
        n = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer") from None
    if not 1 <= n <= 5:
        raise argparse.ArgumentTypeError("must be between 1 and 5")
    return n


def cmd_pki_init(args: argparse.Namespace) -> int:
    from notip.pki import init_pki

    written = init_pki(args.dir)
    print(f"PKI in {args.dir}: " + (", ".join(written) if written else "nothing to do"))
    return 0


def cmd_nats_conf(args: argparse.Namespace) -> int:
    from notip.natsconf import CalloutKeys, NatsConfig
    from notip.pki import PkiPaths

    callout = None
    if args.auth_callout:
        try:
            callout = CalloutKeys.from_pki(PkiPaths(Path(args.pki_dir)))
        except OSError as exc:
            print(
                f"notip nats conf: --auth-callout needs the keys `notip pki init` writes: {exc}",
                file=sys.stderr,
            )
            return 2
    cluster = None
    if args.cluster_routes:
        from notip.natsconf import ClusterSpec, parse_routes

        try:
            routes = parse_routes(args.cluster_routes)
        except ValueError as exc:
            print(f"notip nats conf: --cluster-routes: {exc}", file=sys.stderr)
            return 2
        cluster = ClusterSpec(
            routes=routes, port=args.cluster_port, host=args.host, name=args.cluster_name
        )
    conf = NatsConfig(
        pki_dir=Path(args.pki_dir),
        server_name=args.server_name,
        cluster=cluster,
        store_dir=Path(args.store_dir),
        host=args.host,
        port=args.port,
        monitor_port=args.monitor_port,
        # The callout without least-privilege services would leave every service
        # able to subscribe to the callout's own subject: one flag turns on both.
        service_permissions=args.service_permissions or args.auth_callout,
        auth_callout=callout,
    )
    if args.out == "-":
        sys.stdout.write(conf.render())
    else:
        conf.write(Path(args.out))
        print(f"wrote {args.out}")
    return 0


def cmd_nats_init_streams(args: argparse.Namespace) -> int:
    from notip import natsio

    url, ca, cert, key = _tls_from_env(args)

    result = bridge.run(
        lambda: natsio.bootstrap_streams(
            url, natsio.TlsFiles(ca, cert, key), timeout=args.timeout, replicas=args.replicas
        )
    )
    for name, outcome in result.items():
        print(f"{name}: {outcome}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    pki = sub.add_parser("pki", help="the platform's certificates")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    init = pki_sub.add_parser("init", help="create the CA and certificates (idempotent)")
    init.add_argument("--dir", required=True, help="PKI directory")
    init.set_defaults(func=cmd_pki_init)

    nats_p = sub.add_parser("nats", help="NATS set-up")
    nats_sub = nats_p.add_subparsers(dest="nats_command", required=True)
    conf = nats_sub.add_parser("conf", help="write nats-server.conf (mTLS, verify_and_map)")
    conf.add_argument("--pki-dir", required=True)
    conf.add_argument("--store-dir", default="/data/jetstream")
    conf.add_argument("--host", default="0.0.0.0")
    conf.add_argument("--port", type=int, default=4222)
    conf.add_argument("--monitor-port", type=int, default=8222)
    conf.add_argument("--out", default="-", help="file to write, '-' for stdout")
    conf.add_argument(
        "--service-permissions",
        action="store_true",
        help="give each service user its least-privilege permissions (docs/nats-auth.md)",
    )
    conf.add_argument(
        "--auth-callout",
        action="store_true",
        help="per-gateway users through `notip nats-auth` (implies --service-permissions; "
        "keys from --pki-dir)",
    )
    conf.add_argument(
        "--server-name", default="notip-nats", help="server_name (unique per cluster node)"
    )
    conf.add_argument(
        "--cluster-routes",
        help="make this server a cluster node: every node's route URL, comma-separated "
        "(nats-route://host:6222,…; routes with mutual TLS, docs/operations.md#nats-cluster)",
    )
    conf.add_argument("--cluster-port", type=int, default=6222, help="route port (6222)")
    conf.add_argument("--cluster-name", default="notip", help="cluster name (notip)")
    conf.set_defaults(func=cmd_nats_conf)
    streams = nats_sub.add_parser(
        "init-streams", help="create or update the six platform streams (idempotent)"
    )
    streams.add_argument("--nats-url", help="default $NATS_URL")
    streams.add_argument("--ca", help="default $NATS_TLS_CA")
    streams.add_argument("--cert", help="default $NATS_TLS_CERT")
    streams.add_argument("--key", help="default $NATS_TLS_KEY")
    streams.add_argument("--timeout", type=float, default=60.0, help="give up after (s)")
    streams.add_argument(
        "--replicas",
        type=_replicas,
        default=1,
        help="copies of each stream: 1 on a single server, 3 on a three-node cluster",
    )
    streams.set_defaults(func=cmd_nats_init_streams)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logs.setup()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
