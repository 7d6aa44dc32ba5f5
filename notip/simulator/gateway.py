"""One running gateway = one Trio nursery (docs/design.md#nursery-trees):

```
gateway nursery
├── publisher: tick every sendFrequencyMs → generators → encrypt → buffer → ready
│              (the daemon's telemetry flusher, telemetry.py, publishes the buffers
│              of many gateways in one bridge call; a slow or lost PubAck delays
│              publishing, never the ticks: the drop-oldest buffer absorbs it)
├── link:      its own NATS connection (reconnects forever) and its PubAck inbox
│              subscription (replies go into the flusher's ledger); while connected:
│              └── commands: durable gw-{id} → execute → ack/nack/expired
└── anomalies: timers that end degradation/disconnect (queued commands then run)
```

Cancelling the nursery (stop, delete, shutdown) closes the connection in a shielded,
time-limited clean-up, after the PubAcks of its envelopes in flight (at most
`PUBLISH_TIMEOUT_MS`); a command being executed finishes and sends its ack first.
An exception escaping the nursery is the supervisor's business (registry.py): it
restarts the gateway with backoff, its siblings never notice.

Protocol decisions live in the sans-io modules (sensors, buffer, commands,
anomalies); this module wires them to time, NATS and the store.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import nats.errors
import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from notip import bridge, contracts, envelope, natsio
from notip.backoff import Backoff, retry
from notip.handoff import Handoff
from notip.jetstream import publish as jetstream
from notip.jetstream.acks import Outcome
from notip.jetstream.consumers import ensure_pull_consumer
from notip.jetstream.pull import BatchPuller, settle
from notip.simulator import commands, natslink, sensors, tls
from notip.simulator.anomalies import DISCONNECT, NETWORK_DEGRADATION, AnomalyState
from notip.simulator.buffer import DropOldestBuffer
from notip.simulator.events import EventHub
from notip.simulator.metrics import Metrics
from notip.simulator.model import GatewayRecord, Signal
from notip.simulator.schedule import TickSchedule
from notip.simulator.settings import Settings
from notip.simulator.store import Store
from notip.simulator.telemetry import TelemetryFlusher
from notip.simulator.v1 import simulator_pb2 as pb

log = logging.getLogger("notip.simulator.gateway")

NATS_ERROR_PREFIX = "nats server: "


class AckNotSent(Exception):
    """A command's ack could not be published (it was recorded as executed)."""


@dataclass
class GatewayDeps:
    """What a running gateway needs from its daemon."""

    settings: Settings
    metrics: Metrics
    store: Store
    hub: EventHub
    tls_for: Callable[[GatewayRecord], ssl.SSLContext]
    rng: random.Random = field(default_factory=random.Random)
    now_utc: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    telemetry_subject: Callable[[str, str], str] = contracts.telemetry_subject
    #: Publishes the buffers (None: nothing is published, envelopes stay buffered).
    telemetry: TelemetryFlusher | None = None


class GatewayRuntime:
    def __init__(self, rec: GatewayRecord, deps: GatewayDeps) -> None:
        self.rec = rec
        self.deps = deps
        self.id = rec.id
        self.buffer: DropOldestBuffer[bytes] = DropOldestBuffer(deps.settings.gateway_buffer_size)
        self.anomalies = AnomalyState()
        self.buffer_while_offline = False
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._ack_prefix: str | None = None
        self._subject = deps.telemetry_subject(rec.tenant_id, rec.id)
        self._telemetry = deps.telemetry
        self._disconnect_requested = trio.Event()
        self._anomaly_changed = Signal()
        self._fetch_scope: trio.CancelScope | None = None
        self._puller: BatchPuller | None = None
        self._pending_count = 0
        self._t0 = trio.current_time()
        labels = {"gateway_id": rec.id}
        m = deps.metrics
        self._m_published = m.envelopes_published.labels(**labels)
        self._m_errors = m.publish_errors.labels(**labels)
        self._m_dropped = m.buffer_dropped.labels(**labels)
        self._m_fill = m.buffer_fill.labels(**labels)
        self._m_reconnects = m.nats_reconnects.labels(**labels)
        self._m_disconnects = m.nats_disconnects.labels(**labels)
        self._m_refused = m.permission_errors.labels(**labels)
        self._m_lost = m.readings_dropped.labels(gateway_id=rec.id, reason="packet_loss")
        self._m_offline = m.readings_dropped.labels(gateway_id=rec.id, reason="offline")

    # -- the nursery ----------------------------------------------------------------

    async def run(self) -> None:
        self._pending_count = len(await self.deps.store.run(self.deps.store.pending, self.id))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.publisher)
                nursery.start_soon(self._link)
                nursery.start_soon(self._anomaly_timers)
        finally:
            if self._telemetry is not None:
                self._telemetry.forget(self)  # counts what was confirmed meanwhile

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    # -- anomalies (called from the registry, in Trio) -------------------------------

    def inject_degradation(self, duration_s: float, loss: float) -> None:
        self.anomalies.start_degradation(trio.current_time(), duration_s, loss)
        self._anomaly_changed.fire()
        self.deps.hub.anomaly(
            self.id, NETWORK_DEGRADATION, "started", f"loss={loss:g} for {duration_s:g}s"
        )

    def inject_disconnect(self, duration_s: float, buffer_while_offline: bool) -> None:
        self.anomalies.start_disconnect(trio.current_time(), duration_s)
        self.buffer_while_offline = buffer_while_offline
        self._disconnect_requested.set()
        self._anomaly_changed.fire()
        self.deps.hub.anomaly(
            self.id,
            DISCONNECT,
            "started",
            f"{duration_s:g}s" + (", buffering" if buffer_while_offline else ""),
        )

    async def _anomaly_timers(self) -> None:
        while True:
            deadline = self.anomalies.next_deadline()
            with trio.move_on_at(deadline if deadline is not None else float("inf")):
                await self._anomaly_changed.wait()
            for kind in self.anomalies.expire(trio.current_time()):
                self.deps.hub.anomaly(self.id, kind, "ended")
                if self._pending_count and self._fetch_scope is not None:
                    self._fetch_scope.cancel()  # wake the command loop: queued commands run

    # -- telemetry ------------------------------------------------------------------

    async def publisher(self) -> None:
        """The publisher task: one tick per send frequency, on the fixed grid of
        schedule.py (a new frequency or status applies at once)."""
        rec = self.rec
        lateness = self.deps.metrics.tick_lateness
        schedule = TickSchedule(rec.send_frequency_ms / 1000, trio.current_time())
        while True:
            while trio.current_time() < (deadline := schedule.next_deadline()):
                with trio.move_on_at(deadline):
                    await rec.changed.wait()
                    schedule.change(rec.send_frequency_ms / 1000, trio.current_time())
            late = schedule.start_tick(trio.current_time())
            if late is not None:
                lateness.observe(late)
            await self._tick(trio.current_time())

    def _readings(self, now: float) -> list[bytes]:
        rec, deps, hub = self.rec, self.deps, self.deps.hub
        watched = hub.watched(self.id)
        disconnected = self.anomalies.disconnected(now)
        timestamp = envelope.iso(deps.now_utc())
        out: list[bytes] = []
        lost = offline = 0
        for sensor in list(rec.sensors.values()):
            spec = sensor.spec
            is_outlier = sensor.id in rec.pending_outliers
            if is_outlier:
                forced = rec.pending_outliers.pop(sensor.id)
                value = forced if forced is not None else sensors.outlier_value(spec)
            else:
                value = sensors.reading(spec, now - self._t0, deps.rng)
            if watched:
                hub.emit(
                    self.id,
                    reading=pb.ReadingEvent(
                        sensor_id=sensor.id,
                        sensor_type=spec.type,
                        value=value,
                        unit=sensors.unit(spec.type),
                        outlier=is_outlier,
                    ),
                )
            if self.anomalies.drop(now, deps.rng):
                lost += 1
                continue
            if disconnected and not self.buffer_while_offline:
                offline += 1
                continue
            env = envelope.seal(
                rec.aes_key,
                gateway_id=rec.id,
                sensor_id=sensor.id,
                sensor_type=spec.type,
                value=value,
                timestamp=timestamp,
            )
            out.append(env.encode())
        if lost:
            self._m_lost.inc(lost)
            hub.drop(self.id, "packet_loss", lost)
        if offline:
            self._m_offline.inc(offline)
            hub.drop(self.id, "offline", offline)
        return out

    async def _tick(self, now: float) -> None:
        if self.rec.platform_status != "online":
            return  # paused or offline by command: silent
        items = self._readings(now)
        dropped = self.buffer.extend(items)
        if dropped:
            self._m_dropped.inc(dropped)
            self.deps.hub.drop(self.id, "buffer_full", dropped)
        self._m_fill.set(len(self.buffer))
        if self._telemetry is not None:
            self._telemetry.ready(self)

    # The telemetry flusher's side (telemetry.Source), all in Trio:

    def outgoing(self, limit: int) -> tuple[NATS, str, str, list[bytes]] | None:
        nc, prefix = self._nc, self._ack_prefix
        if nc is None or prefix is None or not nc.is_connected or not len(self.buffer):
            return None
        if self.rec.platform_status != "online":
            return None
        batch = self.buffer.take(limit)
        self._m_fill.set(len(self.buffer))
        return nc, self._subject, prefix, batch

    def settle(self, outcome: Outcome) -> bool:
        if outcome.confirmed:
            self._m_published.inc(outcome.confirmed)
        failed = outcome.failed
        if failed:
            # Back to the front of the buffer, out again with the next tick (or
            # reconnect), not at once: a refusing stream is not hammered.
            self._m_errors.inc(len(failed))
            self.deps.hub.drop(self.id, "publish_failed", len(failed))
            dropped = self.buffer.requeue(failed)
            if dropped:
                self._m_dropped.inc(dropped)
                self.deps.hub.drop(self.id, "buffer_full", dropped)
            self._m_fill.set(len(self.buffer))
            return False
        return bool(outcome.confirmed) and self.has_backlog()

    def has_backlog(self) -> bool:
        return len(self.buffer) > 0 and self.connected

    # -- the connection ---------------------------------------------------------------

    async def _connect(self) -> NATS:
        to_trio: Handoff[None] = Handoff()
        rec, size = self.rec, self.deps.settings.nats_read_buffer_bytes
        holder: list[NATS] = []

        def on_disconnect() -> None:  # asyncio side: keep it tiny
            self._m_disconnects.inc()
            to_trio.call_soon(self._set_connected, False, "disconnected")

        def on_reconnect() -> None:
            self._m_reconnects.inc()
            if holder:
                tls.shrink_read_buffer(holder[0], size)
            if self._puller is not None:
                self._puller.on_reconnect()  # its pull requests died with the connection
            to_trio.call_soon(self._set_connected, True, "reconnected")

        def on_error(exc: BaseException) -> None:
            to_trio.call_soon(self._note_error, exc)

        events = natsio.ConnectionEvents(
            on_disconnect=on_disconnect, on_reconnect=on_reconnect, on_error=on_error
        )
        nc = await natsio.connect(
            self.deps.settings.nats_url,
            self.deps.tls_for(rec),
            name=f"notip-sim-{rec.id}",
            events=events,
            # Replies (PubAcks, API answers, pulled commands) come under the
            # gateway's own prefix, the only subscriptions its identity may make.
            inbox_prefix=contracts.gateway_inbox_prefix(rec.id),
        )
        holder.append(nc)
        tls.shrink_read_buffer(nc, size)
        return nc

    def _note_error(self, exc: BaseException) -> None:
        if natsio.is_permission_violation(exc):
            # The server refused one publish or subscription and keeps the connection
            # (a refused telemetry publish then times out and stays buffered): counted
            # here, logged once per connection by natsio.
            self._m_refused.inc()
        # A refused connection shows the server's reason and then the broken pipe it
        # causes; keep the reason.
        if isinstance(exc, OSError) and self.rec.last_error.startswith(NATS_ERROR_PREFIX):
            return
        prefix = NATS_ERROR_PREFIX if isinstance(exc, nats.errors.Error) else "nats connection: "
        self.rec.last_error = f"{prefix}{exc}"

    def _set_connected(self, up: bool, state: str) -> None:
        self.rec.connected = up
        if up:
            self.rec.last_error = ""
            if self._telemetry is not None and len(self.buffer):
                self._telemetry.ready(self)  # replay what was kept meanwhile
            # (A reconnect also re-issues the command pull: on_reconnect tells the
            # puller, whose outstanding requests died with the old connection.)
        self.deps.hub.connection(self.id, state)

    async def _link(self) -> None:
        first = True
        while True:
            nc = await self._connect()
            try:
                telemetry = self._telemetry
                if telemetry is not None:
                    self._ack_prefix = await bridge.call(
                        jetstream.subscribe_acks, nc, telemetry.on_reply
                    )
                if not first:
                    self._m_reconnects.inc()
                self._nc, self._js = nc, jetstream.context(nc)
                self._set_connected(True, "connected" if first else "reconnected")
                first = False
                async with trio.open_nursery() as inner:
                    inner.start_soon(self._commands, nc)
                    await self._disconnect_requested.wait()
                    inner.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    self._nc = self._js = None  # the flusher takes nothing more from us
                    self._ack_prefix = None
                    self.rec.connected = False
                    if self._telemetry is not None:
                        # Envelopes in flight: their PubAcks come back on this
                        # connection, so wait for them (bounded) before closing.
                        await self._telemetry.quiesce(self, self.deps.settings.publish_timeout_s)
                    # close, not drain: nats-py's drain waits for pull subscriptions'
                    # queues, which never empty, and its timeout path leaks a failed
                    # gather that trio-asyncio turns into a loop crash. Nothing is
                    # lost: PubAcks in flight and command acks were awaited already.
                    await bridge.shielded(
                        natslink.close, nc, timeout=self.deps.settings.shutdown_grace_s + 3
                    )
            # Only a disconnect anomaly gets here (closing counted the disconnect
            # through the connection's callback): stay offline until it ends.
            self.deps.hub.connection(self.id, "disconnected", "disconnect anomaly")
            log.info("gateway disconnected (anomaly)", extra={"gateway_id": self.id})
            while self.anomalies.disconnected(trio.current_time()):
                assert self.anomalies.disconnect_until is not None
                await trio.sleep_until(self.anomalies.disconnect_until)
            self._disconnect_requested = trio.Event()

    # -- commands ---------------------------------------------------------------------

    async def _commands(self, nc: NATS) -> None:
        rec = self.rec
        stream = contracts.COMMANDS.name
        config = natslink.command_consumer_config(rec.tenant_id, rec.id)
        settings = self.deps.settings

        def not_ensured(exc: BaseException, wait: float) -> None:
            log.warning(
                "command consumer not created (retrying in %.1fs): %r",
                wait,
                exc,
                extra={"gateway_id": rec.id},
            )

        # Retried here, not by the supervisor: a durable the server refuses (its API
        # unreachable, a permission missing) must not restart the whole gateway and
        # lose its buffer, and telemetry goes on meanwhile.
        await retry(
            partial(ensure_pull_consumer, nc, stream, config),
            backoff=Backoff(settings.restart_backoff_s, settings.restart_backoff_cap_s),
            retry_on=(nats.errors.Error, TimeoutError, OSError),
            on_retry=not_ensured,
        )
        timeout = settings.command_fetch_timeout_s
        # One command at a time; no idle heartbeats (1,000 gateways would wake the
        # simulator 200 times a second): a lost pull request is re-issued at expiry.
        puller = BatchPuller(
            nc,
            stream,
            contracts.command_durable(rec.id),
            batch=1,
            flush_s=0.0,
            expires_s=timeout,
            heartbeat_s=None,
        )
        await puller.start()
        self._puller = puller
        try:
            while True:
                if self._pending_count and not self.anomalies.commands_blocked(trio.current_time()):
                    await self._run_pending()
                msgs: list[Msg] = []
                with trio.CancelScope() as scope:
                    self._fetch_scope = scope
                    if puller.unbound:  # the durable was deleted under us
                        try:
                            await ensure_pull_consumer(nc, stream, config)
                            puller.rebound()
                        except Exception as exc:  # noqa: BLE001 — retried on the next round
                            log.info(
                                "command consumer not re-created: %s",
                                exc,
                                extra={"gateway_id": rec.id},
                            )
                            await trio.sleep(min(1.0, timeout))
                    msgs = await puller.next_batch()
                self._fetch_scope = None
                for msg in msgs:
                    await self._on_command(nc, msg)
        finally:
            self._puller = None

    async def _on_command(self, nc: NATS, msg: Msg) -> None:
        store, hub = self.deps.store, self.deps.hub
        counter = self.deps.metrics.commands
        data = bytes(msg.data)
        try:
            cmd = commands.parse(data)
        except commands.Unparseable as exc:
            log.warning("unusable command: %s", exc, extra={"gateway_id": self.id})
            counter.labels(outcome="rejected").inc()
            hub.command(self.id, "", "", "rejected", message=str(exc))
            if not await settle(nc, term=[msg.reply], flush_timeout=0):
                log.warning(
                    "could not terminate an unusable command", extra={"gateway_id": self.id}
                )
            return
        with trio.CancelScope(shield=True):
            # The command being handled finishes (and its ack goes out) even when the
            # gateway is being stopped; bounded so that a dead link cannot hang it.
            with trio.move_on_after(self._command_budget()):
                try:
                    done = await store.run(store.executed, self.id, cmd.command_id)
                    if done is not None:
                        await self._send_ack(cmd.command_id, done.status, done.message)
                        counter.labels(outcome="duplicate").inc()
                        hub.command(self.id, cmd.command_id, cmd.type, "duplicate", done.status)
                    elif await store.run(store.is_pending, self.id, cmd.command_id):
                        pass  # redelivery of a command already queued
                    else:
                        await self._handle_new(cmd, data)
                except AckNotSent as exc:
                    # Executed and recorded, but the ack did not go out: leave the
                    # message un-acked; its redelivery sends the recorded ack again.
                    log.warning("%s", exc, extra={"gateway_id": self.id})
                    return
                if not await settle(nc, ack=[msg.reply], flush_timeout=0):
                    # Redelivered later; the recorded outcome is acked again then.
                    log.warning("command ack to JetStream failed", extra={"gateway_id": self.id})

    def _command_budget(self) -> float:
        s = self.deps.settings
        return s.firmware_apply_s + 2 * s.publish_timeout_s + 10.0

    async def _handle_new(self, cmd: commands.Command, data: bytes) -> None:
        now = self.deps.now_utc()
        try:
            is_expired = commands.expired(cmd, now, self.deps.settings.command_ttl_s)
        except commands.Rejected as exc:
            await self._finish(cmd, commands.NACK, str(exc), {})
            return
        if is_expired:
            await self._finish(cmd, commands.EXPIRED, "command expired before it was received", {})
            return
        if self.anomalies.commands_blocked(trio.current_time()):
            # Persisted before the JetStream message is acked: the queue survives a
            # restart, and COMMANDS keeps messages only 75 s anyway.
            await self.deps.store.run(self.deps.store.add_pending, self.id, cmd.command_id, data)
            self._pending_count += 1
            self.deps.metrics.commands.labels(outcome="queued").inc()
            self.deps.hub.command(self.id, cmd.command_id, cmd.type, "queued")
            return
        await self._execute(cmd)

    async def _run_pending(self) -> None:
        store = self.deps.store
        for command_id, data in await store.run(store.pending, self.id):
            if self.anomalies.commands_blocked(trio.current_time()):
                return
            with trio.CancelScope(shield=True), trio.move_on_after(self._command_budget()):
                try:
                    cmd = commands.parse(data)
                except commands.Unparseable:  # cannot happen: it was parsed when queued
                    cmd = commands.Command(command_id, "", None, None)
                try:
                    await self._execute(cmd)
                except AckNotSent as exc:
                    log.warning("%s", exc, extra={"gateway_id": self.id})
        self._pending_count = len(await store.run(store.pending, self.id))

    async def _execute(self, cmd: commands.Command) -> None:
        updates: dict[str, Any] = {}
        try:
            action = commands.interpret(cmd)
        except commands.Rejected as exc:
            await self._finish(cmd, commands.NACK, str(exc), {})
            return
        if isinstance(action, commands.ConfigUpdate):
            if action.send_frequency_ms is not None:
                updates["send_frequency_ms"] = action.send_frequency_ms
            if action.status is not None:
                updates["platform_status"] = action.status
        else:
            log.info(
                "command executing",
                extra={"gateway_id": self.id, "command_id": cmd.command_id, "type": cmd.type},
            )
            await trio.sleep(self.deps.settings.firmware_apply_s)  # "installing"
            updates["firmware_version"] = action.firmware_version
        await self._finish(cmd, commands.ACK, None, updates)

    async def _finish(
        self, cmd: commands.Command, status: str, message: str | None, updates: dict[str, Any]
    ) -> None:
        """Record the command as executed (with its effect, one transaction), then
        send its ack. The caller acks the JetStream message afterwards."""
        store = self.deps.store
        await store.run(
            store.record_executed, self.id, cmd.command_id, status, message, updates=updates
        )
        outcome = {"ack": "executed", "nack": "nack", "expired": "expired"}[status]
        self.deps.metrics.commands.labels(outcome=outcome).inc()
        self.deps.hub.command(self.id, cmd.command_id, cmd.type, outcome, status, message or "")
        log.info("command %s", outcome, extra={"gateway_id": self.id, "command_id": cmd.command_id})
        # Effects apply in memory before the ack goes out (the ack says "done").
        for key, value in updates.items():
            setattr(self.rec, key, value)
        if updates:
            self.rec.changed.fire()
        await self._send_ack(cmd.command_id, status, message)

    async def _send_ack(self, command_id: str, status: str, message: str | None) -> None:
        js = self._js
        if js is None:
            raise AckNotSent(f"ack of {command_id} not sent: not connected")
        payload = commands.ack_payload(command_id, status, message, self.deps.now_utc())
        subject = contracts.command_ack_subject(self.rec.tenant_id, self.id)
        try:
            await jetstream.publish(
                js, subject, payload, timeout=self.deps.settings.publish_timeout_s
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise AckNotSent(f"ack of {command_id} not sent: {exc!r}") from exc
