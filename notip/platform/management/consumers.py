"""Durable pull consumers that record what gateways and the data consumer send back:
command acks (`command.ack.>` on COMMAND_ACKS) and gw_offline alerts (`alert.>` on
ALERTS). Not hot paths, so nats-py's JetStream API is used as is, through the bridge,
one asyncio coroutine per operation: ensure+bind, fetch a batch, ack a batch.

The durables are created explicitly (deliver policy `new`: a fresh durable does not
replay history; an existing one resumes where it stopped) and never deleted. A message
is acked after its record is written; the records are idempotent (first ack of a
command wins, an alert is unique per tenant/gateway/lastSeen), so a redelivery after a
crash changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from notip import bridge

log = logging.getLogger("notip.mgmt.consumers")

BATCH = 64
ACK_WAIT_S = 30.0
MAX_DELIVER = 10
RETRY_DELAY_S = 1.0


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


async def bind(nc: NATS, durable: Durable) -> Any:
    """Create the durable unless it exists, then bind a pull subscription to it."""

    async def op() -> Any:
        js = nc.jetstream()
        try:
            await js.consumer_info(durable.stream, durable.name)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(durable.stream, config=durable.config())
        return await js.pull_subscribe_bind(durable=durable.name, stream=durable.stream)

    return await bridge.call(op)


async def fetch(sub: Any, wait_s: float) -> list[Msg]:
    """Up to BATCH messages; [] when none arrived within `wait_s`."""

    async def op() -> list[Msg]:
        try:
            return list(await sub.fetch(BATCH, timeout=wait_s))
        except (nats.errors.TimeoutError, TimeoutError):
            return []

    return await bridge.call(op)


async def ack(msgs: list[Msg]) -> None:
    async def op() -> None:
        for msg in msgs:
            await msg.ack()

    await bridge.call(op)


async def run_consumer(
    nc: NATS,
    durable: Durable,
    handle: Callable[[str, bytes], Any],
    *,
    fetch_timeout_s: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Pull, hand each message to `handle(subject, data)` (synchronous: it writes the
    store), ack the batch. A message whose handler raised is not acked: JetStream
    redelivers it after ACK_WAIT_S (at most MAX_DELIVER times)."""
    labels = {"stream": durable.stream, "durable": durable.name}
    sub = await bind(nc, durable)
    try:
        task_status.started()
        await _pull_loop(sub, handle, fetch_timeout_s, labels)
    finally:
        # Unsubscribe (not drain) first: nats-py's fetch takes messages off the
        # subscription's queue without task_done(), so draining a pull subscription
        # waits forever on its queue and the connection's drain would hang.
        if nc.is_connected:
            await bridge.shielded(sub.unsubscribe, timeout=2)


async def _pull_loop(
    sub: Any, handle: Callable[[str, bytes], Any], fetch_timeout_s: float, labels: dict[str, str]
) -> None:
    while True:
        try:
            msgs = await fetch(sub, fetch_timeout_s)
        except (nats.errors.Error, OSError) as exc:
            log.warning("pull failed: %s", exc, extra=labels)
            await trio.sleep(RETRY_DELAY_S)
            continue
        done: list[Msg] = []
        for msg in msgs:
            try:
                handle(msg.subject, msg.data)
            except Exception:
                log.exception("recording failed; left for redelivery", extra=labels)
                continue
            done.append(msg)
        if done:
            try:
                await ack(done)
            except (nats.errors.Error, OSError) as exc:
                log.warning("ack failed (records are idempotent): %s", exc, extra=labels)
