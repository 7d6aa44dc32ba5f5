"""The liveness side of the consumer, driven in Trio around the sans-io tracker:

- `Liveness.committed(...)`: fed by the writers after each commit (or by the feed of
  ingest-only instances) → first sighting / back online → `online` status report;
- `Liveness.run_ticks()`: after HEARTBEAT_GRACE_PERIOD_MS, every HEARTBEAT_TICK_MS:
  due gateways → `get-status` (paused → nothing; error → fail open) → gw_offline
  alert → `offline` report. Checks of one tick run concurrently under a limit; ticks
  run one after another in one task, so a slow tick delays the next one and never
  stacks with it (missed ticks are skipped, not queued);
- `run_config_refresh()`: alert configs at start-up (retries with backoff; defaults
  meanwhile) and every ALERT_CONFIG_REFRESH_MS; a failed refresh keeps the snapshot;
- `seed()`: the newest row per gateway within the largest configured timeout plus the
  handover allowance (two lease TTLs, so that a silence the previous owner died before
  alerting is still alerted), or what an owner recorded before alerting it
  (`liveness.seed_time`), and the decommissions still in quarantine;
- `record_alert`: called right before every alert publish, so that the next owner's
  seed derives the same `lastSeen`, hence the same Nats-Msg-Id, for the same silence.

Time: the tracker works in epoch seconds from `clock()` (time.time in production);
scheduling uses Trio time, so tests run it under MockClock with a clock built on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import trio

from notip.backoff import Backoff
from notip.consumer.dispatcher import Dispatcher
from notip.consumer.liveness import (
    AlertConfigs,
    Candidate,
    ConfigHolder,
    Key,
    SeedRow,
    StatusChange,
    Tracker,
    alert_message,
    seed_time,
)
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.mgmt import MgmtClient

log = logging.getLogger("notip.consumer.liveness")

AlertPublisher = Callable[[str, bytes, str], Awaitable[None]]  # (subject, body, msg id)
#: (tenant, gateway, last_seen, window_s): store.Store.record_alert
AlertRecorder = Callable[[str, str, float, float], Awaitable[None]]
Clock = Callable[[], float]

CONFIG_BACKOFF_BASE_S = 1.0
CONFIG_BACKOFF_CAP_S = 60.0


class Liveness:
    def __init__(
        self,
        *,
        tracker: Tracker,
        configs: ConfigHolder,
        mgmt: MgmtClient,
        dispatcher: Dispatcher,
        publish_alert: AlertPublisher,
        alert_subject: Callable[[str, str], str],
        metrics: ConsumerMetrics,
        tick_s: float,
        grace_s: float,
        check_concurrency: int,
        clock: Clock = time.time,
        fence: Callable[[], bool] = lambda: True,
        record_alert: AlertRecorder | None = None,
        handover_s: float = 0.0,
    ) -> None:
        self.tracker = tracker
        self.configs = configs
        self.mgmt = mgmt
        self.dispatcher = dispatcher
        self.publish_alert = publish_alert
        self.alert_subject = alert_subject
        self.metrics = metrics
        self.tick_s = tick_s
        self.grace_s = grace_s
        self.limiter = trio.CapacityLimiter(check_concurrency)
        self.clock = clock
        #: False once this instance may no longer act as the liveness owner (lease.py)
        self.fence = fence
        self.record_alert = record_alert
        #: Added to the seed's window (the largest timeout): a gateway that fell due
        #: while the previous owner was dying, before it alerted, is still seeded by
        #: the next one (which takes over within the lease TTL) and alerted by it.
        self.handover_s = handover_s
        self.ticks = 0

    # -- feeding ---------------------------------------------------------------------

    def _report(self, changes: list[StatusChange]) -> None:
        for ch in changes:
            self.dispatcher.submit(ch.key, ch.status, ch.last_seen)

    def committed(self, sightings: Mapping[Key, float]) -> None:
        if not sightings:
            return
        self._report(self.tracker.observe_many(sightings, self.clock()))
        self.metrics.heartbeat_map_size.set(len(self.tracker))

    def decommissioned(self, key: Key, at: float) -> None:
        tracked = self.tracker.decommission(key, at, self.clock())
        self.dispatcher.forget(key)
        self.metrics.heartbeat_map_size.set(len(self.tracker))
        log.info(
            "gateway decommissioned",
            extra={"tenant_id": key[0], "gateway_id": key[1], "tracked": tracked},
        )

    # -- start-up --------------------------------------------------------------------

    def seed_window_s(self) -> float:
        """How far back the seed looks: the largest configured timeout plus the
        handover allowance."""
        return self.configs.snapshot.largest_ms() / 1000.0 + self.handover_s

    async def seed(
        self,
        newest: Callable[[float], Awaitable[list[SeedRow]]],
        decommissions: Callable[[float], Awaitable[list[tuple[str, str, float]]]],
        quarantine_s: float,
    ) -> int:
        now = self.clock()
        for tenant, gateway, at in await decommissions(now - quarantine_s):
            self.tracker.decommission((tenant, gateway), at, now)
        window_s = self.seed_window_s()
        rows = await newest(window_s)
        now = self.clock()
        recorded = 0
        for tenant, gateway, row_time, rec_seen, rec_row_time in rows:
            seen = seed_time(row_time, rec_seen, rec_row_time)
            recorded += seen != row_time
            self.tracker.seed((tenant, gateway), seen, now)
        self.metrics.heartbeat_map_size.set(len(self.tracker))
        log.info(
            "liveness seeded",
            extra={"gateways": len(rows), "from_alert_records": recorded, "window_s": window_s},
        )
        return len(rows)

    # -- ticks -------------------------------------------------------------------------

    async def run_ticks(self, started_at: float | None = None) -> None:
        """Ticks from `started_at + grace` (Trio time; default now)."""
        start = trio.current_time() if started_at is None else started_at
        next_at = start + self.grace_s
        await trio.sleep_until(next_at)
        while True:
            t0 = trio.current_time()
            await self.tick()
            self.metrics.tick_duration.observe(trio.current_time() - t0)
            next_at += self.tick_s
            now = trio.current_time()
            if next_at <= now:  # the tick overran: skip the missed ones
                next_at += self.tick_s * (int((now - next_at) // self.tick_s) + 1)
            await trio.sleep_until(next_at)

    async def tick(self) -> None:
        self.ticks += 1
        now = self.clock()
        self.tracker.prune(now)
        due = self.tracker.expired(now)
        if due:
            log.debug("gateways due for a check", extra={"count": len(due)})
            async with trio.open_nursery() as nursery:
                for c in due:
                    nursery.start_soon(self._check, c)
        self.metrics.heartbeat_map_size.set(len(self.tracker))

    async def _lifecycle(self, c: Candidate) -> str | None:
        try:
            return await self.mgmt.gateway_state(c.key[0], c.key[1])
        except Exception as exc:  # noqa: BLE001 — MgmtError or any NATS trouble: fail open
            self.metrics.lifecycle_query_errors.inc()
            log.warning(
                "lifecycle query failed; alerting anyway (fail open): %s",
                exc,
                extra={"tenant_id": c.key[0], "gateway_id": c.key[1]},
            )
            return None

    async def _check(self, c: Candidate) -> None:
        async with self.limiter:
            state = await self._lifecycle(c)
            log.debug(
                "lifecycle checked",
                extra={"tenant_id": c.key[0], "gateway_id": c.key[1], "state": state},
            )
            if state == "paused":
                self.metrics.alerts_suppressed.inc()
                return
            if not self.tracker.still_due(c):
                return  # a message arrived or it was decommissioned meanwhile
            if c.unconfirmed and state == "offline":
                # Never seen alive by this run and management already has it offline:
                # the previous run alerted it. Track it as offline, silently.
                self.tracker.mark_offline(c, self.clock(), silent=True)
                return
            if self.record_alert is not None:
                # Before the fence check, so that a record exists, committed, for any
                # alert that passes it: the next owner's seed (which starts after this
                # owner's validity ended) sees it and derives the same Nats-Msg-Id.
                try:
                    await self.record_alert(c.key[0], c.key[1], c.last_seen, self.seed_window_s())
                except Exception as exc:  # noqa: BLE001 — any failure: no alert without its record; retried next tick
                    self.metrics.alert_publish_errors.inc()
                    log.warning(
                        "gw_offline alert not recorded, so not published (retried next tick): %s",
                        exc,
                        extra={"tenant_id": c.key[0], "gateway_id": c.key[1]},
                    )
                    return
            if not self.fence():
                # The lease lapsed (lease.py): the owner's scope is being cancelled,
                # and a former owner never alerts. The next owner re-checks the gateway.
                return
            body, msg_id = alert_message(c, self.clock())
            subject = self.alert_subject(c.key[0], c.key[1])
            try:
                await self.publish_alert(subject, body, msg_id)
            except Exception as exc:  # noqa: BLE001 — any failure: retried next tick, never stops the loop
                self.metrics.alert_publish_errors.inc()
                log.warning(
                    "gw_offline alert not published (retried next tick): %s",
                    exc,
                    extra={"tenant_id": c.key[0], "gateway_id": c.key[1]},
                )
                return
            self.metrics.alerts_published.inc()
            log.info(
                "gateway offline: alert published",
                extra={"tenant_id": c.key[0], "gateway_id": c.key[1], "timeout_ms": c.timeout_ms},
            )
            self._report(self.tracker.mark_offline(c, self.clock()))


async def run_config_refresh(
    *,
    fetch: Callable[[], Awaitable[AlertConfigs]],
    holder: ConfigHolder,
    metrics: ConsumerMetrics,
    max_retries: int,
    refresh_s: float,
    clock: Clock = time.time,
    fetched: trio.Event | None = None,
) -> None:
    """Start-up: 1 + max_retries attempts, exponential backoff (1 s doubling, capped at
    60 s); the defaults apply meanwhile. Then one attempt every `refresh_s`; a failure
    keeps the previous snapshot."""

    async def attempt() -> bool:
        try:
            snapshot = await fetch()
        except Exception as exc:  # noqa: BLE001 — any failure keeps the previous snapshot
            metrics.alert_cache_refresh_errors.inc()
            log.warning("alert configs not fetched (keeping the previous ones): %s", exc)
            return False
        holder.snapshot = snapshot
        holder.fetched = True
        metrics.alert_cache_last_success.set(clock())
        return True

    # Not `backoff.retry`: the first attempt signals `fetched` whatever its outcome.
    delays = Backoff(CONFIG_BACKOFF_BASE_S, CONFIG_BACKOFF_CAP_S)
    for i in range(max_retries + 1):
        ok = await attempt()
        if fetched is not None and i == 0:
            fetched.set()  # seeding goes on with what we have after the first attempt
        if ok:
            break
        if i < max_retries:
            await trio.sleep(next(delays))
    else:
        log.error("alert configs unavailable after start-up retries; using defaults")
    while True:
        await trio.sleep(refresh_s)
        await attempt()
