"""Decommission listener: durable `data-consumer-decommission-listener` on
DECOMMISSION (`gateway.decommissioned.{tenantId}.{gatewayId}`).

Per event: record the quarantine in the database (so it survives a restart), remove
the gateway from the tracker and from the status queue, then ack. Tenant and gateway
come from the subject tokens 2 and 3 (`contracts.parse_decommissioned`, docs/contracts.md#alerts-and-decommission-events); the event time is the JetStream stored timestamp. A malformed subject is
terminated. The pull loop is the shared one (`notip.jetstream.pull.consume`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from notip import contracts
from notip.backoff import Backoff, retry
from notip.consumer.ingest import ack_meta
from notip.consumer.liveness import Key
from notip.consumer.store import DbUnavailable, RowsRejected, Store
from notip.jetstream.pull import ACKED, TERMINATED, BatchPuller, consume

log = logging.getLogger("notip.consumer.decommission")

STREAM = contracts.DECOMMISSION.name
BATCH = 100
REBIND_RETRY_S = 2.0  # re-creating the durable after it was deleted under us


def consumer_config(durable: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=durable,
        durable_name=durable,
        description="notip data consumer: decommissioned gateways leave liveness",
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_deliver=50,
        filter_subject=contracts.DECOMMISSIONED_ALL,
        max_ack_pending=1000,
    )


async def run_listener(
    *,
    nc: NATS,
    store: Store,
    durable: str,
    on_decommission: Callable[[Key, float], None],
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[BatchPuller] = trio.TASK_STATUS_IGNORED,
) -> None:
    async def record(tenant: str, gateway: str, at: float) -> None:
        await store.record_decommission(tenant, gateway, at)

    def not_recorded(exc: BaseException, delay: float) -> None:
        log.warning("decommission not recorded yet: %s", exc)

    async def handle(msg: Msg) -> str:
        key = contracts.parse_decommissioned(msg.subject)
        meta = ack_meta(msg.reply)
        if key is None or meta is None:
            log.warning("malformed decommission event", extra={"subject": msg.subject[:200]})
            return TERMINATED
        at = min(meta.stored_s, clock())
        try:
            await retry(
                partial(record, key[0], key[1], at),
                backoff=Backoff(0.2, cap=5.0),  # the database is unavailable
                retry_on=DbUnavailable,
                on_retry=not_recorded,
            )
        except RowsRejected as exc:
            log.warning("decommission not recordable: %s", exc)
        on_decommission(key, at)
        return ACKED

    def ensure_failed(exc: BaseException, delay: float) -> None:
        log.warning("cannot create the decommission consumer (retrying): %s", exc)

    await consume(
        nc,
        STREAM,
        consumer_config(durable),
        handle,
        batch=BATCH,
        ensure_backoff=Backoff(0.5, cap=10.0),  # JetStream may be starting
        rebind_backoff=Backoff(REBIND_RETRY_S, REBIND_RETRY_S),
        on_ensure_retry=ensure_failed,
        task_status=task_status,
    )
