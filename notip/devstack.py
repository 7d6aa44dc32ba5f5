"""`notip dev`: the whole platform in one Trio process, no Docker.

Start order: PKI → nats-server, or a cluster of them (`--nats-cluster N`, streams with
min(3, N) replicas; docs/operations.md#nats-cluster) (mTLS, least-privilege service users, auth callout) →
streams → PostgreSQL → mgmt → nats-auth → provisioning → consumer → simulator → demo
seed. nats-auth comes right after mgmt, which it asks for each gateway's status, and
before anything a gateway connects through (docs/nats-auth.md): every demo gateway
connects with its own certificate. Shutdown is the reverse: the services' nursery is
cancelled (each finishes its in-flight work under its own shielded clean-up), then
PostgreSQL and nats-server are stopped. The two servers are child processes started
with a parent-death signal, so they never outlive this process, also when it is
killed or a service fails at start-up.

Each service is configured exactly as its own command would be: through the
environment variables of docs/contracts.md#environment-variables, parsed by its `Settings.from_env`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from notip import natsio
from notip.httpserve import host_port, http_url
from notip.localservers import NatsCluster, NatsServer, PostgresServer
from notip.natsconf import CalloutKeys
from notip.pki import PkiPaths, init_pki, write_private
from notip.runner import run_daemon

DEMO_TENANT = "00000000-0000-4000-8000-00000000d3e0"
DEMO_SENSORS: tuple[dict[str, Any], ...] = (
    {"type": "temperature", "minRange": 18.0, "maxRange": 26.0, "algorithm": "sine_wave"},
    {"type": "humidity", "minRange": 30.0, "maxRange": 60.0, "algorithm": "uniform_random"},
    {"type": "pressure", "minRange": 990.0, "maxRange": 1030.0, "algorithm": "constant"},
    {"type": "movement", "minRange": 0.0, "maxRange": 3.0, "algorithm": "spike"},
)


@dataclass(frozen=True)
class DevPaths:
    root: Path

    @property
    def pki(self) -> PkiPaths:
        return PkiPaths(self.root / "pki")

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def seed_file(self) -> Path:
        return self.root / "seeded.json"

    @property
    def pg_data(self) -> Path:
        # PostgreSQL runs as `postgres` when we are root and must reach its data
        # directory; below a private directory (e.g. /root) keep the cluster in
        # /var/tmp under a name derived from the state directory instead.
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


@dataclass
class DevConfig:
    state_dir: Path = Path(".notip")
    fresh: bool = False
    host: str = "127.0.0.1"
    nats_port: int = 4222
    pg_port: int = 55432
    mgmt_port: int = 8080
    provisioning_port: int = 3000
    sim_http_port: int = 8090
    sim_grpc_port: int = 50051
    consumer_metrics_port: int = 9090
    sim_metrics_port: int = 9091
    nats_auth_metrics_port: int = 9092
    gateways: int = 5
    #: nats-server nodes: 1 is a single server; more form a JetStream cluster on
    #: loopback (client ports nats_port, nats_port + 1, …).
    nats_cluster: int = 1
    send_frequency_ms: int = 1000
    offline_timeout_ms: int = 30000
    heartbeat_tick_ms: int = 1000
    heartbeat_grace_ms: int = 10000
    # Tests run the consumer themselves (to restart it mid-stream); see DevInfo.
    run_consumer: bool = True
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class DevInfo:
    """What is where, reported by `run_stack` once everything is up and seeded."""

    state_dir: Path
    nats_url: str
    nats_monitor_url: str
    pg_dsn: str
    mgmt_url: str
    provisioning_url: str
    sim_rest_url: str
    sim_grpc_addr: str
    consumer_metrics_url: str
    sim_metrics_url: str
    nats_auth_metrics_url: str
    tenant_id: str
    gateway_ids: list[str]
    factory_key: str
    consumer_env: dict[str, str]
    #: The running nats-server or cluster (tests kill and restart its nodes).
    nats: NatsServer | NatsCluster | None = None

    def banner(self) -> str:
        grpc = self.sim_grpc_addr
        return (
            "\nNoTIP dev stack is up (embedded: nats-server, PostgreSQL, mgmt, nats-auth, "
            "provisioning, consumer, simulator)\n"
            f"  state            {self.state_dir}\n"
            f"  simulator REST   {self.sim_rest_url}/sim/gateways\n"
            f"  simulator gRPC   {grpc}   e.g. grpcurl -plaintext {grpc} list\n"
            f"                   grpcurl -plaintext {grpc} notip.simulator.v1.SimulatorService/ListGateways\n"
            f"  mgmt admin       {self.mgmt_url}/admin/gateways?tenant_id={self.tenant_id}\n"
            f"  provisioning     {self.provisioning_url}/provision/onboard\n"
            f"  metrics          {self.consumer_metrics_url}/metrics (consumer)  "
            f"{self.sim_metrics_url}/metrics (simulator)  "
            f"{self.nats_auth_metrics_url}/metrics (nats-auth)\n"
            f"  PostgreSQL       {self.pg_dsn}?sslmode=require\n"
            f"  NATS             {self.nats_url}  (monitoring {self.nats_monitor_url}; "
            f"client certificates in {self.state_dir / 'pki'}; each gateway on its own, "
            "authorized by nats-auth)\n"
            f"  demo             tenant {self.tenant_id}, {len(self.gateway_ids)} gateways\n"
            f"  live readings    notip tail --state-dir {self.state_dir}\n"
            "  stop             Ctrl-C\n"
        )


def service_env(paths: DevPaths, service: str, nats: NatsServer | NatsCluster) -> dict[str, str]:
    pki = paths.pki
    return {
        "NATS_URL": nats.url,
        "NATS_TLS_CA": str(pki.ca_cert),
        "NATS_TLS_CERT": str(pki.cert(service)),
        "NATS_TLS_KEY": str(pki.key(service)),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "info"),
    }


def _ensure_secret(path: Path, make: Any) -> Path:
    if not path.exists():
        write_private(path, make())
    return path


async def _seed(cfg: DevConfig, paths: DevPaths, mgmt_url: str, sim_url: str) -> dict[str, Any]:
    """Create the demo tenant's gateways in mgmt (factory credentials) and onboard them
    through the simulator, each with a few sensors. Recorded in seeded.json, so a
    second run resumes instead of seeding again. Progress is recorded after each
    gateway, so a seed interrupted half-way is completed, not repeated."""
    seeded: dict[str, Any] = {"tenant_id": DEMO_TENANT, "gateway_ids": [], "complete": False}
    if paths.seed_file.exists():
        seeded = json.loads(paths.seed_file.read_text())
        if seeded.get("complete", True):
            return seeded
    factory_key = seeded.setdefault("factory_key", secrets.token_urlsafe(18))
    gateway_ids: list[str] = seeded["gateway_ids"]

    def record() -> None:
        paths.seed_file.write_text(json.dumps(seeded, indent=2))

    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(len(gateway_ids), cfg.gateways):
            factory_id = f"demo-factory-{i + 1:03d}-{uuid.uuid4().hex[:6]}"
            r = await client.post(
                f"{mgmt_url}/admin/gateways",
                json={
                    "factory_id": factory_id,
                    "factory_key": factory_key,
                    "tenant_id": DEMO_TENANT,
                    "model": "demo-gw",
                },
            )
            r.raise_for_status()
            r = await client.post(
                f"{sim_url}/sim/gateways",
                json={
                    "factoryId": factory_id,
                    "factoryKey": factory_key,
                    "model": "demo-gw",
                    "firmwareVersion": "1.0.0",
                    "sendFrequencyMs": cfg.send_frequency_ms,
                },
            )
            r.raise_for_status()
            gw = r.json()["id"]
            for sensor in DEMO_SENSORS[: 2 + i % 3]:
                r = await client.post(f"{sim_url}/sim/gateways/{gw}/sensors", json=sensor)
                r.raise_for_status()
            gateway_ids.append(gw)
            record()
        # A tenant exists in management once it has a gateway.
        r = await client.put(
            f"{mgmt_url}/alerts/config/default",
            json={
                "tenant_id": DEMO_TENANT,
                "tenant_unreachable_timeout_ms": cfg.offline_timeout_ms,
            },
        )
        r.raise_for_status()
    seeded["complete"] = True
    record()
    return seeded


async def run_stack(
    cfg: DevConfig, *, task_status: trio.TaskStatus[DevInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the whole platform until cancelled. Must run in the main thread, inside the
    trio-asyncio loop."""
    from notip.consumer.service import serve as serve_consumer
    from notip.consumer.settings import Settings as ConsumerSettings
    from notip.natsauth.service import serve as serve_nats_auth
    from notip.natsauth.settings import Settings as NatsAuthSettings
    from notip.platform.management.service import serve as serve_mgmt
    from notip.platform.management.settings import Settings as MgmtSettings
    from notip.platform.provisioning.service import serve as serve_provisioning
    from notip.platform.provisioning.settings import Settings as ProvisioningSettings
    from notip.simulator.service import serve as serve_simulator
    from notip.simulator.settings import Settings as SimulatorSettings

    paths = DevPaths(cfg.state_dir.resolve())
    if cfg.fresh:
        shutil.rmtree(paths.root, ignore_errors=True)
        shutil.rmtree(paths.pg_data.parent, ignore_errors=True)
    _open_dir(paths.root)
    init_pki(paths.pki.root)
    _open_dir(paths.pg_data.parent)
    pg_password_file = _ensure_secret(
        paths.root / "db-password", lambda: secrets.token_hex(16).encode()
    )
    mgmt_key_file = _ensure_secret(paths.root / "mgmt-key", lambda: secrets.token_bytes(32))
    password = pg_password_file.read_text().strip()
    h = cfg.host

    # Least privilege for every identity: the services are static users with their own
    # permissions, a gateway's certificate is decided by nats-auth (docs/nats-auth.md).
    nats: NatsServer | NatsCluster
    if cfg.nats_cluster > 1:
        nats = NatsCluster(
            paths.nats / "cluster",
            paths.pki.root,
            size=cfg.nats_cluster,
            ports=[cfg.nats_port + i for i in range(cfg.nats_cluster)] if cfg.nats_port else None,
            service_permissions=True,
            auth_callout=CalloutKeys.from_pki(paths.pki),
        )
    else:
        nats = NatsServer(
            paths.nats,
            paths.pki.root,
            port=cfg.nats_port or None,
            service_permissions=True,
            auth_callout=CalloutKeys.from_pki(paths.pki),
        )
    pg = PostgresServer(
        paths.pg_data,
        port=cfg.pg_port or None,
        password=password,
        tls_cert=paths.pki.postgres_server_cert,
        tls_key=paths.pki.postgres_server_key,
    )
    try:
        await nats.start_async()
        await pg.start_async()
        pki = paths.pki
        await natsio.bootstrap_streams(
            nats.url,
            natsio.TlsFiles(pki.ca_cert, pki.cert("management-api"), pki.key("management-api")),
            name="notip-dev-bootstrap",
            timeout=30,
            replicas=min(3, cfg.nats_cluster),
        )

        def env(service: str, extra: Mapping[str, str], name: str) -> dict[str, str]:
            return {**service_env(paths, service, nats), **extra, **cfg.extra_env.get(name, {})}

        mgmt_env = env(
            "management-api",
            {
                "MGMT_DB_PATH": str(paths.root / "mgmt.db"),
                "MGMT_KEY_FILE": str(mgmt_key_file),
                "HTTP_ADDR": host_port(h, cfg.mgmt_port),
            },
            "mgmt",
        )
        nats_auth_env = env(
            "nats-auth",
            {
                "CALLOUT_ISSUER_SEED_FILE": str(pki.callout_issuer_seed),
                "CALLOUT_XKEY_SEED_FILE": str(pki.callout_xkey_seed),
                "NATS_SYSTEM_SEED_FILE": str(pki.system_user_seed),
                "METRICS_ADDR": host_port(h, cfg.nats_auth_metrics_port),
            },
            "nats-auth",
        )
        prov_env = env(
            "provisioning",
            {
                "CA_CERTS_PATH": str(paths.pki.root),
                "CA_KEY_PATH": str(paths.pki.ca_key),
                "HTTP_ADDR": host_port(h, cfg.provisioning_port),
            },
            "provisioning",
        )
        consumer_env = env(
            "data-consumer",
            {
                "DB_HOST": "127.0.0.1",
                "DB_PORT": str(pg.port),
                "DB_NAME": pg.database,
                "DB_USER": pg.user,
                "DB_PASSWORD_FILE": str(pg_password_file),
                "DB_SSL_MODE": "verify-full",
                "DB_SSL_ROOT_CERT": str(paths.pki.ca_cert),
                "METRICS_ADDR": host_port(h, cfg.consumer_metrics_port),
                "HEARTBEAT_TICK_MS": str(cfg.heartbeat_tick_ms),
                "HEARTBEAT_GRACE_PERIOD_MS": str(cfg.heartbeat_grace_ms),
                "ALERT_CONFIG_REFRESH_MS": "5000",
            },
            "consumer",
        )
        async with trio.open_nursery() as nursery:
            mgmt_info = await nursery.start(serve_mgmt, MgmtSettings.from_env(mgmt_env))
            mgmt_url = http_url(h, mgmt_info.http_port)
            # Before anything a gateway connects through: it asks mgmt for their status.
            auth_info = await nursery.start(
                serve_nats_auth, NatsAuthSettings.from_env(nats_auth_env)
            )
            prov_info = await nursery.start(
                serve_provisioning, ProvisioningSettings.from_env(prov_env)
            )
            prov_url = http_url(h, prov_info.http_port)
            consumer_metrics_url = ""
            if cfg.run_consumer:
                consumer_info = await nursery.start(
                    serve_consumer, ConsumerSettings.from_env(consumer_env)
                )
                consumer_metrics_url = http_url(h, consumer_info.metrics_port)
            sim_env = {
                "PROVISIONING_URL": prov_url,
                "NATS_URL": nats.url,
                "NATS_CA_CERT_PATH": str(paths.pki.ca_cert),
                # The simulator's own identity (decommission listener).
                "NATS_TLS_CERT": str(paths.pki.cert("simulator")),
                "NATS_TLS_KEY": str(paths.pki.key("simulator")),
                # Each gateway connects with its provisioned certificate, authorized by
                # nats-auth (the simulator's certificate may not publish for them).
                "GATEWAY_IDENTITY": "own",
                "SQLITE_PATH": str(paths.root / "simulator.db"),
                "HTTP_ADDR": host_port(h, cfg.sim_http_port),
                "GRPC_ADDR": host_port(h, cfg.sim_grpc_port),
                "METRICS_ADDR": host_port(h, cfg.sim_metrics_port),
                "RECOVERY_MODE": "true",
                "DEFAULT_SEND_FREQUENCY_MS": str(cfg.send_frequency_ms),
                "LOG_LEVEL": os.environ.get("LOG_LEVEL", "info"),
                **cfg.extra_env.get("simulator", {}),
            }
            sim_info = await nursery.start(serve_simulator, SimulatorSettings.from_env(sim_env))
            sim_url = http_url(h, sim_info.http_port)
            seeded = await _seed(cfg, paths, mgmt_url, sim_url)
            task_status.started(
                DevInfo(
                    state_dir=paths.root,
                    nats_url=nats.url,
                    nats_monitor_url=nats.monitor_url,
                    pg_dsn=pg.dsn,
                    mgmt_url=mgmt_url,
                    provisioning_url=prov_url,
                    sim_rest_url=sim_url,
                    sim_grpc_addr=host_port(h, sim_info.grpc_port),
                    consumer_metrics_url=consumer_metrics_url,
                    sim_metrics_url=http_url(h, sim_info.metrics_port),
                    nats_auth_metrics_url=http_url(h, auth_info.metrics_port),
                    tenant_id=seeded["tenant_id"],
                    gateway_ids=list(seeded["gateway_ids"]),
                    factory_key=seeded["factory_key"],
                    consumer_env=consumer_env,
                    nats=nats,
                )
            )
    finally:
        with trio.CancelScope(shield=True):
            await pg.stop_async()
            await nats.stop_async()


async def _main(cfg: DevConfig) -> None:
    """Run the stack until the runner cancels it (SIGTERM or SIGINT)."""
    async with trio.open_nursery() as nursery:
        info: DevInfo = await nursery.start(run_stack, cfg)
        print(info.banner(), flush=True)


def run(args: argparse.Namespace) -> int:
    cfg = DevConfig(
        state_dir=Path(args.state_dir),
        fresh=args.fresh,
        gateways=args.gateways,
        nats_port=args.nats_port,
        pg_port=args.pg_port,
        mgmt_port=args.mgmt_port,
        provisioning_port=args.provisioning_port,
        sim_http_port=args.sim_http_port,
        sim_grpc_port=args.sim_grpc_port,
        consumer_metrics_port=args.consumer_metrics_port,
        sim_metrics_port=args.sim_metrics_port,
        nats_auth_metrics_port=args.nats_auth_metrics_port,
        send_frequency_ms=args.send_frequency_ms,
        nats_cluster=args.nats_cluster,
    )
    return run_daemon("dev", lambda: partial(_main, cfg))


def _cluster_size(value: str) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer") from None
    if not 1 <= n <= 7:
        raise argparse.ArgumentTypeError("must be between 1 and 7")
    return n


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev", help="run the whole platform locally (embedded, no Docker)")
    p.add_argument("--state-dir", default=".notip", help="where state lives (default .notip)")
    p.add_argument("--fresh", action="store_true", help="delete the state and start over")
    p.add_argument("--gateways", type=int, default=5, help="demo gateways to seed (default 5)")
    p.add_argument(
        "--nats-port",
        type=int,
        default=4222,
        help="NATS client port (a cluster's nodes: this one and the next ones)",
    )
    p.add_argument(
        "--nats-cluster",
        type=_cluster_size,
        default=1,
        metavar="N",
        help="nats-server nodes (default 1; 3: a JetStream cluster with R3 streams)",
    )
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--mgmt-port", type=int, default=8080)
    p.add_argument("--provisioning-port", type=int, default=3000)
    p.add_argument("--sim-http-port", type=int, default=8090)
    p.add_argument("--sim-grpc-port", type=int, default=50051)
    p.add_argument("--consumer-metrics-port", type=int, default=9090)
    p.add_argument("--sim-metrics-port", type=int, default=9091)
    p.add_argument("--nats-auth-metrics-port", type=int, default=9092)
    p.add_argument(
        "--send-frequency-ms", type=int, default=1000, help="demo gateways' period (default 1000)"
    )
    p.set_defaults(func=run)
