"""notip.guards: a missing private attribute is counted every time, logged once, and
shows on every daemon's /metrics."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.requests import Request

from notip import guards, natsio
from notip.httpserve import metrics_endpoint


def count(guard: str) -> float:
    value = guards.REGISTRY.get_sample_value("notip_library_guard_missing_total", {"guard": guard})
    assert value is not None  # every known guard is exported, at 0 until it trips
    return value


def test_counted_every_time_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guards, "_warned", set())
    before = count(guards.ASYNCIO_TLS_READ_BUFFER)
    with caplog.at_level(logging.WARNING, logger="notip.guards"):
        guards.missing(guards.ASYNCIO_TLS_READ_BUFFER, "not found")
        guards.missing(guards.ASYNCIO_TLS_READ_BUFFER, "not found")
    assert count(guards.ASYNCIO_TLS_READ_BUFFER) == before + 2
    lines = [r for r in caplog.records if r.name == "notip.guards"]
    assert len(lines) == 1 and "asyncio_tls_read_buffer" in lines[0].getMessage()


class NoSubsClient:
    """A nats client whose private subscription table is gone (a future nats-py)."""

    def __init__(self) -> None:
        self.drained = False

    async def drain(self) -> None:
        self.drained = True


async def test_drain_without_the_private_table_still_drains() -> None:
    before = count(guards.NATS_SUBSCRIPTION_QUEUE)
    nc: Any = NoSubsClient()
    await natsio._drain(nc)
    assert nc.drained
    assert count(guards.NATS_SUBSCRIPTION_QUEUE) == before + 1


def test_every_daemons_metrics_route_shows_the_guards() -> None:
    endpoint = metrics_endpoint(CollectorRegistry())
    request = Request({"type": "http", "method": "GET", "path": "/metrics", "headers": []})
    text = bytes(endpoint(request).body).decode()
    for guard in guards.GUARDS:
        assert f'notip_library_guard_missing_total{{guard="{guard}"}}' in text
