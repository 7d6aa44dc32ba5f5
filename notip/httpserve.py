"""Hypercorn on Trio inside a daemon's nursery, and the small endpoints every daemon
has (/metrics, health)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


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
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
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
    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def ok(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})
