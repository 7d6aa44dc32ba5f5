"""The simulator in-process against the real services: the session's mTLS
nats-server, and the real provisioning and management stand-ins
(tests/platform_fixtures.py).

NATS identity: these tests stay on GATEWAY_IDENTITY=shared (the `simulator` service
certificate, NATS_TLS_CERT/KEY set; still one connection per gateway, with its own
inbox prefix) on purpose. The session-wide nats-server is permissive (service
certificates mapped with full access, no auth callout) so that component tests can
publish and consume as any identity; running it with the callout would put an auth
service and its management lookups in every test of the session. Least privilege and
per-gateway identity are proven where they run for real: tests/integration/natsauth
(the whole matrix on a callout server) and tests/e2e (`notip dev`, every gateway on
its own certificate, `GATEWAY_IDENTITY=own`). The `own` path is also exercised here by
test_lifecycle.py (this server rejects an unmapped certificate, as it must) and its
wire footprint by test_gateway_wire.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from notip import bridge
from notip.localservers import NatsServer
from notip.natsio import TlsFiles
from notip.pki import PkiPaths
from notip.simulator import service
from notip.simulator.service import Simulator, SimulatorInfo
from notip.simulator.settings import Settings
from tests.platform_fixtures import MgmtHandle, SeededGateway

FAST_MS = 200


def simulator_settings(
    nats_server: NatsServer, pki: PkiPaths, provisioning_url: str, db: Path, **over: Any
) -> Settings:
    base = Settings(
        provisioning_url=provisioning_url,
        nats_url=nats_server.url,
        nats_tls=TlsFiles(pki.ca_cert, pki.cert("simulator"), pki.key("simulator")),
        # The session's nats-server is permissive and has no auth callout (see the
        # module docstring): gateways connect with the service certificate here.
        gateway_identity="shared",
        sqlite_path=db,
        http_addr="127.0.0.1:0",
        metrics_addr="127.0.0.1:0",
        grpc_addr="127.0.0.1:0",
        default_send_frequency_ms=FAST_MS,
        provisioning_backoff_s=(0.1, 0.2),
        firmware_apply_s=0.05,
        command_fetch_timeout_s=2.0,
        publish_timeout_s=2.0,
        restart_backoff_s=0.2,
        shutdown_grace_s=1.0,
    )
    return dataclasses.replace(base, **over)


@dataclass
class Capture:
    """Messages of a core NATS subscription, collected on the asyncio side."""

    items: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    sub: Any = None
    clock: Callable[[], float] = lambda: 0.0

    async def on_msg(self, msg: Any) -> None:
        self.items.append((self.clock(), msg.subject, json.loads(msg.data)))

    def bodies(self) -> list[dict[str, Any]]:
        return [b for _, _, b in self.items]

    def __len__(self) -> int:
        return len(self.items)


async def capture(nc: Any, subject: str) -> Capture:
    import time

    cap = Capture(clock=time.monotonic)
    cap.sub = await bridge.call(nc.subscribe, subject, cb=cap.on_msg)
    await bridge.call(nc.flush)
    return cap


@dataclass
class SimHandle:
    sim: Simulator
    info: SimulatorInfo
    http: httpx.AsyncClient
    mgmt: MgmtHandle | None

    @property
    def settings(self) -> Settings:
        return self.sim.settings

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.info.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.info.metrics_port}/metrics"

    def sample(self, name: str, **labels: str) -> float:
        return self.sim.metrics.registry.get_sample_value(name, labels) or 0.0

    async def seed(self, **kw: Any) -> SeededGateway:
        assert self.mgmt is not None
        return await self.mgmt.new_gateway(**kw)

    async def create(
        self, seeded: SeededGateway | None = None, *, send_frequency_ms: int = FAST_MS, **body: Any
    ) -> tuple[dict[str, Any], SeededGateway]:
        """Seed a gateway in management and onboard it through the REST face."""
        seeded = seeded or await self.seed()
        payload = {
            "factoryId": seeded.factory_id,
            "factoryKey": seeded.factory_key,
            "model": seeded.model,
            "firmwareVersion": "1.0.0",
            "sendFrequencyMs": send_frequency_ms,
            **body,
        }
        r = await self.http.post("/sim/gateways", json=payload)
        assert r.status_code == 201, r.text
        return r.json(), seeded

    async def add_sensor(
        self,
        gateway_id: str,
        type_: str = "temperature",
        lo: float = -10,
        hi: float = 40,
        algorithm: str = "uniform_random",
    ) -> dict[str, Any]:
        r = await self.http.post(
            f"/sim/gateways/{gateway_id}/sensors",
            json={"type": type_, "minRange": lo, "maxRange": hi, "algorithm": algorithm},
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def gateway(self, gateway_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/sim/gateways/{gateway_id}")
        assert r.status_code == 200, r.text
        return r.json()


@asynccontextmanager
async def running_simulator(
    settings: Settings, mgmt: MgmtHandle | None = None
) -> AsyncIterator[SimHandle]:
    sim, provisioning_client = service.build(settings)
    try:
        async with trio.open_nursery() as nursery:
            info: SimulatorInfo = await nursery.start(service.run, sim)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{info.http_port}", timeout=60.0
            ) as http:
                yield SimHandle(sim, info, http, mgmt)
            nursery.cancel_scope.cancel()
    finally:
        await provisioning_client.aclose()
        sim.store.close()


@pytest.fixture
async def nc(aio_loop: None, nats_server: NatsServer, pki: PkiPaths) -> AsyncIterator[Any]:
    """A management-api connection for watching subjects and publishing commands.
    Overrides the suite's `nc` to *close* at the end: nats-py's drain can hang on a
    subscription queue and its timeout path crashes the trio-asyncio loop."""
    from notip import natsio
    from notip.simulator import natslink
    from tests.conftest import service_tls

    tls = natsio.tls_context(service_tls(pki, "management-api"))
    with trio.fail_after(10):
        conn = await natsio.connect(nats_server.url, tls, name="sim-test-probe")
    yield conn
    await bridge.shielded(natslink.close, conn, timeout=5)


@pytest.fixture
def sim_settings(
    nats_server: NatsServer, pki: PkiPaths, provisioning: str, tmp_path: Path
) -> Settings:
    return simulator_settings(nats_server, pki, provisioning, tmp_path / "sim.db")


@pytest.fixture
async def sim(sim_settings: Settings, mgmt: MgmtHandle) -> AsyncIterator[SimHandle]:
    async with running_simulator(sim_settings, mgmt) as handle:
        yield handle
