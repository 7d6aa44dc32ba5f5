"""The operational routes every daemon serves (their paths and bodies are contracts:
deploy/healthcheck.py and the tests of each daemon read them) and `[host]:port`."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette

from notip.httpserve import host_port, http_url, standard_routes


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d")


async def test_metrics_and_healthz_without_checks() -> None:
    registry = CollectorRegistry()
    Counter("notip_test_things", "Things", registry=registry).inc(3)
    async with client(Starlette(routes=standard_routes(registry))) as http:
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "notip_test_things_total 3.0" in metrics.text
        health = await http.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert (await http.get("/readyz")).status_code == 404  # no readiness given
        assert (await http.post("/healthz")).status_code == 405


async def test_stand_in_health_follows_the_nats_connection() -> None:
    connected = [True]
    routes = standard_routes(
        CollectorRegistry(), health_path="/health", nats_connected=lambda: connected[0]
    )
    async with client(Starlette(routes=routes)) as http:
        ok = await http.get("/health")
        assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
        connected[0] = False
        down = await http.get("/health")
        assert down.status_code == 503
        assert down.json() == {"status": "degraded", "nats": "disconnected"}
        assert (await http.get("/healthz")).status_code == 404


async def test_readyz_names_every_check() -> None:
    checks = {"nats": True, "database": True}
    routes = standard_routes(CollectorRegistry(), readiness=lambda: checks)
    async with client(Starlette(routes=routes)) as http:
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": checks})
        checks["database"] = False
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == {
            "status": "not ready",
            "checks": {"nats": True, "database": False},
        }


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", "127.0.0.1:80"), ("localhost", "localhost:80"), ("::1", "[::1]:80")],
)
def test_host_port_brackets_ipv6(host: str, expected: str) -> None:
    assert host_port(host, 80) == expected
    assert http_url(host, 80, "/health") == f"http://{expected}/health"
