"""The request-reply responders of CONTRACTS §1.6, in a queue group so that each
request gets exactly one reply however many instances run.

nats-py delivers on the asyncio side; its callback only hands (subject, data, reply)
to Trio through the Trio token. A few Trio worker tasks answer: decode, run the core
operation, publish the reply (one bridge call).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from notip import bridge
from notip.platform.management.core import Management

log = logging.getLogger("notip.mgmt.responders")

VALIDATE = "internal.mgmt.factory.validate"
COMPLETE = "internal.mgmt.provisioning.complete"
ALERT_CONFIGS = "internal.mgmt.alert-configs.list"
UPDATE_STATUS = "internal.mgmt.gateway.update-status"
GET_STATUS = "internal.mgmt.gateway.get-status"
SUBJECTS = (VALIDATE, COMPLETE, ALERT_CONFIGS, UPDATE_STATUS, GET_STATUS)

WORKERS = 8
BACKLOG = 1000

_UNREADABLE = object()


def _internal_error(subject: str, body: Any) -> Any:
    if subject in (COMPLETE, UPDATE_STATUS):
        return {"success": False, "error": "INTERNAL"}
    if subject == GET_STATUS and isinstance(body, dict) and isinstance(body.get("gateway_id"), str):
        return {"gateway_id": body["gateway_id"], "error": "INTERNAL"}
    return {"error": "INTERNAL"}


def _outcome(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return answer["error"]
    return "ok"


async def answer(mgmt: Management, subject: str, data: bytes) -> Any:
    """The JSON answer to one request; never raises (a failure is INTERNAL)."""
    body: Any
    try:
        body = json.loads(data) if data.strip() else None
    except (ValueError, UnicodeDecodeError):
        body = _UNREADABLE
    try:
        if subject == VALIDATE:
            return await mgmt.factory_validate(body)
        if subject == COMPLETE:
            return mgmt.provisioning_complete(body)
        if subject == ALERT_CONFIGS:
            return mgmt.alert_configs_list()
        if subject == UPDATE_STATUS:
            return mgmt.update_status(body)
        if subject == GET_STATUS:
            return mgmt.get_status(body)
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
    send, recv = trio.open_memory_channel[tuple[str, bytes, str]](BACKLOG)
    token = trio.lowlevel.current_trio_token()

    def deliver(item: tuple[str, bytes, str]) -> None:
        try:
            send.send_nowait(item)
        except trio.WouldBlock:
            log.warning("request backlog full; request dropped", extra={"subject": item[0]})
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # shutting down: the requester retries and another member answers

    async def on_msg(msg: Msg) -> None:  # asyncio side: hand over, nothing else
        try:
            token.run_sync_soon(deliver, (msg.subject, msg.data, msg.reply))
        except trio.RunFinishedError:
            pass

    async def subscribe_all() -> list[Any]:
        subs = [await nc.subscribe(s, queue=queue, cb=on_msg) for s in SUBJECTS]
        await nc.flush()
        return subs

    async def unsubscribe_all(subs: list[Any]) -> None:
        for sub in subs:
            await sub.unsubscribe()
        await nc.flush()

    async def worker(requests: trio.MemoryReceiveChannel[tuple[str, bytes, str]]) -> None:
        async with requests:
            async for subject, data, reply in requests:
                result = await answer(mgmt, subject, data)
                mgmt.metrics.requests.labels(subject, _outcome(result)).inc()
                if not reply:
                    continue
                try:
                    await bridge.call(nc.publish, reply, json.dumps(result).encode())
                except Exception as exc:
                    log.warning("reply not sent: %s", exc, extra={"subject": subject})

    subs = await bridge.call(subscribe_all)
    try:
        async with trio.open_nursery() as nursery, send, recv:
            for _ in range(WORKERS):
                nursery.start_soon(worker, recv.clone())
            task_status.started()
            await trio.sleep_forever()
    finally:
        if nc.is_connected:
            await bridge.shielded(unsubscribe_all, subs, timeout=2)
