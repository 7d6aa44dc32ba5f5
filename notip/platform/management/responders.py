"""The request-reply responders of docs/contracts.md#management-request-reply, in a queue group so that each
request gets exactly one reply however many instances run.

nats-py delivers on the asyncio side; its callback only hands (subject, data, reply)
to Trio (notip.handoff). A few Trio worker tasks answer: decode, run the core
operation, publish the reply (one bridge call).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from notip import bridge, contracts
from notip.handoff import Handoff
from notip.platform.management.core import Management

log = logging.getLogger("notip.mgmt.responders")

WORKERS = 8
BACKLOG = 1000

_UNREADABLE = object()


def _internal_error(subject: str, body: Any) -> Any:
    if subject in (contracts.MGMT_PROVISIONING_COMPLETE, contracts.MGMT_GATEWAY_UPDATE_STATUS):
        return {"success": False, "error": "INTERNAL"}
    if (
        subject == contracts.MGMT_GATEWAY_GET_STATUS
        and isinstance(body, dict)
        and isinstance(body.get("gateway_id"), str)
    ):
        return {"gateway_id": body["gateway_id"], "error": "INTERNAL"}
    return {"error": "INTERNAL"}


def _outcome(answer: Any) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    return error if isinstance(error, str) else "ok"


async def answer(mgmt: Management, subject: str, data: bytes) -> Any:
    """The JSON answer to one request; never raises (a failure is INTERNAL)."""
    body: Any
    try:
        body = json.loads(data) if data.strip() else None
    except (ValueError, UnicodeDecodeError):
        body = _UNREADABLE
    try:
        if subject == contracts.MGMT_FACTORY_VALIDATE:
            return await mgmt.factory_validate(body)
        if subject == contracts.MGMT_PROVISIONING_COMPLETE:
            return await mgmt.provisioning_complete(body)
        if subject == contracts.MGMT_ALERT_CONFIGS_LIST:
            return await mgmt.alert_configs_list()
        if subject == contracts.MGMT_GATEWAY_UPDATE_STATUS:
            return await mgmt.update_status(body)
        if subject == contracts.MGMT_GATEWAY_GET_STATUS:
            return await mgmt.get_status(body)
        return {"error": "INTERNAL"}
    except Exception:
        log.exception("responder failed", extra={"subject": subject})
        return _internal_error(subject, body)


async def serve_responders(
    nc: NATS,
    mgmt: Management,
    *,
    queue: str,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Subscribe (queue group `queue`), report readiness once the server has the
    subscriptions, answer until cancelled, then unsubscribe so that the group's other
    members get the next requests."""
    # Requests left unanswered at shutdown are dropped: the requester retries and
    # another member of the queue group answers.
    inbox: Handoff[tuple[str, bytes, str]] = Handoff(maxlen=BACKLOG)

    async def on_msg(msg: Msg) -> None:  # asyncio side: hand over, nothing else
        if not inbox.put((msg.subject, msg.data, msg.reply)):
            log.warning("request backlog full; request dropped", extra={"subject": msg.subject})

    async def subscribe_all() -> list[Any]:
        subs = [await nc.subscribe(s, queue=queue, cb=on_msg) for s in contracts.MGMT_SUBJECTS]
        await nc.flush()
        return subs

    async def unsubscribe_all(subs: list[Any]) -> None:
        for sub in subs:
            await sub.unsubscribe()
        await nc.flush()

    async def worker() -> None:
        async for subject, data, reply in inbox:
            result = await answer(mgmt, subject, data)
            mgmt.metrics.requests.labels(subject, _outcome(result)).inc()
            if not reply:
                continue
            try:
                await bridge.call(nc.publish, reply, json.dumps(result).encode())
            except Exception as exc:  # noqa: BLE001 — one lost reply never stops the worker
                log.warning("reply not sent: %s", exc, extra={"subject": subject})

    subs = await bridge.call(subscribe_all)
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(WORKERS):
                nursery.start_soon(worker)
            task_status.started()
            await trio.sleep_forever()
    finally:
        if nc.is_connected:
            await bridge.shielded(unsubscribe_all, subs, timeout=2)
