"""The liveness lease: which of several identical consumer instances owns liveness.

The lease is a PostgreSQL session-level advisory lock, `pg_try_advisory_lock(LOCK_ID)`,
held on a dedicated session (one asyncpg connection outside the pool) opened with
`idle_session_timeout = LIVENESS_LEASE_TTL_MS`. Why PostgreSQL rather than a JetStream
KV bucket: every instance already depends on the database to do anything useful, a lock
is released by the server the moment the holder's session ends (SIGKILL, lost
connection: no TTL to wait out), and `idle_session_timeout` makes the server itself end
the session of a holder that stops talking (paused, partitioned, half-open TCP) within
the TTL. Advisory locks are per database, so one lock id serves every deployment.

- `Lease` (sans-io; times are Trio seconds passed in): the holder's own view of its
  validity, `valid_until = send time of the last successful acquisition or renewal +
  TTL − margin` (margin = TTL/5). The server can end the session no earlier than TTL
  after the *completion* of that query, which is later than its send time, so the
  holder's validity ends at least `margin` before anyone else could take the lock.
- Fencing: the owner's alert publishes and status reports call `fence()` (=
  `lease.valid(now)`) right before acting, and the holder's sub-nursery is cancelled as
  soon as a renewal fails, times out, or validity lapses. A holder that was paused wakes
  up past `valid_until` and acts on nothing.
- `hold` (Trio): try every TTL/3 (±25 % jitter) on a fresh session; once granted, run
  the owner (`owner.run`) and renew with `SELECT 1` every TTL/3, each renewal bounded by
  the time left; on loss cancel the owner, close the session (so the server frees the
  lock at once), count and log it, and go back to trying.

`LockSession` is the asyncpg adapter (one coroutine per operation through
`notip.bridge`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
import trio

from notip import bridge
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.settings import Settings
from notip.consumer.store import ssl_context

log = logging.getLogger("notip.consumer")

#: The advisory lock key ("notipl"; the migrations use "notip", 0x6E6F746970).
LOCK_ID = 0x6E6F7469706C
CONNECT_TIMEOUT_S = 5.0


class Lease:
    """The holder's view of its lease, sans-io: fed the Trio time at which each
    successful acquisition or renewal query was *sent*."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.margin_s = ttl_s / 5
        self.renew_every_s = ttl_s / 3
        self.valid_until: float | None = None  # None: not held

    @property
    def held(self) -> bool:
        return self.valid_until is not None

    def acquired(self, sent_at: float) -> None:
        self.valid_until = sent_at + self.ttl_s - self.margin_s

    def renewed(self, sent_at: float) -> None:
        """A renewal sent at `sent_at` succeeded. Ignored when not held: a lapsed lease
        is never revived by a late answer."""
        if self.valid_until is not None:
            self.valid_until = max(self.valid_until, sent_at + self.ttl_s - self.margin_s)

    def lost(self) -> None:
        self.valid_until = None

    def valid(self, now: float) -> bool:
        return self.valid_until is not None and now < self.valid_until

    def attempt_delay(self, u: float) -> float:
        """The wait between acquisition attempts for a uniform `u` in [0, 1): TTL/3
        ±25 %, so that instances started together do not stay in step."""
        return self.renew_every_s * (0.75 + 0.5 * u)

    def renewal_deadline(self, sent_at: float) -> float:
        """A renewal sent at `sent_at` must answer by then: a third of the TTL, never
        past the current validity."""
        end = sent_at + self.renew_every_s
        return end if self.valid_until is None else min(end, self.valid_until)


class LockSession:
    """The dedicated PostgreSQL session that holds the lock (not from the pool: a pooled
    connection would be reset and reused, and the lock would go with it)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, s: Settings) -> LockSession:
        async def connect() -> Any:
            return await asyncpg.connect(
                host=s.db_host,
                port=s.db_port,
                user=s.db_user,
                password=s.db_password,
                database=s.db_name,
                ssl=ssl_context(s),
                timeout=CONNECT_TIMEOUT_S,
                server_settings={
                    "application_name": "notip-consumer-lease",
                    # The server ends this session (and frees the lock) when the
                    # holder has been silent this long (PostgreSQL ≥ 14).
                    "idle_session_timeout": str(s.liveness_lease_ttl_ms),
                },
            )

        return cls(await bridge.call(connect))

    async def try_lock(self) -> bool:
        granted = await bridge.call(self.conn.fetchval, "SELECT pg_try_advisory_lock($1)", LOCK_ID)
        return bool(granted)

    async def renew(self) -> None:
        await bridge.call(self.conn.fetchval, "SELECT 1")

    def close(self) -> None:
        # terminate(), not close(): no round trip that could hang on a stopped server;
        # the server frees the lock when it sees the socket close (or at the latest
        # when idle_session_timeout ends the session).
        self.conn.terminate()


class Session(Protocol):
    async def try_lock(self) -> bool: ...
    async def renew(self) -> None: ...
    def close(self) -> None: ...


Fence = Callable[[], bool]
#: `owner.run`-like: started with the fence, reports what it runs (the Liveness).
OwnerRunner = Callable[..., Awaitable[None]]


async def hold(
    lease: Lease,
    open_session: Callable[[], Awaitable[Session]],
    run_owner: OwnerRunner,
    metrics: ConsumerMetrics,
    *,
    on_change: Callable[[Any], None],
    rand: Callable[[], float] = random.random,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Try for the lease until cancelled; own liveness while holding it. Reports
    started after the first attempt (and, when it won, once the owner has started),
    so that an instance that can own liveness at start-up does before it ingests.
    `on_change(x)` gets the owner's started value on acquisition and None on loss."""
    reported = False

    def started() -> None:
        nonlocal reported
        if not reported:
            reported = True
            task_status.started()

    failing = False
    while True:
        session: Session | None = None
        try:
            session = await _acquire(lease, open_session)
        except Exception as exc:  # noqa: BLE001 — any database trouble: try again later
            if not failing:
                log.warning("liveness lease: cannot reach the database (retrying): %s", exc)
            failing = True
        else:
            failing = False
        if session is not None:
            await _own(lease, session, run_owner, metrics, on_change, started)
        started()
        await trio.sleep(lease.attempt_delay(rand()))


async def _acquire(lease: Lease, open_session: Callable[[], Awaitable[Session]]) -> Session | None:
    """One attempt on a fresh session: the session if the lock was granted."""
    with trio.fail_after(CONNECT_TIMEOUT_S + lease.renew_every_s):
        session = await open_session()
    try:
        sent_at = trio.current_time()
        with trio.fail_after(lease.renew_every_s):
            granted = await session.try_lock()
    except BaseException:
        session.close()
        raise
    if not granted:
        session.close()
        return None
    lease.acquired(sent_at)
    return session


async def _own(
    lease: Lease,
    session: Session,
    run_owner: OwnerRunner,
    metrics: ConsumerMetrics,
    on_change: Callable[[Any], None],
    started: Callable[[], None],
) -> None:
    def fence() -> bool:
        return lease.valid(trio.current_time())

    metrics.liveness_owner.set(1)
    metrics.lease_acquired.inc()
    log.info("liveness lease acquired", extra={"ttl_ms": round(lease.ttl_s * 1000)})
    why: str | None = None
    try:
        async with trio.open_nursery() as nursery:

            async def keep() -> None:
                nonlocal why
                why = await _keep(lease, session)
                nursery.cancel_scope.cancel()  # fencing: the owner stops now

            # Renewals run while the owner starts (binding its durable can take a while).
            nursery.start_soon(keep)
            value = await nursery.start(run_owner, fence)
            on_change(value)
            started()
    finally:
        lease.lost()
        on_change(None)
        metrics.liveness_owner.set(0)
        session.close()
        if why is not None:
            metrics.lease_lost.inc()
            log.warning("liveness lease lost: %s", why)
        else:
            log.info("liveness lease released")


async def _keep(lease: Lease, session: Session) -> str:
    """Renew every TTL/3 until a renewal fails; returns why the lease was lost."""
    while True:
        await trio.sleep(lease.renew_every_s)
        sent_at = trio.current_time()
        if not lease.valid(sent_at):
            # Woken past the validity (the process was paused or starved): whatever the
            # session says, another instance may already hold the lock.
            return "validity lapsed before the renewal"
        with trio.move_on_at(lease.renewal_deadline(sent_at)):
            try:
                await session.renew()
            except Exception as exc:  # noqa: BLE001 — any failure ends the lease
                return f"renewal failed: {type(exc).__name__}: {exc}"
            lease.renewed(sent_at)
            continue
        return "renewal timed out"
