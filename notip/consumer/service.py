"""`notip consumer`: the whole daemon, its nursery tree, start-up and shutdown order.

```
serve(settings)                       (the trio-asyncio loop is already open)
└── root nursery
    ├── http: /metrics /healthz /readyz (health.py)        first: alive while starting
    ├── [start-up] NATS (mTLS) → ingest durable on TELEMETRY (durable.py)
    │              → PostgreSQL pool + migrations (store.py)
    └── tasks nursery
        ├── db probe: readiness + consumer lag, every DB_PROBE_INTERVAL_MS (health.py)
        ├── liveness lease (lease.py; LIVENESS_ENABLED=true): pg_try_advisory_lock on a
        │   │  session of its own, every TTL/3 ± jitter until granted
        │   └── while held (gauge liveness_owner = 1)
        │       ├── renew: SELECT 1 every TTL/3; fails, times out or lapses → cancel, close
        │       └── liveness owner (owner.py), seeded on each acquisition; fenced
        │           ├── status dispatcher: STATUS_DISPATCH_CONCURRENCY workers   (fenced)
        │           ├── alert-config refresh: start-up retries, then every ALERT_CONFIG_REFRESH_MS
        │           ├── liveness feed (feed.py): sightings committed by the other instances
        │           ├── decommission listener (decommission.py): NATS_DECOMMISSION_DURABLE_NAME
        │           └── seed, then ticks after HEARTBEAT_GRACE_PERIOD_MS     (alerts fenced)
        └── ingest pipeline (pipeline.py)
            ├── fetch scope: continuous-credit batch pull → rendezvous channel
            └── write scope: INGEST_WRITERS × (validate → one INSERT … ON CONFLICT DO NOTHING
                             → ack) → committed (tenant, gateway, stored time)
                             → the owner while holding the lease, else the feed (feed.py)
```

Start-up: http → NATS → ingest durable → PostgreSQL → probe → one lease attempt (if
granted: the owner, reported once the feed is subscribed and the decommission durable
bound) → ingest pull bound → pipeline → ready (`task_status.started(ServiceInfo)`).
"Fenced": checks `lease.valid(now)` right before each alert publish and status report.

Shutdown is the caller's cancellation: the pipeline finishes and acks its in-flight
batches under a shielded scope bounded by SHUTDOWN_TIMEOUT_MS and NAKs what it
fetched but did not write; then the pullers stop, the pool is closed and NATS drained,
all shielded and time-limited, so shutdown ends within a bound even with the database
down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from notip import natsio
from notip.consumer import durable, feed, lease, owner
from notip.consumer.health import Health, build_app, probe
from notip.consumer.heartbeat import Liveness
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.pipeline import Committed, Pipeline
from notip.consumer.settings import Settings
from notip.consumer.store import Store
from notip.httpserve import serve_http
from notip.jetstream.pull import BatchPuller

log = logging.getLogger("notip.consumer")


@dataclass
class ServiceInfo:
    """What `nursery.start(serve, settings)` returns."""

    metrics_port: int
    metrics: ConsumerMetrics
    health: Health
    #: The owner's driver while this instance holds the liveness lease, else None.
    liveness: Liveness | None = None
    pipeline: Pipeline | None = None

    @property
    def ready(self) -> bool:
        return self.health.ready


async def serve(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED,
    clock: Callable[[], float] = time.time,
) -> None:
    s = settings
    started_at = trio.current_time()  # the liveness grace period runs from here
    metrics = ConsumerMetrics()
    health = Health()
    async with trio.open_nursery() as root:
        port = await root.start(serve_http, build_app(metrics, health), s.metrics_addr)
        info = ServiceInfo(metrics_port=port, metrics=metrics, health=health)
        log.info(
            "consumer starting",
            extra={"metrics_port": port, "durable": s.durable_name, "liveness": s.liveness_enabled},
        )
        # Every durable's puller: a reconnect resets their credit (the server-side pull
        # requests may be gone with the old connection); shutdown stops them.
        pullers: list[BatchPuller] = []

        def reconnected() -> None:
            metrics.nats_reconnects.inc()
            for p in pullers:
                p.on_reconnect()

        nc = await natsio.connect(
            s.nats_url,
            natsio.tls_context(s.nats_tls),
            name="notip-consumer",
            events=natsio.ConnectionEvents(on_reconnect=reconnected),
            connect_timeout=s.nats_connect_timeout_s,
        )
        health.nc = nc
        store: Store | None = None
        try:
            metrics.consumer_lag.set((await durable.ensure(nc, s)).num_pending or 0)
            puller = durable.puller(nc, s)
            pullers.append(puller)
            store = await Store.open_retrying(s, on_failure=lambda: metrics.database_up.set(0))
            health.store = store
            metrics.database_up.set(1)

            async with trio.open_nursery() as tasks:
                tasks.start_soon(probe, s, nc, store, metrics)
                if s.liveness_enabled:
                    await tasks.start(
                        partial(
                            lease.hold,
                            lease.Lease(s.liveness_lease_ttl_ms / 1000.0),
                            partial(lease.LockSession.open, s),
                            partial(
                                owner.run,
                                s,
                                nc,
                                store,
                                metrics,
                                pullers,
                                started_at=started_at,
                                clock=clock,
                            ),
                            metrics,
                            on_change=partial(setattr, info, "liveness"),
                        )
                    )
                committed: Committed = owner.route(
                    lambda: info.liveness, feed.publisher(nc, s.liveness_feed_subject)
                )
                info.pipeline = pipeline = Pipeline(
                    nc=nc,
                    store=store,
                    puller=puller,
                    metrics=metrics,
                    writers=s.ingest_writers,
                    ack_wait_s=s.ingest_ack_wait_ms / 1000.0,
                    shutdown_timeout_s=s.shutdown_timeout_ms / 1000.0,
                    committed=committed,
                    rebind=durable.rebinder(nc, s, puller),
                    clock=clock,
                )
                await puller.start()
                health.puller = puller
                tasks.start_soon(pipeline.run)
                log.info("consumer ready", extra={"metrics_port": port})
                task_status.started(info)
        finally:
            with trio.CancelScope(shield=True):
                for p in pullers:
                    await p.stop()
                if store is not None:
                    await store.close()
                await natsio.drain(nc)
                log.info("consumer stopped")
            root.cancel_scope.cancel()
