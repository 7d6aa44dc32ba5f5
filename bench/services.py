"""The platform stand-ins and the simulator as separate processes, for the simulator
and control-plane benchmarks: `notip mgmt`, `notip provisioning`, `notip simulator`,
each configured through its environment variables (docs/contracts.md#environment-variables) exactly as `notip dev` does
(notip/devstack.py), on the benchmark's nats-server. Plus the HTTP steps these
benchmarks share: seeding factory credentials in mgmt (admin HTTP, docs/contracts.md#management-admin-http),
creating gateways through the simulator's bulk route (onboarding included) and
adding sensors."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from bench.harness import Child, Stack
from notip import natsio
from notip.httpserve import host_port, http_url
from notip.localservers import free_port

NOTIP = [sys.executable, "-m", "notip"]
FACTORY_KEY = "bench-factory-key"
SENSOR_SPECS: tuple[dict[str, Any], ...] = (
    {"type": "temperature", "minRange": 18.0, "maxRange": 26.0, "algorithm": "sine_wave"},
    {"type": "humidity", "minRange": 30.0, "maxRange": 60.0, "algorithm": "uniform_random"},
    {"type": "pressure", "minRange": 990.0, "maxRange": 1030.0, "algorithm": "constant"},
    {"type": "movement", "minRange": 0.0, "maxRange": 3.0, "algorithm": "spike"},
    {"type": "biometric", "minRange": 50.0, "maxRange": 120.0, "algorithm": "uniform_random"},
)


@dataclass
class Services:
    mgmt_url: str
    provisioning_url: str
    sim_url: str
    sim_grpc: str
    sim_metrics_url: str
    sim: trio.Process
    nats_pid: int
    tenants: list[str] = field(default_factory=lambda: [str(uuid.uuid4()) for _ in range(10)])
    _factory_seq: int = 0

    # -- mgmt: factory credentials ------------------------------------------------------

    async def seed_factories(self, count: int, concurrency: int = 8) -> list[str]:
        """Register `count` fresh factory ids (spread over the tenants) in mgmt."""
        ids = [f"bench-{self._factory_seq + i:06d}-{uuid.uuid4().hex[:6]}" for i in range(count)]
        self._factory_seq += count
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(i: int, factory_id: str) -> None:
                r = await client.post(
                    f"{self.mgmt_url}/admin/gateways",
                    json={
                        "factory_id": factory_id,
                        "factory_key": FACTORY_KEY,
                        "tenant_id": self.tenants[i % len(self.tenants)],
                        "model": "bench-gw",
                    },
                )
                r.raise_for_status()

            await _bounded(concurrency, [lambda i=i, f=f: one(i, f) for i, f in enumerate(ids)])
        return ids

    # -- simulator REST -----------------------------------------------------------------

    async def bulk_create(
        self, factory_ids: list[str], send_frequency_ms: int, chunk: int | None = None
    ) -> list[str]:
        """Create gateways through `POST /sim/gateways/bulk` (onboarding included), in
        requests of `chunk` ids (all in one request by default). Returns their ids."""
        chunk = chunk or len(factory_ids)
        out: list[str] = []
        async with httpx.AsyncClient(timeout=None) as client:
            for start in range(0, len(factory_ids), chunk):
                ids = factory_ids[start : start + chunk]
                r = await client.post(
                    f"{self.sim_url}/sim/gateways/bulk",
                    json={
                        "factoryIds": ids,
                        "factoryKey": FACTORY_KEY,
                        "model": "bench-gw",
                        "firmwareVersion": "1.0.0",
                        "sendFrequencyMs": send_frequency_ms,
                    },
                )
                if r.status_code != 201:
                    raise RuntimeError(f"bulk create: {r.status_code} {r.text[:500]}")
                out += [g["id"] for g in r.json()["gateways"]]
        return out

    async def add_sensors(self, gateway_ids: list[str], per_gateway: int) -> None:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(gw: str, spec: dict[str, Any]) -> None:
                r = await client.post(f"{self.sim_url}/sim/gateways/{gw}/sensors", json=spec)
                r.raise_for_status()

            specs = [SENSOR_SPECS[k % len(SENSOR_SPECS)] for k in range(per_gateway)]
            await _bounded(
                8,
                [lambda gw=gw, spec=spec: one(gw, spec) for gw in gateway_ids for spec in specs],
            )

    async def set_running(self, gateway_ids: list[str], running: bool) -> None:
        action = "start" if running else "stop"
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(gw: str) -> None:
                r = await client.post(f"{self.sim_url}/sim/gateways/{gw}/{action}")
                r.raise_for_status()

            await _bounded(8, [lambda gw=gw: one(gw) for gw in gateway_ids])


async def _bounded(concurrency: int, jobs: list[Any]) -> None:
    limiter = trio.CapacityLimiter(concurrency)

    async def run(job: Any) -> None:
        async with limiter:
            await job()

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(run, job)


async def _wait_healthy(url: str, proc: trio.Process, what: str, timeout: float = 60) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        with trio.fail_after(timeout):
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"{what} exited with {proc.returncode} at start-up")
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


@asynccontextmanager
async def platform(stack: Stack, sim_env: dict[str, str] | None = None) -> AsyncIterator[Services]:
    """mgmt, provisioning and the simulator as three processes (logs in the stack's
    directory), ready to use."""
    await natsio.bootstrap_streams(
        stack.nats.url, stack.tls("management-api"), name="bench-streams"
    )
    pki, h = stack.pki, "127.0.0.1"
    logs = stack.root / "logs"

    def nats_env(service: str) -> dict[str, str]:
        return {
            "NATS_URL": stack.nats.url,
            "NATS_TLS_CA": str(pki.ca_cert),
            "NATS_TLS_CERT": str(pki.cert(service)),
            "NATS_TLS_KEY": str(pki.key(service)),
            "LOG_LEVEL": "warning",
        }

    mgmt_port, prov_port = free_port(), free_port()
    sim_http, sim_grpc, sim_metrics = free_port(), free_port(), free_port()
    mgmt_env = {
        **nats_env("management-api"),
        "MGMT_DB_PATH": str(stack.root / "mgmt.db"),
        "HTTP_ADDR": host_port(h, mgmt_port),
    }
    prov_env = {
        **nats_env("provisioning"),
        "CA_CERTS_PATH": str(pki.root),
        "CA_KEY_PATH": str(pki.ca_key),
        "HTTP_ADDR": host_port(h, prov_port),
    }
    prov_url = http_url(h, prov_port)
    simulator_env = {
        "PROVISIONING_URL": prov_url,
        "NATS_URL": stack.nats.url,
        "NATS_CA_CERT_PATH": str(pki.ca_cert),
        # The benchmark's nats-server runs without the auth callout (it measures the
        # data path, not admission): every gateway opens its own connection with the
        # simulator's certificate (GATEWAY_IDENTITY=shared; notip dev uses `own`).
        "NATS_TLS_CERT": str(pki.cert("simulator")),
        "NATS_TLS_KEY": str(pki.key("simulator")),
        "GATEWAY_IDENTITY": "shared",
        "SQLITE_PATH": str(stack.root / "simulator.db"),
        "HTTP_ADDR": host_port(h, sim_http),
        "GRPC_ADDR": host_port(h, sim_grpc),
        "METRICS_ADDR": host_port(h, sim_metrics),
        "LOG_LEVEL": "warning",
        **(sim_env or {}),
    }
    async with AsyncExitStack() as procs:
        mgmt = await procs.enter_async_context(
            Child([*NOTIP, "mgmt"], mgmt_env, log=logs / "mgmt.log")
        )
        prov = await procs.enter_async_context(
            Child([*NOTIP, "provisioning"], prov_env, log=logs / "provisioning.log")
        )
        sim = await procs.enter_async_context(
            Child([*NOTIP, "simulator"], simulator_env, log=logs / "simulator.log")
        )
        await _wait_healthy(http_url(h, mgmt_port, "/health"), mgmt, "notip mgmt")
        await _wait_healthy(f"{prov_url}/health", prov, "notip provisioning")
        await _wait_healthy(http_url(h, sim_http, "/health"), sim, "notip simulator")
        await _wait_healthy(http_url(h, sim_metrics, "/healthz"), sim, "notip simulator metrics")
        assert stack.nats.proc is not None, "stack not started"
        yield Services(
            mgmt_url=http_url(h, mgmt_port),
            provisioning_url=prov_url,
            sim_url=http_url(h, sim_http),
            sim_grpc=host_port(h, sim_grpc),
            sim_metrics_url=http_url(h, sim_metrics, "/metrics"),
            sim=sim,
            nats_pid=stack.nats.proc.pid,
        )
