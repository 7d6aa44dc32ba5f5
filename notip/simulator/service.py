"""`notip simulator`: the whole daemon. Its nursery tree (docs/design.md#nursery-trees):

```
open_loop (the caller's: bridge.run / aio_loop / notip dev)
└── nursery
    ├── telemetry flusher (telemetry.py): every gateway's buffered envelopes → NATS,
    │   many gateways per bridge call; PubAcks settled in bulk (notip.jetstream.acks)
    ├── registry nursery (registry.py): restores stored gateways (RECOVERY_MODE)
    │   └── one nursery per running gateway (gateway.py)
    │       ├── publisher → ready   ├── link → commands   └── anomalies
    ├── REST gateway (hypercorn on Trio, rest_gateway.py)   HTTP_ADDR
    ├── gRPC server (grpc.aio on the trio-asyncio loop)      GRPC_ADDR
    ├── /metrics, /healthz (httpserve.standard_routes)       METRICS_ADDR
    └── decommission listener (durable simulator-decommission)
```
Start-up: store → telemetry flusher → registry (gateways restored) → REST → gRPC → metrics → decommission
listener bound → ready. Shutdown is the outer cancel: every gateway closes its NATS
connection in a shielded, time-limited scope (a command being executed sends its ack
first), the gRPC server stops in its shielded finally, then the store closes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
from starlette.applications import Starlette

from notip.httpserve import serve_http, standard_routes
from notip.simulator import decommission, grpc_api, rest_gateway
from notip.simulator.metrics import Metrics
from notip.simulator.provisioning import ProvisioningClient
from notip.simulator.registry import Registry
from notip.simulator.settings import Settings
from notip.simulator.store import Store
from notip.simulator.telemetry import TelemetryFlusher

log = logging.getLogger("notip.simulator")


@dataclass(frozen=True)
class SimulatorInfo:
    http_port: int
    grpc_port: int
    metrics_port: int
    decommission_listener: bool


@dataclass
class Simulator:
    """The daemon's parts, for whoever embeds it (tests reach in through this)."""

    settings: Settings
    store: Store
    metrics: Metrics
    registry: Registry
    ops: grpc_api.Operations
    telemetry: TelemetryFlusher


def build(settings: Settings) -> tuple[Simulator, ProvisioningClient]:
    store = Store(settings.sqlite_path)
    metrics = Metrics()
    provisioning = ProvisioningClient(
        settings.provisioning_url,
        timeout_s=settings.provisioning_timeout_s,
        backoff_s=settings.provisioning_backoff_s,
    )
    telemetry = TelemetryFlusher(settings.publish_timeout_s)
    registry = Registry(settings, store, metrics, provisioning, telemetry=telemetry)
    return Simulator(
        settings, store, metrics, registry, grpc_api.Operations(registry), telemetry
    ), provisioning


def metrics_app(metrics: Metrics) -> Starlette:
    return Starlette(routes=standard_routes(metrics.registry))


async def run(
    sim: Simulator,
    *,
    task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    s = sim.settings
    # Said once at start-up: NATS_TLS_CERT/KEY alone used to put every gateway on the
    # service certificate; a deployment still counting on that sees its gateways
    # refused, and this line says why.
    log.info(
        "gateway NATS identity: %s",
        "shared (the service certificate NATS_TLS_CERT/KEY)"
        if s.shared_identity
        else "own (each gateway's provisioned certificate; GATEWAY_IDENTITY=shared for the "
        "service certificate)",
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.telemetry.run)
        await nursery.start(sim.registry.run)
        http_port = await nursery.start(serve_http, rest_gateway.create_app(sim.ops), s.http_addr)
        grpc_port = await nursery.start(grpc_api.serve, sim.ops, s.grpc_addr)
        metrics_port = await nursery.start(serve_http, metrics_app(sim.metrics), s.metrics_addr)
        listening = await nursery.start(decommission.listen, sim.registry, s)
        task_status.started(SimulatorInfo(http_port, grpc_port, metrics_port, listening))


async def serve(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the simulator until cancelled (the trio-asyncio loop must be open)."""
    sim, provisioning = build(settings)
    try:
        await run(sim, task_status=task_status)
    finally:
        await provisioning.aclose()
        sim.store.close()
