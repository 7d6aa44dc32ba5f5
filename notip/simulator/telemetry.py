"""The daemon-wide telemetry flusher: every gateway's envelopes go to NATS from here
(docs/design.md#the-simulators-telemetry-path).

```
simulator nursery (service.py)
├── telemetry flusher (this module), started before the registry
│     wakes: a gateway marked itself ready (its tick filled its buffer), PubAcks
│     came in (once per idle spell), or the ledger's next PubAck deadline; then
│     settles, and at most once per FLUSH_INTERVAL_S:
│     settle  — PubAck outcomes taken from the ledger in bulk: confirmed counts into
│               each gateway's counter, failed/expired envelopes back to the front
│               of its drop-oldest buffer (and counted as publish errors);
│     round   — the buffered envelopes of every ready, connected, online gateway
│               (≤ PUBLISH_CHUNK each, ≤ ROUND_LIMIT in all) registered in the
│               ledger and core-published in ONE bridge call
└── registry nursery → one nursery per gateway: publisher, link → commands, anomalies
      (the link subscribes its connection's PubAck inbox; replies go straight into
      the ledger on the asyncio side; a Trio wake only when the flusher is idle)
```

A gateway's publisher only builds, encrypts and buffers its tick and calls `ready`:
no Trio wake-up per gateway unless the flusher is idle, no asyncio future, timer or
bridge crossing per envelope or per gateway. "Confirmed" still means JetStream
stored the envelope (a real PubAck); an error PubAck, a 503 (no stream), no answer
within `PUBLISH_TIMEOUT_MS` or a publish the connection refused all put the envelope
back in its gateway's buffer, to go out again with the gateway's next tick, and count
it in `notip_sim_publish_errors_total`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Protocol

import trio
from nats.aio.client import Client as NATS

from notip import bridge
from notip.jetstream import publish as jetstream
from notip.jetstream.acks import AckLedger, Outcome

log = logging.getLogger("notip.simulator.telemetry")

#: Ticks falling within this window go out in one round (one bridge crossing).
FLUSH_INTERVAL_S = 0.02
#: Envelopes per gateway per round (a reconnect's replay goes out over several rounds).
PUBLISH_CHUNK = 500
#: Envelopes per round, all gateways together: one round stays short.
ROUND_LIMIT = 5000
#: Unconfirmed envelopes per gateway before it waits for PubAcks.
MAX_IN_FLIGHT = 1000
#: A round only writes into the connections' buffers; this bounds it all the same.
ROUND_TIMEOUT_S = 10.0


class Source(Protocol):
    """What the flusher needs from a gateway (gateway.GatewayRuntime)."""

    def outgoing(self, limit: int) -> tuple[NATS, str, str, list[bytes]] | None:
        """Up to `limit` envelopes taken from its buffer with (connection, subject,
        ack prefix), or None when it cannot publish now."""
        ...

    def settle(self, outcome: Outcome) -> bool:
        """Count confirmed envelopes, requeue failed ones; True when it has more to
        send right away."""
        ...

    def has_backlog(self) -> bool: ...


class TelemetryFlusher:
    def __init__(self, publish_timeout_s: float, *, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.publish_timeout_s = publish_timeout_s
        self.interval_s = interval_s
        self.ledger: AckLedger[Source] = AckLedger()
        self._ready: dict[Source, None] = {}  # insertion-ordered set
        self._wake = trio.Event()
        self._sleeping = False
        self._quiescing: dict[Source, trio.Event] = {}
        self._token: trio.lowlevel.TrioToken | None = None

    # -- gateways' side (Trio) ------------------------------------------------------

    def ready(self, source: Source) -> None:
        """`source` has envelopes to publish (cheap: wakes the flusher only when it
        is idle)."""
        self._ready[source] = None
        if self._sleeping:
            self._sleeping = False
            self._wake.set()

    async def quiesce(self, source: Source, timeout: float) -> None:
        """Before its connection closes: wait (at most `timeout`) for the PubAcks of
        `source`'s envelopes in flight, so that what was stored is counted."""
        self._ready.pop(source, None)
        if not self.ledger.in_flight(source):
            return
        event = trio.Event()
        self._quiescing[source] = event
        try:
            with trio.move_on_after(timeout):
                await event.wait()
        finally:
            del self._quiescing[source]

    def forget(self, source: Source) -> None:
        """`source` stopped: settle what it has (its counters), drop the rest (a
        reply still to come counts as unknown in the ledger)."""
        self._ready.pop(source, None)
        outcome, _ = self.ledger.forget(source)
        outcome.failed = []  # its buffer goes with it
        source.settle(outcome)

    # -- the connections' side (asyncio callbacks: tiny) -----------------------------

    def on_reply(self, token: str, ok: bool) -> None:
        owner = self.ledger.on_reply(token, ok)
        if owner is None:
            return
        if self._sleeping and self._token is not None:
            # At most one wake per idle spell (the flusher settles everything that
            # came in by then), so counters follow PubAcks promptly.
            self._sleeping = False
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._wake.set)
        if self._quiescing:
            self._check_quiesced(owner)

    def _check_quiesced(self, owner: Source) -> None:
        event = self._quiescing.get(owner)
        if event is not None and not self.ledger.in_flight(owner) and self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(event.set)

    # -- the task -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._token = trio.lowlevel.current_trio_token()
        task_status.started()
        last_round = -math.inf
        while True:
            if not self._ready:
                deadline = self.ledger.next_deadline()
                self._sleeping = True
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await self._wake.wait()
                self._sleeping = False
                self._wake = trio.Event()
                self._settle(trio.current_time())
                if not self._ready:
                    continue  # woken by PubAcks or a deadline: settled, nothing to send
            # Coalesce: the ticks of one interval (gateways tick spread over their
            # period) go out together.
            await trio.sleep_until(last_round + self.interval_s)
            now = trio.current_time()
            last_round = now
            self._settle(now)
            await self._round(now)

    def _settle(self, now: float) -> None:
        self.ledger.expire(now)
        for source, outcome in self.ledger.take().items():
            if source.settle(outcome):
                self._ready[source] = None

    async def _round(self, now: float) -> None:
        ledger = self.ledger
        deadline = now + self.publish_timeout_s
        budget = ROUND_LIMIT
        batches: list[jetstream.CorePublish] = []
        for source in list(self._ready):
            if budget <= 0:
                break  # the rest stay ready for the next round
            del self._ready[source]
            room = min(PUBLISH_CHUNK, MAX_IN_FLIGHT - ledger.in_flight(source), budget)
            if room <= 0:
                continue  # ready again when PubAcks settle (settle() says so)
            out = source.outgoing(room)
            if out is None:
                continue  # ready again at its next tick or (re)connect
            nc, subject, prefix, payloads = out
            tokens = ledger.register(source, payloads, deadline)
            batches.append(jetstream.CorePublish(nc, subject, prefix, tokens, payloads))
            budget -= len(payloads)
            if source.has_backlog():
                self._ready[source] = None
        if not batches:
            return
        sent: list[int] | None = None
        # Shielded: what is registered gets published (or failed) even during
        # shutdown, so that no gateway waits for PubAcks of envelopes never sent.
        with trio.CancelScope(shield=True), trio.move_on_after(ROUND_TIMEOUT_S):
            try:
                sent = await bridge.call(jetstream.publish_expecting_acks, batches)
            except Exception as exc:  # noqa: BLE001 — the whole round failed: requeue all of it
                log.warning("telemetry round failed: %r", exc)
                sent = [0] * len(batches)
        if sent is None:
            return  # timed out: what was sent is answered, the rest expires
        for batch, n in zip(batches, sent, strict=True):
            for token in batch.tokens[n:]:
                self.on_reply(token, False)  # never sent: failed now, requeued at settle
