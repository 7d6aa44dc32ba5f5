from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from notip import localservers
from notip.localservers import NatsServer, ServerError
from notip.pki import PkiPaths
from tests.waiting import eventually


def test_a_taken_port_is_reported_with_the_reason(
    nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    clash = NatsServer(tmp_path / "nats", pki.root, port=nats_server.port)
    with pytest.raises(ServerError, match=r"exited with code .*address already in use"):
        clash.start(timeout=10)
    clash.stop()


async def test_started_from_trio_the_server_outlives_the_worker_threads(
    pki: PkiPaths, tmp_path: Path
) -> None:
    """`start_async` polls in worker threads but forks on the Trio thread: the child's
    parent-death signal follows the forking thread, and Trio's idle workers exit."""
    server = NatsServer(tmp_path / "nats", pki.root)
    await server.start_async()
    try:
        assert _trio_workers(), "the readiness poll ran in a worker thread"
        # Trio retires idle workers after about 10 s.
        await eventually(
            lambda: not _trio_workers(), timeout=60, every=0.2, what="Trio's idle workers to exit"
        )
        assert server.proc is not None and server.proc.poll() is None
        assert server._ready()
    finally:
        await server.stop_async()
    assert server.proc is None


def _trio_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("Trio thread")]


def test_an_automatic_port_taken_meanwhile_is_replaced(
    nats_server: NatsServer, pki: PkiPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between `free_port()` and the server's bind another process may take the port:
    the start is retried on fresh ports (only those picked automatically)."""
    real_free_port = localservers.free_port
    picks = iter([nats_server.port])  # the first pick is already taken

    def free_port(host: str = "127.0.0.1") -> int:
        return next(picks, None) or real_free_port(host)

    monkeypatch.setattr(localservers, "free_port", free_port)
    server = NatsServer(tmp_path / "nats", pki.root)
    assert server.port == nats_server.port
    with server:
        assert server.port != nats_server.port
        assert server._ready()


def test_a_plain_server_speaks_nats_without_tls_and_has_jetstream(
    pki: PkiPaths, tmp_path: Path
) -> None:
    """`plain=True` (benchmarks compare transports with it): the server neither
    requires TLS nor authenticates, and JetStream is on."""
    with NatsServer(tmp_path / "nats", pki.root, plain=True) as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            info = json.loads(raw.recv(4096).split(b" ", 1)[1])
            raw.sendall(b'CONNECT {"verbose":true}\r\nPING\r\n')
            answer = raw.recv(4096)
        assert not info.get("tls_required") and not info.get("auth_required")
        assert info["jetstream"] is True
        assert answer.startswith(b"+OK"), answer
