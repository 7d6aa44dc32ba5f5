"""The ingest durable: the pull consumer on TELEMETRY (`telemetry.data.>`) that the
pipeline pulls from — its configuration, its create-or-update, the puller bound to it
and the way back when it is deleted under us."""

from __future__ import annotations

import logging
from functools import partial

from nats.aio.client import Client as NATS
from nats.js import api

from notip import contracts
from notip.backoff import Backoff, retry
from notip.consumer.pipeline import Rebind
from notip.consumer.settings import Settings
from notip.jetstream.consumers import ensure_pull_consumer
from notip.jetstream.pull import BatchPuller

# The daemon's own logger: these lines have always been logged under it.
log = logging.getLogger("notip.consumer")

STREAM = contracts.TELEMETRY.name
FILTER = contracts.TELEMETRY_ALL
#: Redelivery backoff of the durable, in multiples of INGEST_ACK_WAIT_MS.
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


async def ensure(nc: NATS, s: Settings) -> api.ConsumerInfo:
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


def puller(nc: NATS, s: Settings) -> BatchPuller:
    """The pipeline's puller on the durable (not started: `start()` binds it)."""
    return BatchPuller(
        nc, STREAM, s.durable_name, batch=s.ingest_batch_size, flush_s=s.ingest_flush_ms / 1000.0
    )


def rebinder(nc: NATS, s: Settings, ingest: BatchPuller) -> Rebind:
    """What the pipeline's fetcher awaits when the durable was deleted under it:
    re-create it (retrying), then let the `ingest` puller pull again."""

    async def rebind() -> None:
        await ensure(nc, s)
        ingest.rebound()

    return rebind
