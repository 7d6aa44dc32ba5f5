"""Hypercorn on Trio inside a daemon's nursery, the routes every daemon serves
(`standard_routes`: /metrics, health, readiness), and `[host]:port` formatting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notip import guards


def host_port(host: str, port: int) -> str:
    """`host:port`, an IPv6 host in brackets (`[::1]:9090`): what binds, dials and
    URLs take."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_url(host: str, port: int, path: str = "") -> str:
    return f"http://{host_port(host, port)}{path}"


def parse_addr(addr: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """`:9090`, `127.0.0.1:9090` or `[::1]:9090` → (host, port). Raises ValueError."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected [host]:port, got {addr!r}")
    host = host.strip("[]") or default_host
    return host, int(port)


def hypercorn_config(addr: str) -> Config:
    host, port = parse_addr(addr)
    config = Config()
    config.bind = [host_port(host, port)]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 3.0
    return config


async def serve_http(
    app: Any, addr: str, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `app` on `addr`; reports the bound port through `nursery.start`."""
    config = hypercorn_config(addr)

    async def _serve(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(_serve)
        task_status.started(int(binds[0].rsplit(":", 1)[1]))


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Response]:
    """The daemon's registry, then the process-wide library-guard counter."""

    def metrics(request: Request) -> Response:
        body = generate_latest(registry) + generate_latest(guards.REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics


def standard_routes(
    registry: CollectorRegistry,
    *,
    health_path: str = "/healthz",
    nats_connected: Callable[[], bool] | None = None,
    readiness: Callable[[], Mapping[str, bool]] | None = None,
) -> list[Route]:
    """The operational routes of a daemon (paths and bodies are contracts: the
    container health probe deploy/healthcheck.py, tests and dashboards read them):

    - `GET /metrics`: `metrics_endpoint(registry)`;
    - `GET {health_path}`: `{"status": "ok"}`; with `nats_connected`, 503
      `{"status": "degraded", "nats": "disconnected"}` while it answers False;
    - with `readiness` (named checks), `GET /readyz`: 200
      `{"status": "ready", "checks": {...}}` when every check passes, else 503
      `{"status": "not ready", "checks": {...}}`.
    """
    scrape = metrics_endpoint(registry)

    async def metrics(request: Request) -> Response:
        return scrape(request)

    async def health(request: Request) -> Response:
        if nats_connected is None or nats_connected():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "degraded", "nats": "disconnected"}, status_code=503)

    routes = [
        Route("/metrics", metrics, methods=["GET"]),
        Route(health_path, health, methods=["GET"]),
    ]
    if readiness is not None:
        checks = readiness

        async def readyz(request: Request) -> Response:
            results = dict(checks())
            ready = all(results.values())
            return JSONResponse(
                {"status": "ready" if ready else "not ready", "checks": results},
                status_code=200 if ready else 503,
            )

        routes.append(Route("/readyz", readyz, methods=["GET"]))
    return routes
