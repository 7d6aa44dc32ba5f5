from __future__ import annotations

from pathlib import Path

import pytest

from notip.localservers import NatsServer, ServerError
from notip.pki import PkiPaths


def test_a_taken_port_is_reported_with_the_reason(
    nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    clash = NatsServer(tmp_path / "nats", pki.root, port=nats_server.port)
    with pytest.raises(ServerError, match="exited with code .*address already in use"):
        clash.start(timeout=10)
    clash.stop()
