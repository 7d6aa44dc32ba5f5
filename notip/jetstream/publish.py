"""JetStream publishes, the one home of both kinds (docs/design.md#the-trio-asyncio-bridge):

- `publish`: one message, waiting for its PubAck within `timeout`, optionally with a
  `Nats-Msg-Id` (the stream's duplicate window then drops a retried publish):
  management's commands and decommission events, provisioning's audit events, the
  consumer's gw_offline alerts, a gateway's command acks;
- `publish_expecting_acks` + `subscribe_acks`: the simulator's telemetry hot path —
  core publishes with a reply subject per message under the connection's own inbox,
  many gateways' envelopes in one bridge crossing, no asyncio future or timer per
  message; the PubAcks land on one subscription per connection and are settled in
  bulk by the sans-io ledger in `notip.jetstream.acks` (the simulator's telemetry
  flusher, notip/simulator/telemetry.py, owns the deadlines).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from notip import bridge, guards
from notip.jetstream import acks

log = logging.getLogger("notip.jetstream.publish")

MSG_ID = "Nats-Msg-Id"


def context(nc: NATS) -> JetStreamContext:
    """The JetStream context `publish` expects."""
    return nc.jetstream()


async def publish(
    js: JetStreamContext,
    subject: str,
    body: bytes,
    *,
    timeout: float,
    msg_id: str | None = None,
) -> api.PubAck:
    """Publish and wait for the stream's PubAck; raises on failure or timeout."""
    headers = {MSG_ID: msg_id} if msg_id else None
    return await bridge.call(js.publish, subject, body, timeout=timeout, headers=headers)


@dataclass(slots=True)
class CorePublish:
    """One gateway's share of a telemetry round: `payloads` to `subject` on `nc`, the
    i-th with the reply subject `{reply_prefix}.{tokens[i]}` (acks.AckLedger tokens)."""

    nc: NATS
    subject: str
    reply_prefix: str
    tokens: list[str]
    payloads: list[bytes]


def pub_frames(batch: CorePublish) -> bytes:
    """The batch as NATS protocol bytes: one `PUB subject reply size` frame each."""
    head = f"PUB {batch.subject} {batch.reply_prefix}."
    parts: list[bytes] = []
    for token, payload in zip(batch.tokens, batch.payloads, strict=True):
        parts.append(f"{head}{token} {len(payload)}\r\n".encode())
        parts.append(payload)
        parts.append(b"\r\n")
    return b"".join(parts)


# The fast path hands a gateway's frames of a round to its connection's transport in
# one write. nats-py has no public call for ready protocol bytes: `publish` per
# message validates, formats and queues each one and wakes the connection's flusher
# task (an asyncio task switch per connection per round, each a trip through
# trio-asyncio). `Client._transport` (a nats.aio.transport.Transport) is the
# connection's current transport; its `write` hands the bytes to asyncio's TLS
# transport at once. Commands nats-py still holds in its own pending buffer may go
# out after these: frames are whole commands and telemetry depends on no other
# command's order. Private, verified with nats-py 2.16.0: when it is missing the
# guard `nats_transport_write` counts it and each message goes through `publish`.
_TRANSPORT = "_transport"


def _transport_write(nc: NATS) -> Callable[[bytes], object] | None:
    write = getattr(getattr(nc, _TRANSPORT, None), "write", None)
    if not callable(write):
        guards.missing(
            guards.NATS_TRANSPORT_WRITE,
            "nats Client._transport.write not found; telemetry is published one message each",
        )
        return None
    return write  # type: ignore[no-any-return]


async def publish_expecting_acks(batches: Sequence[CorePublish]) -> list[int]:
    """Core-publish every batch, each message with its own reply subject, without
    waiting for anything: the PubAcks arrive on the connections' ack subscriptions
    (`subscribe_acks`). Returns, per batch, how many of its messages were handed to
    the connection (all of them unless it failed, e.g. it is reconnecting or closed:
    the rest were not sent). Runs on the asyncio side: call it through `bridge.call`,
    once per round for many gateways. Nothing in here waits: each connection gets its
    share in one write (one TLS record)."""
    sent: list[int] = []
    for batch in batches:
        nc = batch.nc
        if not nc.is_connected:
            sent.append(0)  # reconnecting: nats-py would only buffer them
            continue
        write = _transport_write(nc)
        if write is not None:
            try:
                write(pub_frames(batch))
            except (OSError, RuntimeError) as exc:  # a transport closing under us
                log.info("telemetry publish failed: %r", exc)
                sent.append(0)
                continue
            nc.stats["out_msgs"] += len(batch.payloads)
            nc.stats["out_bytes"] += sum(map(len, batch.payloads))
            sent.append(len(batch.payloads))
            continue
        n = 0
        try:
            publish, subject, prefix = nc.publish, batch.subject, batch.reply_prefix
            for token, payload in zip(batch.tokens, batch.payloads, strict=True):
                await publish(subject, payload, reply=f"{prefix}.{token}")
                n += 1
        except (nats.errors.Error, OSError) as exc:
            log.info("telemetry publish failed: %r", exc)
        sent.append(n)
    return sent


# The PubAck subscription hands each reply over where nats-py's reader delivers it.
# With a callback, nats-py queues every message for a task of the subscription's own,
# so each connection's PubAcks of a round cost an asyncio task wake-up (a trip
# through trio-asyncio) and a coroutine per reply. nats-py has no public hook for a
# synchronous handler: `Subscription._pending_queue` (the asyncio.Queue its reader
# `put_nowait`s into; verified with nats-py 2.16.0) is replaced by a queue whose
# `put_nowait` handles the message at once. The subscription is made without a
# callback (no task) and without a pending-bytes limit (nothing stays pending). When
# the attribute is missing the guard `nats_reply_sink` counts it and a callback
# subscription is used instead.
_PENDING_QUEUE = "_pending_queue"


class _ReplySink(asyncio.Queue[Msg]):
    def __init__(self, handle: Callable[[Msg], None]) -> None:
        super().__init__()
        self._handle = handle

    def put_nowait(self, item: Msg) -> None:
        self._handle(item)


async def subscribe_acks(nc: NATS, on_reply: Callable[[str, bool], object]) -> str:
    """Subscribe `{prefix}.*` for the PubAcks of `publish_expecting_acks`, the prefix
    a fresh inbox of `nc` (under its inbox prefix: a gateway identity may subscribe
    nothing else). `on_reply(token, ok)` runs on the asyncio side for every reply,
    `ok` only for a real PubAck (acks.is_pub_ack); it must be quick and must not
    raise. Returns the prefix. nats-py re-subscribes it after an automatic reconnect."""
    prefix = nc.new_inbox()
    subject = f"{prefix}.*"
    cut = len(prefix) + 1

    def handle(msg: Msg) -> None:
        try:
            on_reply(msg.subject[cut:], acks.is_pub_ack(msg.data, msg.headers))
        except Exception:  # never into nats-py's reader (it would drop the connection)
            log.exception("PubAck not handled")

    sub = await nc.subscribe(subject, pending_bytes_limit=0)
    if isinstance(getattr(sub, _PENDING_QUEUE, None), asyncio.Queue):
        setattr(sub, _PENDING_QUEUE, _ReplySink(handle))
        return prefix
    guards.missing(
        guards.NATS_REPLY_SINK,
        "nats Subscription._pending_queue not found; PubAcks go through a callback task",
    )
    await sub.unsubscribe()

    async def on_msg(msg: Msg) -> None:
        handle(msg)

    await nc.subscribe(subject, cb=on_msg)
    return prefix
