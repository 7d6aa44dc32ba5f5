"""Answering the server's authorization requests (`$SYS.REQ.USER.AUTH`,
docs/nats-auth.md#the-callout-protocol).

nats-py delivers on the asyncio side; its callback only hands the request to Trio
(notip.handoff). `workers` Trio tasks each take one, decide and reply with one bridge
call. The queue group spreads requests over every running instance, and an instance
unsubscribes first when it stops, so the others take the next ones.

`Answerer` holds what is pure about one request: open the box, verify and read the
JWT, sign and seal the answer. A request that cannot be read (not sealed to our key,
not signed by the server it names) is not answered at all: the server then refuses
the connection at its auth timeout, like any request nobody decides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from notip import bridge, contracts
from notip.handoff import Handoff
from notip.natsauth import decide, jwt
from notip.natsauth.decide import Admit, Ask, Decider, Decision, Status
from notip.natsauth.identity import Gateway, identify_chains
from notip.natsauth.metrics import Metrics

log = logging.getLogger("notip.natsauth")

#: A request's `exp` is the server's deadline rounded down to a second, on the
#: server's clock: tolerate that much (and some clock skew) before calling it stale.
REQUEST_EXPIRY_LEEWAY_S = 5.0

AskStatus = Callable[[Gateway, float], Awaitable[Status | None]]


@dataclass(frozen=True)
class Pending:
    data: bytes
    server_xkey: str | None
    reply: str
    #: Trio time of arrival: the decision's budget runs from here.
    received: float


class Unreadable(Exception):
    """A request we cannot answer; the message is the `unanswered` metric's reason."""


class Answerer:
    def __init__(self, issuer: jwt.Signer, xkey: jwt.XKey | None) -> None:
        self.issuer = issuer
        self.xkey = xkey

    def read(self, pending: Pending, now: float) -> jwt.AuthRequest:
        data = pending.data
        if pending.server_xkey:
            if self.xkey is None:
                raise Unreadable("no_xkey")
            try:
                data = self.xkey.open(data, pending.server_xkey)
            except jwt.JwtError as exc:
                raise Unreadable("undecodable") from exc
        try:
            return jwt.decode_auth_request(
                data.decode("ascii"),
                issuer=self.issuer.public_key,
                now=now - REQUEST_EXPIRY_LEEWAY_S,
            )
        except (jwt.JwtError, UnicodeDecodeError) as exc:
            raise Unreadable("undecodable") from exc

    def answer(
        self, request: jwt.AuthRequest, decision: Decision, server_xkey: str | None, now: float
    ) -> bytes:
        if isinstance(decision, Admit):
            token = jwt.encode_answer(request, self.issuer, iat=int(now), user=decision.user)
        else:
            token = jwt.encode_answer(request, self.issuer, iat=int(now), error=decision.message)
        body = token.encode("ascii")
        if server_xkey and self.xkey is not None:
            # The server accepts an unsealed answer too (the signature is what counts),
            # but then the user JWT would travel in the clear.
            body = self.xkey.seal(body, server_xkey)
        return body


async def decide_request(
    decider: Decider,
    request: jwt.AuthRequest,
    ask: AskStatus,
    *,
    budget_s: float,
    metrics: Metrics,
    clock: Callable[[], float],
) -> Decision:
    identity = identify_chains(request.verified_chains)
    decision = decider.decide(identity, clock())
    if isinstance(decision, Ask):
        metrics.cache_misses.inc()
        status = await ask(decision.gateway, budget_s)
        if status is None:
            metrics.mgmt_unavailable.inc()
        return decider.resolve(decision.gateway, status, clock())
    if isinstance(identity, Gateway):
        metrics.cache_hits.inc()
    return decision


async def serve_requests(
    nc: NATS,
    answerer: Answerer,
    decider: Decider,
    ask: AskStatus,
    metrics: Metrics,
    *,
    queue: str,
    workers: int,
    backlog: int,
    budget_s: float,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Subscribe (queue group `queue`), report once the server has the subscription,
    answer until cancelled, then unsubscribe."""
    inbox: Handoff[Pending] = Handoff(maxlen=backlog)

    async def on_msg(msg: Msg) -> None:  # asyncio side: hand over, nothing else
        # trio-asyncio runs asyncio callbacks inside Trio: its clock is readable here.
        xkey = (msg.headers or {}).get(jwt.XKEY_HEADER)
        pending = Pending(bytes(msg.data), xkey, msg.reply, trio.current_time())
        if not inbox.put(pending):
            metrics.unanswered.labels("backlog_full").inc()
            log.warning("authorization backlog full; request dropped")

    async def subscribe() -> Any:
        sub = await nc.subscribe(contracts.SYS_USER_AUTH, queue=queue, cb=on_msg)
        await nc.flush()
        return sub

    async def unsubscribe(sub: Any) -> None:
        await sub.unsubscribe()
        await nc.flush()

    async def handle(pending: Pending) -> None:
        now = clock()
        try:
            request = answerer.read(pending, now)
        except Unreadable as exc:
            metrics.unanswered.labels(str(exc)).inc()
            log.error("authorization request not answerable: %s", exc)
            return
        left = budget_s - (trio.current_time() - pending.received)
        decision = await decide_request(
            decider, request, ask, budget_s=left, metrics=metrics, clock=clock
        )
        body = answerer.answer(request, decision, pending.server_xkey, clock())
        # Counted before the answer leaves: whoever sees its effect sees it counted.
        metrics.decisions.labels(decision.outcome, decision.reason).inc()
        try:
            await bridge.call(nc.publish, pending.reply, body)
        except Exception as exc:  # noqa: BLE001 — one lost reply never stops a worker
            metrics.unanswered.labels("reply_failed").inc()
            log.warning("authorization answer not sent: %s", exc)
            return
        metrics.decision_seconds.observe(trio.current_time() - pending.received)
        log.log(
            logging.DEBUG if isinstance(decision, Admit) else logging.INFO,
            "connection %s",
            decision.outcome,
            extra={
                **decide.describe(decision),
                "cid": request.client_id,
                "server": request.server_name,
            },
        )

    async def worker() -> None:
        async for pending in inbox:
            await handle(pending)

    sub = await bridge.call(subscribe)
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker)
            task_status.started()
            await trio.sleep_forever()
    finally:
        if nc.is_connected:
            await bridge.shielded(unsubscribe, sub, timeout=2)
