"""Durable pull consumers: the one create-or-update every daemon uses, and the lag
probe. One asyncio coroutine per operation, called through the bridge."""

from __future__ import annotations

from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import api

from notip import bridge

#: Fields an existing durable is brought back to when they drifted. The deliver
#: policy only applies at creation: an existing durable resumes where it stopped.
MUTABLE_FIELDS = (
    "description",
    "ack_wait",
    "max_deliver",
    "backoff",
    "max_ack_pending",
    "filter_subject",
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-3
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def drift(have: api.ConsumerConfig, want: api.ConsumerConfig) -> dict[str, Any]:
    """The mutable fields `want` sets (not None: None leaves the server's default)
    whose value differs on the server. Pure."""
    return {
        f: getattr(want, f)
        for f in MUTABLE_FIELDS
        if getattr(want, f) is not None and not _same(getattr(have, f), getattr(want, f))
    }


async def ensure_pull_consumer(
    nc: NATS, stream: str, want: api.ConsumerConfig
) -> tuple[str, api.ConsumerInfo]:
    """Create the durable pull consumer, or update the fields of `MUTABLE_FIELDS` that
    drifted on an existing one. Never deletes. Returns ("created"|"updated"|
    "unchanged", info)."""
    durable = want.durable_name
    assert durable

    async def run() -> tuple[str, api.ConsumerInfo]:
        js = nc.jetstream()
        try:
            info = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            return "created", await js.add_consumer(stream, want)
        have = info.config
        if have.deliver_subject:
            raise RuntimeError(
                f"consumer {stream}/{durable} is push-based; expected a pull consumer"
            )
        changes = drift(have, want)
        if not changes:
            return "unchanged", info
        return "updated", await js.add_consumer(stream, have.evolve(**changes))

    return await bridge.call(run)


async def consumer_pending(nc: NATS, stream: str, durable: str) -> int | None:
    """Messages not yet delivered (the consumer's lag), or None when unknown."""
    try:
        info = await bridge.call(nc.jetstream().consumer_info, stream, durable)
    except (nats.errors.Error, TimeoutError):
        return None
    return int(info.num_pending or 0)
