"""Decommission listener: durable `data-consumer-decommission-listener` on
DECOMMISSION (`gateway.decommissioned.{tenantId}.{gatewayId}`).

Per event: record the quarantine in the database (so it survives a restart), remove
the gateway from the tracker and from the status queue, then ack. Tenant and gateway
come from the subject tokens 2 and 3 (CONTRACTS §1.5); the event time is the
JetStream stored timestamp. A malformed subject is terminated."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio
from nats.aio.client import Client as NATS
from nats.js import api

from notip.consumer.ingest import ack_meta
from notip.consumer.liveness import Key
from notip.consumer.pull import BatchPuller, ensure_pull_consumer, settle
from notip.consumer.store import DbUnavailable, RowsRejected, Store

log = logging.getLogger("notip.consumer.decommission")

STREAM = "DECOMMISSION"
FILTER = "gateway.decommissioned.>"


def consumer_config(durable: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=durable,
        durable_name=durable,
        description="notip data consumer: decommissioned gateways leave liveness",
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_deliver=50,
        filter_subject=FILTER,
        max_ack_pending=1000,
    )


def parse_subject(subject: str) -> Key | None:
    t = subject.split(".")
    if len(t) != 4 or t[0] != "gateway" or t[1] != "decommissioned" or not t[2] or not t[3]:
        return None
    return (t[2], t[3])


async def run_listener(
    *,
    nc: NATS,
    store: Store,
    durable: str,
    on_decommission: Callable[[Key, float], None],
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[BatchPuller] = trio.TASK_STATUS_IGNORED,
) -> None:
    delay = 0.5
    while True:
        try:
            await ensure_pull_consumer(nc, STREAM, consumer_config(durable))
            break
        except Exception as exc:
            log.warning("cannot create the decommission consumer (retrying): %s", exc)
            await trio.sleep(delay)
            delay = min(delay * 2, 10.0)
    puller = BatchPuller(nc, STREAM, durable, batch=100, flush_s=0.0)
    await puller.start()
    task_status.started(puller)
    try:
        while True:
            if puller.unbound:
                try:
                    await ensure_pull_consumer(nc, STREAM, consumer_config(durable))
                    puller.rebound()
                except Exception as exc:
                    log.warning("cannot re-create the decommission consumer: %s", exc)
                    await trio.sleep(2.0)
                    continue
            msgs = await puller.next_batch()
            acks: list[str] = []
            terms: list[str] = []
            for msg in msgs:
                key = parse_subject(msg.subject)
                meta = ack_meta(msg.reply)
                if key is None or meta is None:
                    log.warning(
                        "malformed decommission event", extra={"subject": msg.subject[:200]}
                    )
                    terms.append(msg.reply)
                    continue
                at = min(meta.stored_s, clock())
                delay = 0.2
                while True:
                    try:
                        await store.record_decommission(key[0], key[1], at)
                        break
                    except DbUnavailable as exc:
                        log.warning("decommission not recorded yet: %s", exc)
                        await trio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                    except RowsRejected as exc:
                        log.warning("decommission not recordable: %s", exc)
                        break
                on_decommission(key, at)
                acks.append(msg.reply)
            await settle(nc, ack=acks, term=terms)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(4):
            await puller.drain()
            leftover = puller.take_buffered()
            if leftover:
                await settle(nc, nak=[m.reply for m in leftover], flush_timeout=2)
