"""The liveness feed (CONTRACTS: liveness feed, LIVENESS_FEED_SUBJECT; core NATS, best
effort): how sightings committed by an instance that does not hold the liveness lease
reach the one that does (lease.py).

- `publisher`: a non-holder's hand-over from its writers — one digest per committed
  batch; a failed publish is logged and dropped, never retried (best effort: the batch
  is already acked, and a raise would take the writer down). Digests published while
  nobody holds the lease are lost; the next holder seeds from the database.
- `receive`: the holder's subscription, for as long as it holds the lease; the asyncio
  callback only hands the digest over (`notip.handoff`), one Trio task decodes it and
  feeds the tracker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from notip import bridge
from notip.consumer.liveness import Key, decode_sightings, encode_sightings
from notip.consumer.pipeline import Committed
from notip.handoff import Handoff

# The daemon's own logger: these lines have always been logged under it.
log = logging.getLogger("notip.consumer")

FLUSH_TIMEOUT_S = 5  # nats-py wants whole seconds


def publisher(nc: NATS, subject: str) -> Committed:
    async def publish(sightings: Mapping[Key, float]) -> None:
        try:
            await bridge.call(nc.publish, subject, encode_sightings(sightings))
        except Exception as exc:  # noqa: BLE001 — liveness is best effort on this path
            log.warning("liveness feed not published: %s", exc)

    return publish


async def receive(
    nc: NATS,
    subject: str,
    committed: Callable[[Mapping[Key, float]], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Subscribe, report once the server has the subscription, then pass each digest
    to `committed` until cancelled (the lease lost, or shutdown), then unsubscribe.
    Malformed digests or items are ignored (`decode_sightings`)."""
    digests: Handoff[bytes] = Handoff()

    async def on_msg(msg: Msg) -> None:
        digests.put(msg.data)

    sub = await bridge.call(nc.subscribe, subject, cb=on_msg)
    try:
        # A round trip, so that "started" means the server routes digests to us (the
        # owner seeds from the database after this, and must not miss what falls between).
        try:
            await bridge.call(nc.flush, FLUSH_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 — e.g. reconnecting: the SUB is resent anyway
            log.warning("liveness feed subscription not confirmed: %s", exc)
        task_status.started()
        async for digest in digests:
            committed(decode_sightings(digest))
    finally:
        if not nc.is_closed:
            await bridge.shielded(sub.unsubscribe, timeout=2)
