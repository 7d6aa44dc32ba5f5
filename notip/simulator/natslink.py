"""The simulator's NATS adapter: asyncio-side operations, each one coroutine called
once from Trio through `bridge.call` (DESIGN §4).

Hot path: `publish_batch` — one bridge crossing per gateway tick, `publish_async` for
every envelope and one wait for all PubAcks with a deadline, so a lost PubAck costs
at most `timeout` and never stalls the gateway.

Memory per connection: asyncio's TLS protocol allocates a 256 KiB read buffer for
each connection (`asyncio.sslproto.SSLProtocol.max_size`); at 1,000 gateway
connections that is ~250 MB. nats-py has no option for it, so
`shrink_tls_read_buffer` replaces that buffer with a 16 KiB one on the connection's
own protocol object right after connecting (and after every automatic reconnect).
16 KiB is one TLS record; reads just take more, smaller chunks. If a future Python
renames those private attributes the function does nothing and says so.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import sslproto
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

log = logging.getLogger("notip.simulator.nats")

COMMANDS_STREAM = "COMMANDS"
DECOMMISSION_STREAM = "DECOMMISSION"
COMMAND_ACK_WAIT_S = 30.0


def telemetry_subject(tenant_id: str, gateway_id: str) -> str:
    return f"telemetry.data.{tenant_id}.{gateway_id}"


def command_subject(tenant_id: str, gateway_id: str) -> str:
    return f"command.gw.{tenant_id}.{gateway_id}"


def ack_subject(tenant_id: str, gateway_id: str) -> str:
    return f"command.ack.{tenant_id}.{gateway_id}"


def command_durable(gateway_id: str) -> str:
    return f"gw-{gateway_id}"


# -- memory ------------------------------------------------------------------------


def _ssl_protocol(nc: NATS) -> Any:
    transport = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    transport = getattr(transport, "transport", None)
    return getattr(transport, "_ssl_protocol", None)


def tls_read_buffer_size(nc: NATS) -> int | None:
    proto = _ssl_protocol(nc)
    buf = getattr(proto, "_ssl_buffer", None)
    return len(buf) if buf is not None else None


def shrink_tls_read_buffer(nc: NATS, size: int) -> bool:
    """Give this connection's TLS protocol a `size`-byte read buffer (see module
    docstring). Called on the asyncio side between callbacks, so no read is in
    flight. Returns False when it could not (and changes nothing)."""
    proto = _ssl_protocol(nc)
    if not isinstance(proto, sslproto.SSLProtocol) or not hasattr(proto, "_ssl_buffer"):
        log.debug("TLS read buffer not adjustable on this Python")
        return False
    if len(proto._ssl_buffer) > size:
        proto.max_size = size  # type: ignore[misc]  # instance attribute shadows the class one
        proto._ssl_buffer = bytearray(size)
        proto._ssl_buffer_view = memoryview(proto._ssl_buffer)  # type: ignore[attr-defined]
    return True


# -- telemetry ----------------------------------------------------------------------


def _would_stall(js: JetStreamContext) -> bool:
    """Whether `publish_async` would wait for its pending-publish semaphore (unknown:
    assume it would, so the caller keeps a deadline)."""
    sem = getattr(js, "_publish_async_pending_semaphore", None)
    return not isinstance(sem, asyncio.Semaphore) or sem.locked()


async def publish_batch(
    js: JetStreamContext, subject: str, payloads: Sequence[bytes], timeout: float
) -> list[bool]:
    """Publish every payload with `publish_async` and wait (at most `timeout`) for
    all PubAcks. Returns, per payload, whether JetStream acknowledged it.

    The publishes must not yield to the event loop between one another: then they
    all land in the connection's pending buffer and nats-py's flusher writes them
    with one TLS record and one `send` per batch. `publish_async(wait_stall=t)`
    wraps the semaphore acquire in `asyncio.wait_for(..., t)`, which (Python 3.11)
    creates a task and a timer and yields every time: one socket write and ~5 loop
    callbacks per envelope, each a trip through trio-asyncio (measured: the bulk of
    the simulator's CPU). With `wait_stall=None` the acquire of a free semaphore
    returns at once; the deadline is only needed when it would block."""
    futures: list[asyncio.Future[Any] | None] = []
    for payload in payloads:
        stall = timeout if _would_stall(js) else None
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


async def publish_acked(js: JetStreamContext, subject: str, payload: bytes, timeout: float) -> None:
    """One JetStream publish, waiting for its PubAck (command acks)."""
    await js.publish(subject, payload, timeout=timeout)


# -- commands -----------------------------------------------------------------------


async def ensure_consumer(js: JetStreamContext, stream: str, config: api.ConsumerConfig) -> str:
    """Create the durable consumer when it does not exist yet; never deletes or
    replaces one (a restart resumes where it stopped). Returns "created"/"exists"."""
    assert config.durable_name
    try:
        await js.consumer_info(stream, config.durable_name)
        return "exists"
    except nats.js.errors.NotFoundError:
        await js.add_consumer(stream, config)
        return "created"


def command_consumer_config(tenant_id: str, gateway_id: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=command_durable(gateway_id),
        filter_subject=command_subject(tenant_id, gateway_id),
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=COMMAND_ACK_WAIT_S,
        max_ack_pending=1,  # one command at a time, in order
    )


def decommission_consumer_config(durable: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=durable,
        filter_subject="gateway.decommissioned.>",
        deliver_policy=api.DeliverPolicy.NEW,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=30.0,
    )


async def bind_pull(
    js: JetStreamContext, stream: str, durable: str
) -> JetStreamContext.PullSubscription:
    return await js.pull_subscribe_bind(durable=durable, stream=stream)


async def fetch(sub: JetStreamContext.PullSubscription, batch: int, timeout: float) -> list[Msg]:
    """Up to `batch` messages, or [] when none arrived within `timeout`."""
    try:
        return await sub.fetch(batch, timeout=timeout)
    except (TimeoutError, nats.errors.TimeoutError):
        return []


async def ack(msg: Msg) -> None:
    await msg.ack()


async def term(msg: Msg) -> None:
    await msg.term()


async def close(nc: NATS) -> None:
    await nc.close()
