"""Readiness: what `/readyz` reports (NATS connected, database up, ingest durable
bound), the HTTP app serving it with `/healthz` and `/metrics`
(`httpserve.standard_routes`), and the probe that keeps the database and
consumer-lag gauges current.

`Health` is filled in by `service.serve` as start-up reaches each part, so the
endpoints answer (not ready) while the daemon is still starting."""

from __future__ import annotations

from dataclasses import dataclass

import trio
from nats.aio.client import Client as NATS
from starlette.applications import Starlette

from notip.consumer.durable import STREAM
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.settings import Settings
from notip.consumer.store import Store
from notip.httpserve import standard_routes
from notip.jetstream.consumers import consumer_pending
from notip.jetstream.pull import BatchPuller


@dataclass
class Health:
    nc: NATS | None = None
    store: Store | None = None
    puller: BatchPuller | None = None

    def checks(self) -> dict[str, bool]:
        return {
            "nats": self.nc is not None and self.nc.is_connected,
            "database": self.store is not None and self.store.up,
            "consumer": self.puller is not None and self.puller.bound and not self.puller.unbound,
        }

    @property
    def ready(self) -> bool:
        return all(self.checks().values())


def build_app(metrics: ConsumerMetrics, health: Health) -> Starlette:
    return Starlette(routes=standard_routes(metrics.registry, readiness=health.checks))


async def probe(s: Settings, nc: NATS, store: Store, metrics: ConsumerMetrics) -> None:
    """Every DB_PROBE_INTERVAL_MS: whether the database answers (readiness) and the
    ingest durable's lag from JetStream."""
    while True:
        await trio.sleep(s.db_probe_interval_ms / 1000.0)
        up = await store.probe()
        metrics.database_up.set(1 if up else 0)
        if nc.is_connected:
            pending = await consumer_pending(nc, STREAM, s.durable_name)
            if pending is not None:
                metrics.consumer_lag.set(pending)
