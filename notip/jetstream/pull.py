"""Pulling from durable JetStream consumers: the one way every daemon does it
(docs/design.md#the-trio-asyncio-bridge). Continuous-credit batch pull on nats-py's *core* API.

Why not `js.pull_subscribe(...).fetch()`: under trio-asyncio every asyncio callback
costs a trip through Trio, and `fetch()` runs `next_msg()` per message (a task and a
`wait_for` each): ~10k msg/s here. This adapter costs ~0.02 callbacks per message:

- one inbox subscription whose callback only appends to a `Handoff` and, when a
  Trio waiter asked for that many, wakes it (`TrioToken.run_sync_soon`);
- pull requests published to `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` with the
  inbox as reply-to, keeping about 2x the batch of credit outstanding (`Credit`);
- acks as core publishes to each message's reply subject, one batch's as one buffer
  of `PUB` frames handed to the connection at once by one asyncio coroutine, then one
  flush (`settle`).

It handles the server's status replies (100 idle heartbeat, 404/408 request done,
409 limits / consumer deleted / leadership change), drops credit whose request
expired, resets its credit on reconnect and when heartbeats stop (a stalled pull is
re-issued), and reports `unbound` when the consumer is deleted under it.

The same puller serves the control plane (management's ack and alert records, the
decommission listeners, each simulated gateway's commands): `consume()` is the loop
they share. It also avoids `fetch()`'s un-joined subscription queue, which makes
nats-py's `drain()` hang (see natsio.drain). A quiet control-plane durable may turn
idle heartbeats off (`heartbeat_s=None`): then a lost pull request is re-issued at
its expiry instead of after two missed heartbeats, and 1,000 simulated gateways do
not wake the simulator 200 times a second for nothing.

`Credit` is the sans-io bookkeeping (unit-tested); `BatchPuller` is the adapter.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import nats.errors
import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from notip import bridge, guards
from notip.backoff import retry
from notip.handoff import Handoff
from notip.jetstream.consumers import ensure_pull_consumer

log = logging.getLogger("notip.jetstream.pull")

PULL_EXPIRES_S = 30.0
IDLE_HEARTBEAT_S = 5.0
#: Without heartbeats, how long past its expiry a request's 408 may still come.
EXPIRY_SLACK_S = 1.0


def next_subject(stream: str, durable: str) -> str:
    """JetStream's pull-request subject (the NATS server's API, not our contract)."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"


# -- sans-io credit bookkeeping --------------------------------------------------------


@dataclass(slots=True)
class _Request:
    remaining: int
    expires_at: float


class Credit:
    """Pull requests outstanding at the server, oldest first (the server fills them in
    order). Times are the caller's clock (Trio time in the adapter)."""

    def __init__(
        self,
        target: int,
        *,
        min_request: int = 1,
        expires_s: float = PULL_EXPIRES_S,
        heartbeat_s: float | None = IDLE_HEARTBEAT_S,
    ) -> None:
        self.target = target
        self.min_request = max(1, min_request)
        self.expires_s = expires_s
        self.heartbeat_s = heartbeat_s
        self._requests: deque[_Request] = deque()
        self.last_activity = 0.0

    @property
    def outstanding(self) -> int:
        return sum(r.remaining for r in self._requests)

    @property
    def requests(self) -> int:
        return len(self._requests)

    def want(self, buffered: int) -> int:
        """How many messages to ask for now (0 = not worth a request yet)."""
        room = self.target - self.outstanding - buffered
        return room if room >= self.min_request else 0

    def requested(self, n: int, now: float) -> None:
        if not self._requests:
            self.last_activity = now  # heartbeats are due from now on
        self._requests.append(_Request(n, now + self.expires_s))

    def cancel_last(self) -> None:
        """The request just recorded could not be sent."""
        if self._requests:
            self._requests.pop()

    def delivered(self) -> None:
        reqs = self._requests
        if reqs:
            front = reqs[0]
            front.remaining -= 1
            if front.remaining <= 0:
                reqs.popleft()

    def ended_oldest(self) -> None:
        """404/408: the oldest request finished without filling."""
        if self._requests:
            self._requests.popleft()

    def ended_newest(self) -> None:
        """400/409 "Exceeded …": the request just sent was refused."""
        if self._requests:
            self._requests.pop()

    def reset(self) -> None:
        self._requests.clear()

    def touch(self, now: float) -> None:
        self.last_activity = now

    def expire(self, now: float) -> int:
        """Forget requests well past their expiry (their 408 was lost). Returns how many."""
        dropped = 0
        slack = self.heartbeat_s if self.heartbeat_s is not None else EXPIRY_SLACK_S
        while self._requests and self._requests[0].expires_at + slack < now:
            self._requests.popleft()
            dropped += 1
        return dropped

    def stalled(self, now: float) -> bool:
        """Requests outstanding but neither messages nor heartbeats for 2 heartbeats:
        the server lost them (restart, route change); re-issue. Never without
        heartbeats (expiry covers a lost request then)."""
        if self.heartbeat_s is None:
            return False
        return bool(self._requests) and now - self.last_activity > 2 * self.heartbeat_s + 1.0


def status_action(code: str, description: str) -> str:
    """What a status reply means for the credit: `heartbeat`, `ended_oldest`,
    `ended_newest`, `reset` or `unbound`."""
    if code == "100":
        return "heartbeat"
    if code in ("404", "408"):
        return "ended_oldest"
    if code == "409":
        desc = description.lower()
        if "consumer deleted" in desc or "push based" in desc:
            return "unbound"
        if desc.startswith("exceeded") or "exceeds" in desc:
            return "ended_newest"
        return "reset"  # leadership change, server shutdown, …
    if code == "400":
        return "ended_newest"
    if code == "503":
        return "unbound"  # no responders: no such consumer (deleted while we had no request)
    return "reset"


# -- the adapter ------------------------------------------------------------------------


class BatchPuller:
    """Pulls batches from one durable pull consumer. Create on the Trio side, start
    with `await start()`, pull with `await next_batch()` from one Trio task, settle
    with `settle()`."""

    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        *,
        batch: int,
        flush_s: float,
        credit_factor: int = 2,
        expires_s: float = PULL_EXPIRES_S,
        heartbeat_s: float | None = IDLE_HEARTBEAT_S,
    ) -> None:
        if heartbeat_s is not None and heartbeat_s * 2 > expires_s:
            # The server refuses such a pull request ("heartbeat value too large").
            raise ValueError("idle heartbeat must be at most half the pull expiry")
        self.nc = nc
        self.stream = stream
        self.durable = durable
        self.batch = batch
        self.flush_s = flush_s
        self.credit = Credit(
            credit_factor * batch,
            min_request=max(1, batch // 2),
            expires_s=expires_s,
            heartbeat_s=heartbeat_s,
        )
        # How long one wait lasts before the credit is looked after again.
        self._idle_s = heartbeat_s if heartbeat_s is not None else expires_s
        request: dict[str, int] = {"expires": int(expires_s * 1e9)}
        if heartbeat_s is not None:
            request["idle_heartbeat"] = int(heartbeat_s * 1e9)
        self._request = request
        self._next_subject = next_subject(stream, durable)
        self._inbox: Handoff[Msg] = Handoff()
        self._activity = 0
        self._seen_activity = 0
        self._reset_pending = False
        self._sub: Any = None
        self.inbox = ""
        self.unbound = False
        self.bound = False

    @property
    def buffered(self) -> int:
        return len(self._inbox)

    # -- asyncio side (nats-py's reader): tiny, no awaits that matter ----------------

    async def _on_msg(self, msg: Msg) -> None:
        self._activity += 1
        if not msg.data:
            hdr = msg.headers
            if hdr and "Status" in hdr:
                self._on_status(hdr)
                return
        self.credit.delivered()
        self._inbox.put(msg)

    def _on_status(self, hdr: dict[str, str]) -> None:
        code = str(hdr.get("Status", ""))
        action = status_action(code, str(hdr.get("Description", "")))
        if action == "heartbeat":
            return
        if action == "ended_oldest":
            self.credit.ended_oldest()
        elif action == "ended_newest":
            self.credit.ended_newest()
            log.warning(
                "pull request refused",
                extra={
                    "status": code,
                    "description": hdr.get("Description"),
                    "durable": self.durable,
                },
            )
        elif action == "unbound":
            self.credit.reset()
            self.unbound = True
            log.error(
                "pull consumer gone",
                extra={
                    "status": code,
                    "description": hdr.get("Description"),
                    "durable": self.durable,
                },
            )
        else:
            self.credit.reset()
        self._inbox.wake()

    def on_reconnect(self) -> None:
        """Called from the connection's reconnect hook (or from Trio): server-side
        pull requests may be gone with the old connection."""
        self._reset_pending = True
        self._inbox.wake()

    # -- Trio side ---------------------------------------------------------------------

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        self._sub = await bridge.call(
            self.nc.subscribe,
            self.inbox,
            cb=self._on_msg,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        self.bound = True
        self.unbound = False

    def rebound(self) -> None:
        self.unbound = False
        self.credit.reset()

    async def drain(self, timeout: float = 2.0) -> None:
        """Stop deliveries before handing messages back: UNSUB, then a round trip, so
        everything the server sent before it saw the UNSUB lands in the buffer (and
        the server drops our pull requests: nothing more comes our way). NAKing while
        still subscribed would get the messages redelivered straight back to us."""
        sub, self._sub = self._sub, None
        self.bound = False
        if sub is not None and self.nc.is_connected:
            await bridge.shielded(sub.drain, timeout=timeout)

    async def stop(self) -> None:
        self.bound = False
        if self._sub is not None and not self.nc.is_closed:
            await bridge.shielded(self._sub.unsubscribe, timeout=2)
        self._sub = None

    def _maintain(self, now: float) -> None:
        credit = self.credit
        if self._reset_pending:
            self._reset_pending = False
            credit.reset()
        if self._activity != self._seen_activity:
            self._seen_activity = self._activity
            credit.touch(now)
        if credit.expire(now):
            log.debug("dropped expired pull credit", extra={"durable": self.durable})
        if credit.stalled(now):
            log.warning("pull stalled (no heartbeat); re-issuing", extra={"durable": self.durable})
            credit.reset()

    async def _top_up(self) -> None:
        if self.unbound or not self.nc.is_connected:
            return
        n = self.credit.want(len(self._inbox))
        if n <= 0:
            return
        payload = json.dumps({"batch": n, **self._request}).encode()
        # Recorded before sending: replies may be processed before publish returns.
        self.credit.requested(n, trio.current_time())
        # Shielded (publish only buffers): a caller that cancels its pull to look at
        # something else must not leave credit recorded for a request never sent.
        with trio.CancelScope(shield=True):
            try:
                await bridge.call(self.nc.publish, self._next_subject, payload, reply=self.inbox)
            except (nats.errors.Error, OSError) as exc:
                self.credit.cancel_last()
                log.warning("pull request not sent: %s", exc, extra={"durable": self.durable})

    async def next_batch(self) -> list[Msg]:
        """Up to `batch` messages: as soon as a full batch is buffered, or whatever
        arrived within `flush_s` of the first one. Waits for at least one, unless the
        consumer is gone (`unbound`): then returns [] so the caller can re-create it.
        Cancelling it loses nothing: what arrived stays buffered for the next call."""
        inbox = self._inbox
        while True:
            self._maintain(trio.current_time())
            await self._top_up()
            if len(inbox):
                break
            if self.unbound:
                return []
            await inbox.wait(1, self._idle_s)
        if len(inbox) < self.batch and self.flush_s > 0:
            await inbox.wait(self.batch, self.flush_s)
        out = inbox.take(self.batch)
        await self._top_up()
        return out

    def take_buffered(self) -> list[Msg]:
        """Everything delivered but not handed out (shutdown: to be NAKed)."""
        return self._inbox.take()


# -- acks --------------------------------------------------------------------------------

ACK = b""
NAK = b"-NAK"
TERM = b"+TERM"
IN_PROGRESS = b"+WPI"


#: Characters that would split or end a protocol line: a reply subject holding one is
#: never spliced into a PUB frame (the set nats-py's publish refuses).
_UNSAFE_SUBJECT = re.compile(r"[ \t\r\n]")


def ack_frames(groups: Sequence[tuple[Sequence[str], bytes]]) -> tuple[bytes, int, list[str]]:
    """The NATS protocol bytes of one core publish per reply subject
    (`PUB <reply> <len>\r\n<payload>\r\n`, each group's payload to each of its replies),
    as one buffer; also how many frames it holds, and the replies left out because
    they could not be spliced safely (space, tab, CR or LF: they go through
    `nc.publish`, which refuses them). Empty replies are skipped. Pure."""
    parts: list[str] = []
    count = 0
    unsafe: list[str] = []
    for replies, payload in groups:
        safe = [r for r in replies if r]
        # Four C-level scans of the group (a regex pass costs ~40x more); per reply
        # only when one of them hit.
        joined = "".join(safe)
        if " " in joined or "\t" in joined or "\r" in joined or "\n" in joined:
            unsafe.extend(r for r in safe if _UNSAFE_SUBJECT.search(r) is not None)
            safe = [r for r in safe if _UNSAFE_SUBJECT.search(r) is None]
        if not safe:
            continue
        tail = f" {len(payload)}\r\n{payload.decode()}\r\n"
        parts.append("PUB " + (tail + "PUB ").join(safe) + tail)
        count += len(safe)
    return "".join(parts).encode(), count, unsafe


# nats-py has no public call that writes many publishes at once; `publish` costs
# ~2.3 µs of Python per message (subject check, command bytes, stats, pending
# bookkeeping), the one buffer ~0.4 µs per ack with the flush
# (docs/design.md#consumer-hot-path-python-cpu-per-message). `Client._send_command(cmd)` appends ready protocol bytes to the
# connection's pending buffer, which its flusher task writes out: verified with
# nats-py 2.16.0 (the same method `publish` and `flush` use). Missing in a later
# version: guard `nats_send_command`, per-message `publish` instead.
_SEND_COMMAND = "_send_command"
_FLUSH_PENDING = "_flush_pending"


async def _publish_all(
    nc: NATS, groups: Sequence[tuple[Sequence[str], bytes]], flush_timeout: float
) -> None:
    send = getattr(nc, _SEND_COMMAND, None)
    kick = getattr(nc, _FLUSH_PENDING, None)
    if send is None or kick is None:
        guards.missing(
            guards.NATS_SEND_COMMAND,
            "nats Client._send_command/_flush_pending not found; acks are sent one publish each",
        )
    if send is None or kick is None or not nc.is_connected or nc.is_draining_pubs:
        # Not connected (buffering rules), draining or closed: nats-py's own publish
        # decides (buffers or raises) exactly as for any publish.
        publish = nc.publish
        for replies, payload in groups:
            for reply in replies:
                if reply:
                    await publish(reply, payload)
    else:
        buf, count, unsafe = ack_frames(groups)
        if buf:
            nc.stats["out_msgs"] += count
            await send(buf)
            if flush_timeout <= 0:
                await kick()  # wake the flusher, as `publish` does
        if unsafe:
            by_reply = {r: p for replies, p in groups for r in replies}
            for reply in unsafe:
                await nc.publish(reply, by_reply[reply])  # raises BadSubjectError
    if flush_timeout > 0:
        # nats-py annotates the timeout as int; it is seconds for asyncio.wait_for.
        await nc.flush(timeout=flush_timeout)  # type: ignore[arg-type]


async def settle(
    nc: NATS,
    *,
    ack: Sequence[str] = (),
    term: Sequence[str] = (),
    nak: Sequence[str] = (),
    progress: Sequence[str] = (),
    flush_timeout: float = 5.0,
) -> bool:
    """One core publish to each message's reply subject, all in one buffer (`ack_frames`),
    then one flush, in a single asyncio coroutine. False when it could not be confirmed (the messages
    are then redelivered after ack wait: the insert is idempotent)."""
    groups = [
        (r, p) for r, p in ((ack, ACK), (term, TERM), (nak, NAK), (progress, IN_PROGRESS)) if r
    ]
    if not groups:
        return True
    try:
        await bridge.call(_publish_all, nc, groups, flush_timeout)
        return True
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        log.warning("acks not confirmed: %s", exc, extra={"count": sum(len(r) for r, _ in groups)})
        return False


# -- the shared control-plane loop ------------------------------------------------------

#: What a handler decides for one message.
ACKED = "ack"
TERMINATED = "term"
LEFT = "leave"  # neither: redelivered after the durable's ack wait

Handler = Callable[[Msg], Awaitable[str]]


async def consume(
    nc: NATS,
    stream: str,
    config: api.ConsumerConfig,
    handle: Handler,
    *,
    batch: int,
    expires_s: float = PULL_EXPIRES_S,
    heartbeat_s: float | None = IDLE_HEARTBEAT_S,
    ensure_backoff: Iterable[float] = (),
    rebind_backoff: Iterable[float] = (),
    on_ensure_retry: Callable[[BaseException, float], None] | None = None,
    task_status: trio.TaskStatus[BatchPuller] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ensure the durable (retried on `ensure_backoff`; none: a failure propagates),
    report the started puller (the caller wires `on_reconnect` to it), then pull
    batches forever: `handle` each message in order, one `settle` per batch. A durable
    deleted under us is re-created (retried on `rebind_backoff`). On the way out the
    subscription is drained and what was fetched but not handled is NAKed, so it is
    redelivered at once rather than after the ack wait."""
    durable = config.durable_name
    assert durable
    await retry(
        partial(ensure_pull_consumer, nc, stream, config),
        backoff=ensure_backoff,
        retry_on=Exception,
        on_retry=on_ensure_retry,
    )
    puller = BatchPuller(
        nc, stream, durable, batch=batch, flush_s=0.0, expires_s=expires_s, heartbeat_s=heartbeat_s
    )
    await puller.start()
    task_status.started(puller)

    def rebind_failed(exc: BaseException, wait: float) -> None:
        log.warning(
            "cannot re-create the pull consumer (retrying in %.1fs): %s",
            wait,
            exc,
            extra={"durable": durable},
        )

    try:
        while True:
            if puller.unbound:
                await retry(
                    partial(ensure_pull_consumer, nc, stream, config),
                    backoff=rebind_backoff,
                    retry_on=Exception,
                    on_retry=rebind_failed,
                )
                puller.rebound()
            acks: list[str] = []
            terms: list[str] = []
            for msg in await puller.next_batch():
                verdict = await handle(msg)
                if verdict == ACKED:
                    acks.append(msg.reply)
                elif verdict == TERMINATED:
                    terms.append(msg.reply)
            await settle(nc, ack=acks, term=terms)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(4):
            await puller.drain()
            leftover = puller.take_buffered()
            if leftover:
                await settle(nc, nak=[m.reply for m in leftover], flush_timeout=2)
