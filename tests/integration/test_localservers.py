from __future__ import annotations

import threading
from pathlib import Path

import pytest

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
