"""JetStream publishes, the one home of both kinds (docs/design.md#the-trio-asyncio-bridge):

- `publish`: one message, waiting for its PubAck within `timeout`, optionally with a
  `Nats-Msg-Id` (the stream's duplicate window then drops a retried publish):
  management's commands and decommission events, provisioning's audit events, the
  consumer's gw_offline alerts, a gateway's command acks;
- `publish_batch`: the simulator's telemetry hot path — one bridge crossing per
  gateway tick, `publish_async` for every envelope and one wait for all PubAcks
  with a deadline, so a lost PubAck costs at most `timeout` and never stalls the
  gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from notip import bridge

MSG_ID = "Nats-Msg-Id"
#: Async publishes in flight per JetStream context before `publish_async` waits
#: (nats-py's own default, set explicitly so `publish_batch` knows the bound).
PUBLISH_ASYNC_MAX_PENDING = 4000


def context(nc: NATS) -> JetStreamContext:
    """The JetStream context `publish_batch` expects (known in-flight bound)."""
    return nc.jetstream(publish_async_max_pending=PUBLISH_ASYNC_MAX_PENDING)


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


def would_stall(js: JetStreamContext, max_pending: int = PUBLISH_ASYNC_MAX_PENDING) -> bool:
    """Whether `publish_async` would wait for a free in-flight slot."""
    return js.publish_async_pending() >= max_pending


async def publish_batch(
    js: JetStreamContext,
    subject: str,
    payloads: Sequence[bytes],
    timeout: float,
    *,
    max_pending: int = PUBLISH_ASYNC_MAX_PENDING,
) -> list[bool]:
    """Publish every payload with `publish_async` and wait (at most `timeout`) for
    all PubAcks. Returns, per payload, whether JetStream acknowledged it. Runs on
    the asyncio side: call it through `bridge.call`, once per batch.

    The publishes must not yield to the event loop between one another: then they
    all land in the connection's pending buffer and nats-py's flusher writes them
    with one TLS record and one `send` per batch. `publish_async(wait_stall=t)`
    wraps the semaphore acquire in `asyncio.wait_for(..., t)`, which (Python 3.11)
    creates a task and a timer and yields every time: one socket write and ~5 loop
    callbacks per envelope, each a trip through trio-asyncio (measured: the bulk of
    the simulator's CPU). With `wait_stall=None` the acquire of a free slot returns
    at once; the deadline is only needed when it would block. `max_pending` is the
    in-flight bound `js` was made with (`context()` makes it with the default);
    nats-py has no public getter for it."""
    futures: list[asyncio.Future[Any] | None] = []
    for payload in payloads:
        stall = timeout if would_stall(js, max_pending) else None
        try:
            futures.append(await js.publish_async(subject, payload, wait_stall=stall))
        except (TimeoutError, nats.errors.Error, OSError):
            futures.append(None)
    live = [f for f in futures if f is not None]
    if live:
        _, pending = await asyncio.wait(live, timeout=timeout)
        for waiting in pending:
            waiting.cancel()
    results: list[bool] = []
    for fut in futures:
        ok = fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None
        results.append(ok)
    return results
