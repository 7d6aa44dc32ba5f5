"""Durable pull consumers that record what gateways and the data consumer send back:
command acks (`command.ack.>` on COMMAND_ACKS) and gw_offline alerts (`alert.>` on
ALERTS), through the shared pull loop (notip.jetstream.pull.consume): ensure the
durable, pull a batch, record each message, ack the batch.

The durables are created explicitly (deliver policy `new`: a fresh durable does not
replay history; an existing one resumes where it stopped) and never deleted. A message
is acked after its record is written; the records are idempotent (first ack of a
command wins, an alert is unique per tenant/gateway/lastSeen), so a redelivery after a
crash changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from notip.backoff import Backoff
from notip.jetstream.pull import ACKED, LEFT, BatchPuller, consume

log = logging.getLogger("notip.mgmt.consumers")

BATCH = 64
ACK_WAIT_S = 30.0
MAX_DELIVER = 10
REBIND_RETRY_S = 1.0  # re-creating a durable deleted under us


@dataclass(frozen=True)
class Durable:
    stream: str
    name: str
    filter_subject: str
    inactive_threshold_s: float | None = None

    def config(self) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=self.filter_subject,
            deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_S,
            max_deliver=MAX_DELIVER,
            inactive_threshold=self.inactive_threshold_s,
        )


async def run_consumer(
    nc: NATS,
    durable: Durable,
    handle: Callable[[str, bytes], Awaitable[Any]],
    *,
    fetch_timeout_s: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Pull, hand each message to `handle(subject, data)` (it writes the store), ack
    the batch. A message whose handler raised is not acked: JetStream redelivers it
    after ACK_WAIT_S (at most MAX_DELIVER times). Each pull request waits
    `fetch_timeout_s` before it is asked again (no idle heartbeats: the server wants
    them under half the request's expiry)."""
    labels = {"stream": durable.stream, "durable": durable.name}

    async def record(msg: Msg) -> str:
        try:
            await handle(msg.subject, msg.data)
        except Exception:
            log.exception("recording failed; left for redelivery", extra=labels)
            return LEFT
        return ACKED

    async def run(task_status: trio.TaskStatus[BatchPuller]) -> None:
        await consume(
            nc,
            durable.stream,
            durable.config(),
            record,
            batch=BATCH,
            expires_s=fetch_timeout_s,
            heartbeat_s=None,
            rebind_backoff=Backoff(REBIND_RETRY_S, REBIND_RETRY_S),
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        task_status.started()
