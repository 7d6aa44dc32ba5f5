"""The embedded dev stack, in-process: its own nats-server (least-privilege service
users, auth callout) and PostgreSQL, the services and nats-auth, a seeded demo tenant
whose gateways connect with their own certificates. Short timeouts so that liveness
is observable."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import trio

from notip import bridge
from notip.devstack import DevConfig, DevInfo, run_stack

OFFLINE_TIMEOUT_MS = 3000


def e2e_config(state: Path, **overrides: Any) -> DevConfig:
    cfg = DevConfig(
        state_dir=state,
        nats_port=0,
        pg_port=0,
        mgmt_port=0,
        provisioning_port=0,
        sim_http_port=0,
        sim_grpc_port=0,
        consumer_metrics_port=0,
        sim_metrics_port=0,
        nats_auth_metrics_port=0,
        gateways=3,
        send_frequency_ms=500,
        offline_timeout_ms=OFFLINE_TIMEOUT_MS,
        heartbeat_tick_ms=200,
        heartbeat_grace_ms=500,
        # Pick up the demo tenant's default timeout, seeded after start-up, quickly.
        extra_env={"consumer": {"ALERT_CONFIG_REFRESH_MS": "1000"}},
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture
def state_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="notip-e2e-"))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
async def dev(aio_loop: None, state_dir: Path) -> AsyncIterator[DevInfo]:
    async with trio.open_nursery() as nursery:
        with trio.fail_after(120):
            info: DevInfo = await nursery.start(run_stack, e2e_config(state_dir))
        yield info
        nursery.cancel_scope.cancel()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, ssl="require")
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return await bridge.call(run)
