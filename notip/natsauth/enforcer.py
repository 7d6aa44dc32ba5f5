"""Decommission on the wire (docs/nats-auth.md#decommission-on-the-wire): refusing new
connections is the decider's job; closing the open ones is this module's.

- **follower**: the durable `nats-auth-decommission` on DECOMMISSION (shared by every
  instance: each event reaches one). Per event: the gateway is marked decommissioned
  for good in this instance's cache, then queued for the kicker, then acked.
- **kicker**: CONNZ for the user `gw:{tenantId}:{gatewayId}` on every server, KICK
  each connection found. The same gateway is kicked again once the positive cache TTL
  has passed (`follow-up`): another instance may still hold a fresh "provisioned"
  entry and re-admit the kicked client's reconnection until then.
- **sweep**: every SWEEP_INTERVAL_MS, every open `gw:*` connection is re-checked (a
  fresh cache entry, or management) and kicked when the gateway is no longer
  admissible: the backstop for a missed event. A management outage kicks nobody.

Kick failures (system connection down, a server not answering) are counted and
logged; the follow-up and the sweep try again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import nats.errors
import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from notip import contracts
from notip.backoff import Backoff
from notip.jetstream.pull import ACKED, TERMINATED, BatchPuller, consume
from notip.natsauth import kick
from notip.natsauth.decide import Decider, Status
from notip.natsauth.identity import gateway_user_name, parse_gateway_user
from notip.natsauth.metrics import Metrics

log = logging.getLogger("notip.natsauth.enforcer")

Key = tuple[str, str]  # (tenant, gateway)
AskStatus = Callable[[str, str], Awaitable[Status | None]]

FOLLOWER_BATCH = 100
KICK_QUEUE = 1000
FOLLOW_UP_QUEUE = 10_000
#: Past the positive TTL, so that every instance's cache entry has expired.
FOLLOW_UP_MARGIN_S = 1.0
SWEEP_CONCURRENCY = 8
DECOMMISSION_ACK_WAIT_S = 30.0


async def follow_up_kicks(
    due: trio.MemoryReceiveChannel[tuple[float, Key]], kick: Callable[[Key], Awaitable[object]]
) -> None:
    """Kick each gateway again at its due time (Trio clock). Every item is queued with
    the same delay, so the queue is in due order."""
    async for at, key in due:
        await trio.sleep_until(at)
        await kick(key)


def consumer_config(durable: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        # `name` = durable: created through the filtered-create subject, the only one
        # the nats-auth identity may use (docs/contracts.md#permissions-by-identity).
        name=durable,
        durable_name=durable,
        description="notip nats-auth: close a decommissioned gateway's connections",
        # A new durable starts at the present: connections of gateways decommissioned
        # before it existed are the sweep's.
        deliver_policy=api.DeliverPolicy.NEW,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=DECOMMISSION_ACK_WAIT_S,
        filter_subject=contracts.DECOMMISSIONED_ALL,
    )


@dataclass
class Enforcer:
    sys_nc: NATS
    decider: Decider
    metrics: Metrics
    ask: AskStatus
    clock: Callable[[], float] = time.time

    async def _kick_all(self, conns: list[kick.Connection], trigger: str) -> int:
        done = 0
        for conn in conns:
            if await kick.kick(self.sys_nc, conn):
                done += 1
            else:
                self.metrics.kick_errors.inc()
        if done:
            self.metrics.kicks.labels(trigger).inc(done)
        return done

    async def kick_gateway(self, key: Key, trigger: str) -> int:
        """Close every open connection of the gateway; returns how many."""
        user = gateway_user_name(*key)
        try:
            conns = await kick.connections(self.sys_nc, user=user)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self.metrics.kick_errors.inc()
            log.warning("cannot list connections: %s", exc, extra={"user": user})
            return 0
        done = await self._kick_all(conns, trigger)
        if conns:
            log.info(
                "gateway connections closed",
                extra={"user": user, "trigger": trigger, "closed": done, "found": len(conns)},
            )
        return done

    # -- decommission events ------------------------------------------------------------

    async def follow(
        self,
        nc: NATS,
        durable: str,
        *,
        follow_up_s: float,
        task_status: trio.TaskStatus[BatchPuller] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Consume DECOMMISSION; kick, and kick again `follow_up_s` later."""
        to_kick, kicks = trio.open_memory_channel[Key](KICK_QUEUE)
        to_follow, follow_ups = trio.open_memory_channel[tuple[float, Key]](FOLLOW_UP_QUEUE)

        async def handle(msg: Msg) -> str:
            key = contracts.parse_decommissioned(msg.subject)
            if key is None:
                log.warning("malformed decommission event", extra={"subject": msg.subject[:200]})
                return TERMINATED
            self.decider.decommissioned(key[0], key[1], self.clock())
            await to_kick.send(key)
            return ACKED

        async def kicker() -> None:
            async for key in kicks:
                await self.kick_gateway(key, "decommission")
                try:
                    to_follow.send_nowait((trio.current_time() + follow_up_s, key))
                except trio.WouldBlock:
                    log.warning("follow-up queue full; the sweep will re-check", extra={"key": key})

        def ensure_failed(exc: BaseException, delay: float) -> None:
            log.warning("cannot create the decommission consumer (retrying): %s", exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kicker)
            nursery.start_soon(
                follow_up_kicks, follow_ups, partial(self.kick_gateway, trigger="follow_up")
            )
            puller = await nursery.start(
                partial(
                    consume,
                    nc,
                    contracts.DECOMMISSION.name,
                    consumer_config(durable),
                    handle,
                    batch=FOLLOWER_BATCH,
                    ensure_backoff=Backoff(0.5, cap=10.0),
                    rebind_backoff=Backoff(2.0, 2.0),
                    on_ensure_retry=ensure_failed,
                )
            )
            task_status.started(puller)

    # -- the sweep ----------------------------------------------------------------------

    async def sweep(self) -> int:
        """Re-check every open gateway connection; returns how many were closed."""
        self.metrics.sweeps.inc()
        now = self.clock()
        self.decider.cache.prune(now)
        self.metrics.cache_entries.set(len(self.decider.cache))
        try:
            conns = await kick.connections(self.sys_nc)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self.metrics.kick_errors.inc()
            log.warning("sweep: cannot list connections: %s", exc)
            return 0
        by_gateway: dict[Key, list[kick.Connection]] = defaultdict(list)
        for conn in conns:
            key = parse_gateway_user(conn.user)
            if key is not None:
                by_gateway[key].append(conn)
        closed = 0
        limiter = trio.CapacityLimiter(SWEEP_CONCURRENCY)

        async def check(key: Key, found: list[kick.Connection]) -> None:
            nonlocal closed
            async with limiter:
                allowed = self.decider.still_allowed(key[0], key[1], self.clock())
                if allowed is None:
                    status = await self.ask(*key)
                    if status is None:
                        return  # management unavailable: nobody is kicked for that
                    self.decider.record(key[0], key[1], status, self.clock())
                    allowed = self.decider.still_allowed(key[0], key[1], self.clock())
                if allowed is False:
                    closed += await self._kick_all(found, "sweep")

        async with trio.open_nursery() as nursery:
            for key, found in by_gateway.items():
                nursery.start_soon(check, key, found)
        if closed:
            log.info("sweep closed connections", extra={"closed": closed})
        return closed

    async def sweep_forever(
        self, interval_s: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            await trio.sleep(interval_s)
            await self.sweep()
