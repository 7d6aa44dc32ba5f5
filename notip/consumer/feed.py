"""The liveness feed (CONTRACTS: liveness feed, LIVENESS_FEED_SUBJECT; core NATS, best
effort): how sightings committed by an ingest-only instance (LIVENESS_ENABLED=false)
reach the one liveness owner.

- `publisher`: the ingest-only instance's hand-over from its writers — one digest per
  committed batch; a failed publish is logged and dropped, never retried (best effort:
  the batch is already acked, and a raise would take the writer down).
- `receive`: the owner's subscription; the asyncio callback only hands the digest
  over (`notip.handoff`), one Trio task decodes it and feeds the tracker.
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
    """Subscribe, report once subscribed, then pass each digest to `committed`.
    Malformed digests or items are ignored (`decode_sightings`). The subscription is
    not undone here: it ends with the connection, which the service drains last."""
    digests: Handoff[bytes] = Handoff()

    async def on_msg(msg: Msg) -> None:
        digests.put(msg.data)

    await bridge.call(nc.subscribe, subject, cb=on_msg)
    task_status.started()
    async for digest in digests:
        committed(decode_sightings(digest))
