"""`notip consumer`: the whole daemon, its nursery tree, start-up and shutdown order.

```
serve(settings)                      (the trio-asyncio loop is already open)
└── nursery
    ├── http: /metrics /healthz /readyz                         (first: alive while starting)
    ├── [start-up] NATS (mTLS) → durable TELEMETRY pull consumer → PostgreSQL pool + migrations
    ├── db probe: readiness + consumer lag, every DB_PROBE_INTERVAL_MS
    ├── ingest pipeline (pipeline.py)
    │   ├── fetch scope: continuous-credit batch pull → rendezvous channel
    │   └── write scope: INGEST_WRITERS × (validate → one INSERT … ON CONFLICT DO NOTHING → ack)
    │                    → committed (tenant, gateway, stored time) → liveness (or the feed)
    └── liveness (LIVENESS_ENABLED=true: the one owner of liveness)
        ├── alert-config refresh: start-up retries, then every ALERT_CONFIG_REFRESH_MS
        ├── seed, then heartbeat ticks after HEARTBEAT_GRACE_PERIOD_MS
        ├── status dispatcher: STATUS_DISPATCH_CONCURRENCY workers over the coalescing queue
        ├── decommission listener (durable data-consumer-decommission-listener)
        └── liveness feed: sightings committed by ingest-only instances
```

Shutdown is the caller's cancellation: the pipeline finishes and acks its in-flight
batches under a shielded scope bounded by SHUTDOWN_TIMEOUT_MS and NAKs what it
fetched but did not write; then the pool is closed and NATS drained, both shielded and
time-limited, so shutdown ends within a bound even with the database down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api
from starlette.applications import Starlette

from notip import bridge, contracts, natsio
from notip.backoff import Backoff, retry
from notip.consumer.decommission import run_listener
from notip.consumer.dispatcher import Dispatcher, StatusQueue, Update
from notip.consumer.heartbeat import Liveness, run_config_refresh
from notip.consumer.liveness import (
    AlertConfigs,
    ConfigHolder,
    Key,
    Tracker,
    decode_sightings,
    encode_sightings,
)
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.mgmt import MgmtClient
from notip.consumer.pipeline import Pipeline
from notip.consumer.settings import Settings
from notip.consumer.store import Store
from notip.handoff import Handoff
from notip.httpserve import serve_http, standard_routes
from notip.jetstream import publish as jetstream
from notip.jetstream.consumers import consumer_pending, ensure_pull_consumer
from notip.jetstream.pull import BatchPuller

log = logging.getLogger("notip.consumer")

STREAM = contracts.TELEMETRY.name
FILTER = contracts.TELEMETRY_ALL
ALERT_PUBLISH_TIMEOUT_S = 5.0
BACKOFF_FACTORS = (1, 2, 4, 10, 20)


def telemetry_consumer_config(s: Settings) -> api.ConsumerConfig:
    """The durable: explicit acks; ack wait = first backoff step, well above the
    worst batch write (30 s by default); bounded redeliveries with a growing backoff."""
    ack_wait = s.ingest_ack_wait_ms / 1000.0
    backoff = [ack_wait * f for f in BACKOFF_FACTORS][: s.ingest_max_deliver - 1]
    return api.ConsumerConfig(
        name=s.durable_name,
        durable_name=s.durable_name,
        description="notip data consumer: telemetry → TimescaleDB",
        deliver_policy=api.DeliverPolicy.NEW
        if s.ingest_deliver_policy == "new"
        else api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=s.ingest_max_deliver,
        backoff=backoff,
        filter_subject=FILTER,
        max_ack_pending=s.ingest_max_ack_pending,
        replay_policy=api.ReplayPolicy.INSTANT,
    )


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


@dataclass
class ServiceInfo:
    """What `nursery.start(serve, settings)` returns."""

    metrics_port: int
    metrics: ConsumerMetrics
    health: Health
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
    metrics = ConsumerMetrics()
    health = Health()
    async with trio.open_nursery() as root:
        port = await root.start(serve_http, build_app(metrics, health), s.metrics_addr)
        info = ServiceInfo(metrics_port=port, metrics=metrics, health=health)
        log.info(
            "consumer starting",
            extra={"metrics_port": port, "durable": s.durable_name, "liveness": s.liveness_enabled},
        )

        pullers: list[BatchPuller] = []

        def reconnected() -> None:
            metrics.nats_reconnects.inc()
            for p in pullers:
                p.on_reconnect()

        tls = natsio.tls_context(s.nats_tls)
        nc = await natsio.connect(
            s.nats_url,
            tls,
            name="notip-consumer",
            events=natsio.ConnectionEvents(on_reconnect=reconnected),
            connect_timeout=s.nats_connect_timeout_s,
        )
        health.nc = nc
        store: Store | None = None
        try:
            cinfo = await _ensure_consumer(nc, s)
            metrics.consumer_lag.set(cinfo.num_pending or 0)
            puller = BatchPuller(
                nc,
                STREAM,
                s.durable_name,
                batch=s.ingest_batch_size,
                flush_s=s.ingest_flush_ms / 1000.0,
            )
            pullers.append(puller)

            store = await Store.open_retrying(s, on_failure=lambda: metrics.database_up.set(0))
            health.store = store
            metrics.database_up.set(1)

            async with trio.open_nursery() as tasks:
                tasks.start_soon(_probe, s, nc, store, metrics)

                committed = None
                if s.liveness_enabled:
                    liveness = await _start_liveness(tasks, s, nc, store, metrics, pullers, clock)
                    info.liveness = liveness

                    async def committed_local(sightings: Mapping[Key, float]) -> None:
                        liveness.committed(sightings)

                    committed = committed_local
                else:

                    async def committed_feed(sightings: Mapping[Key, float]) -> None:
                        try:
                            await bridge.call(
                                nc.publish, s.liveness_feed_subject, encode_sightings(sightings)
                            )
                        except Exception as exc:  # liveness is best effort on this path
                            log.warning("liveness feed not published: %s", exc)

                    committed = committed_feed

                async def rebind() -> None:
                    await _ensure_consumer(nc, s)
                    puller.rebound()

                pipeline = Pipeline(
                    nc=nc,
                    store=store,
                    puller=puller,
                    metrics=metrics,
                    writers=s.ingest_writers,
                    ack_wait_s=s.ingest_ack_wait_ms / 1000.0,
                    shutdown_timeout_s=s.shutdown_timeout_ms / 1000.0,
                    committed=committed,
                    rebind=rebind,
                    clock=clock,
                )
                info.pipeline = pipeline
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


async def _ensure_consumer(nc: NATS, s: Settings) -> api.ConsumerInfo:
    """Create or update the ingest durable, retrying with backoff (JetStream may be
    briefly unavailable at start-up or after a server restart)."""

    def failed(exc: BaseException, delay: float) -> None:
        log.warning(
            "cannot create/update the telemetry consumer (retrying in %.1fs): %s", delay, exc
        )

    outcome, info = await retry(
        partial(ensure_pull_consumer, nc, STREAM, telemetry_consumer_config(s)),
        backoff=Backoff(0.5, cap=10.0),
        retry_on=Exception,
        on_retry=failed,
    )
    log.info("telemetry consumer %s", outcome, extra={"durable": s.durable_name})
    return info


async def _start_liveness(
    tasks: trio.Nursery,
    s: Settings,
    nc: NATS,
    store: Store,
    metrics: ConsumerMetrics,
    pullers: list[BatchPuller],
    clock: Callable[[], float],
) -> Liveness:
    started_at = trio.current_time()  # the grace period runs from here
    holder = ConfigHolder(AlertConfigs(s.alert_config_default_timeout_ms))
    tracker = Tracker(holder.timeout_ms, quarantine_s=s.decommission_quarantine_ms / 1000.0)
    mgmt = MgmtClient(
        nc, timeout_s=s.mgmt_request_timeout_ms / 1000.0, retries=s.mgmt_request_max_retries
    )

    async def send(key: Key, update: Update) -> str:
        return await mgmt.update_status(key[1], update.status, update.last_seen)

    dispatcher = Dispatcher(
        StatusQueue(s.gateway_buffer_size),
        send,
        concurrency=s.status_dispatch_concurrency,
        metrics=metrics,
    )
    js = nc.jetstream()

    async def publish_alert(subject: str, body: bytes, msg_id: str) -> None:
        await jetstream.publish(js, subject, body, timeout=ALERT_PUBLISH_TIMEOUT_S, msg_id=msg_id)

    liveness = Liveness(
        tracker=tracker,
        configs=holder,
        mgmt=mgmt,
        dispatcher=dispatcher,
        publish_alert=publish_alert,
        alert_subject=s.alert_subject,
        metrics=metrics,
        tick_s=s.heartbeat_tick_ms / 1000.0,
        grace_s=s.heartbeat_grace_period_ms / 1000.0,
        check_concurrency=s.liveness_check_concurrency,
        clock=clock,
    )
    tasks.start_soon(dispatcher.run)
    first_fetch = trio.Event()

    async def fetch() -> AlertConfigs:
        return await mgmt.alert_configs(s.alert_config_default_timeout_ms)

    tasks.start_soon(
        partial(
            run_config_refresh,
            fetch=fetch,
            holder=holder,
            metrics=metrics,
            max_retries=s.alert_config_max_retries,
            refresh_s=s.alert_config_refresh_ms / 1000.0,
            clock=clock,
            fetched=first_fetch,
        )
    )

    # The liveness feed of ingest-only instances: the callback only hands the digest
    # over; one Trio task decodes it and feeds the tracker.
    feed: Handoff[bytes] = Handoff()

    async def on_feed(msg: Msg) -> None:
        feed.put(msg.data)

    async def run_feed() -> None:
        async for digest in feed:
            liveness.committed(decode_sightings(digest))

    await bridge.call(nc.subscribe, s.liveness_feed_subject, cb=on_feed)
    tasks.start_soon(run_feed)

    decom_puller = await tasks.start(
        partial(
            run_listener,
            nc=nc,
            store=store,
            durable=s.decommission_durable_name,
            on_decommission=liveness.decommissioned,
            clock=clock,
        )
    )
    pullers.append(decom_puller)

    async def seed_then_tick() -> None:
        with trio.move_on_after(10):
            await first_fetch.wait()

        def seed_failed(exc: BaseException, delay: float) -> None:
            log.warning("liveness seed failed; retrying: %s", exc)

        await retry(
            partial(
                liveness.seed,
                store.newest_per_gateway,
                store.decommissions_since,
                s.decommission_quarantine_ms / 1000.0,
            ),
            backoff=Backoff(0.2, cap=5.0),
            retry_on=Exception,
            on_retry=seed_failed,
        )
        await liveness.run_ticks(started_at)

    tasks.start_soon(seed_then_tick)
    return liveness


async def _probe(s: Settings, nc: NATS, store: Store, metrics: ConsumerMetrics) -> None:
    """Readiness: the database answers; consumer lag from JetStream."""
    while True:
        await trio.sleep(s.db_probe_interval_ms / 1000.0)
        up = await store.probe()
        metrics.database_up.set(1 if up else 0)
        if nc.is_connected:
            pending = await consumer_pending(nc, STREAM, s.durable_name)
            if pending is not None:
                metrics.consumer_lag.set(pending)
