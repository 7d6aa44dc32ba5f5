"""The liveness owner: the tasks of the instance that holds the liveness lease
(lease.py), started when it takes the lease and cancelled when it loses it. Its
nursery is drawn in `service.py`'s tree.

`run` builds the `Liveness` driver (heartbeat.py) around the sans-io tracker
(liveness.py), seeded from the database on every acquisition, and reports it once the
feed is subscribed and the decommission durable is bound. `route` is the writers'
hand-over: straight into the tracker while this instance holds the lease, through the
feed (feed.py) to whichever instance holds it otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial

import trio
from nats.aio.client import Client as NATS

from notip.backoff import Backoff, retry
from notip.consumer import feed
from notip.consumer.decommission import run_listener
from notip.consumer.dispatcher import Dispatcher, StatusQueue, Update
from notip.consumer.heartbeat import Liveness, run_config_refresh
from notip.consumer.liveness import AlertConfigs, ConfigHolder, Key, Tracker
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.mgmt import MgmtClient
from notip.consumer.pipeline import Committed
from notip.consumer.settings import Settings
from notip.consumer.store import Store
from notip.jetstream import publish as jetstream
from notip.jetstream.pull import BatchPuller

# The daemon's own logger: these lines have always been logged under it.
log = logging.getLogger("notip.consumer")

ALERT_PUBLISH_TIMEOUT_S = 5.0
#: Seeding waits this long at most for the first alert-config attempt: the seed's
#: window is the largest configured timeout.
FIRST_CONFIGS_WAIT_S = 10.0


def build(
    s: Settings,
    nc: NATS,
    metrics: ConsumerMetrics,
    clock: Callable[[], float],
    fence: Callable[[], bool] = lambda: True,
    store: Store | None = None,
) -> Liveness:
    """The driver with its parts: config holder, tracker, management client,
    status dispatcher, alert publisher. No task is started. `fence` is checked right
    before every alert publish and status report (lease.py); with a `store`, every
    alert is recorded in it first (`Store.record_alert`)."""
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
        fence=fence,
    )
    js = nc.jetstream()

    async def publish_alert(subject: str, body: bytes, msg_id: str) -> None:
        await jetstream.publish(js, subject, body, timeout=ALERT_PUBLISH_TIMEOUT_S, msg_id=msg_id)

    return Liveness(
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
        fence=fence,
        record_alert=None if store is None else store.record_alert,
        # Two lease TTLs: the previous owner's validity ran out at most one TTL after
        # its last renewal, and this one took over within one more.
        handover_s=2 * s.liveness_lease_ttl_ms / 1000.0,
    )


async def run(
    s: Settings,
    nc: NATS,
    store: Store,
    metrics: ConsumerMetrics,
    pullers: list[BatchPuller],
    fence: Callable[[], bool],
    *,
    started_at: float,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[Liveness] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the owner's tasks until cancelled. The decommission listener's puller is in
    `pullers` while it runs (the service resets its credit on reconnect and stops it
    at shutdown). Ticks start once the grace period from `started_at` (the service's
    start, Trio time) is over: a takeover after it ticks right after seeding."""
    liveness = build(s, nc, metrics, clock, fence, store)
    first_fetch = trio.Event()
    decommissions: BatchPuller | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(liveness.dispatcher.run)
            nursery.start_soon(
                partial(
                    run_config_refresh,
                    fetch=partial(liveness.mgmt.alert_configs, s.alert_config_default_timeout_ms),
                    holder=liveness.configs,
                    metrics=metrics,
                    max_retries=s.alert_config_max_retries,
                    refresh_s=s.alert_config_refresh_ms / 1000.0,
                    clock=clock,
                    fetched=first_fetch,
                )
            )
            # Subscribed before seeding: a sighting committed meanwhile is either in the
            # seed's rows or on the feed.
            await nursery.start(feed.receive, nc, s.liveness_feed_subject, liveness.committed)
            decommissions = await nursery.start(
                partial(
                    run_listener,
                    nc=nc,
                    store=store,
                    durable=s.decommission_durable_name,
                    on_decommission=liveness.decommissioned,
                    clock=clock,
                )
            )
            pullers.append(decommissions)
            nursery.start_soon(_seed_then_tick, s, liveness, store, first_fetch, started_at)
            task_status.started(liveness)
    finally:
        # The listener stopped its own puller on the way out (pull.consume).
        if decommissions is not None and decommissions in pullers:
            pullers.remove(decommissions)


async def _seed_then_tick(
    s: Settings, liveness: Liveness, store: Store, first_fetch: trio.Event, started_at: float
) -> None:
    with trio.move_on_after(FIRST_CONFIGS_WAIT_S):
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


def route(current: Callable[[], Liveness | None], publish: Committed) -> Committed:
    """The writers' hand-over: into this instance's tracker while it holds the lease
    (`current()` is its Liveness), else a digest on the feed for whoever holds it."""

    async def committed(sightings: Mapping[Key, float]) -> None:
        liveness = current()
        if liveness is not None:
            liveness.committed(sightings)
        else:
            await publish(sightings)

    return committed
