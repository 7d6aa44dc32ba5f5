"""A three-node JetStream cluster of this package's own (the session's single server is
never touched): `NatsCluster` from notip/localservers.py, the platform's streams
created with three replicas, as `notip dev --nats-cluster 3` does."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from notip import bridge, natsio
from notip.localservers import NatsCluster
from notip.pki import PkiPaths
from tests.conftest import service_tls


@pytest.fixture
def cluster(workdir: Path, pki: PkiPaths) -> Iterator[NatsCluster]:
    """Started and stopped from the main thread, as every local server (its nodes'
    parent-death signal follows the starting thread)."""
    with NatsCluster(workdir / f"cluster-{uuid.uuid4().hex[:8]}", pki.root, size=3) as c:
        bridge.run(
            lambda: natsio.bootstrap_streams(c.url, service_tls(pki, "management-api"), replicas=3)
        )
        yield c


@pytest.fixture
def state_dir() -> Path:
    """A `notip dev` state directory (world-traversable: PostgreSQL runs as `postgres`
    under root)."""
    path = Path(tempfile.mkdtemp(prefix="notip-cluster-"))
    os.chmod(path, 0o755)
    return path
