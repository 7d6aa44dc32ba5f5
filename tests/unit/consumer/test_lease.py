"""The liveness lease: the sans-io `Lease` with literal times, and the Trio driver
`hold` under MockClock with scripted sessions (no database: the real one is in
tests/integration/consumer/test_lease.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from notip.consumer.lease import Lease, hold
from notip.consumer.metrics import ConsumerMetrics

# -- Lease (pure) -------------------------------------------------------------------------


def test_validity_runs_from_the_send_time_minus_a_margin() -> None:
    lease = Lease(15.0)
    assert not lease.held and not lease.valid(0.0)
    lease.acquired(100.0)
    assert lease.held and lease.valid_until == 112.0  # 100 + 15 − 15/5
    assert lease.valid(100.0) and lease.valid(111.999)
    assert not lease.valid(112.0)  # ends strictly before the server could free the lock


def test_renewal_extends_never_shortens() -> None:
    lease = Lease(15.0)
    lease.acquired(100.0)
    lease.renewed(105.0)
    assert lease.valid_until == 117.0
    lease.renewed(103.0)  # an older renewal answering late
    assert lease.valid_until == 117.0


def test_a_lost_lease_is_not_revived_by_a_late_renewal() -> None:
    lease = Lease(15.0)
    lease.acquired(100.0)
    lease.lost()
    lease.renewed(101.0)
    assert not lease.held and not lease.valid(101.0)


def test_periods_and_jitter() -> None:
    lease = Lease(15.0)
    assert lease.renew_every_s == 5.0 and lease.margin_s == 3.0
    assert lease.attempt_delay(0.0) == 3.75
    assert lease.attempt_delay(0.5) == 5.0
    assert lease.attempt_delay(0.999) < 6.25
    # renewals never outlive the validity they extend
    assert lease.renewal_deadline(100.0) == 105.0
    lease.acquired(90.0)  # valid until 102
    assert lease.renewal_deadline(100.0) == 102.0


# -- hold (Trio, MockClock) ---------------------------------------------------------------


@dataclass
class Db:
    """Scripted lock server: who holds the lock, how renewals behave."""

    holder: Session | None = None
    renew_hangs: bool = False
    renew_fails: bool = False
    down: bool = False
    opened: int = 0


@dataclass
class Session:
    db: Db
    closed: bool = False
    renewals: list[float] = field(default_factory=list)

    async def try_lock(self) -> bool:
        if self.db.holder is None or self.db.holder.closed:
            self.db.holder = self
        return self.db.holder is self

    async def renew(self) -> None:
        self.renewals.append(trio.current_time())
        if self.db.renew_hangs:
            await trio.sleep_forever()
        if self.db.renew_fails:
            raise ConnectionResetError("gone")

    def close(self) -> None:
        self.closed = True


@dataclass
class Owner:
    fences: list[Any] = field(default_factory=list)
    runs: int = 0
    cancelled: int = 0

    async def run(self, fence: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        self.fences.append(fence)
        task_status.started(f"owner-{self.runs}")
        try:
            await trio.sleep_forever()
        finally:
            self.cancelled += 1


@dataclass
class Instance:
    owner: Owner
    metrics: ConsumerMetrics
    current: list[Any]
    scope: trio.CancelScope

    @property
    def gauge(self) -> float:
        return self.metrics.registry.get_sample_value("notip_consumer_liveness_owner") or 0.0

    def count(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name) or 0.0


async def start(nursery: trio.Nursery, db: Db, ttl: float = 3.0) -> Instance:
    owner, metrics, current = Owner(), ConsumerMetrics(), [None]

    async def open_session() -> Session:
        if db.down:
            raise OSError("connection refused")
        db.opened += 1
        return Session(db)

    def on_change(value: Any) -> None:
        current[0] = value

    scope = trio.CancelScope()

    async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await hold(
                Lease(ttl),
                open_session,
                owner.run,
                metrics,
                on_change=on_change,
                rand=lambda: 0.5,
                task_status=task_status,
            )

    await nursery.start(run)
    return Instance(owner, metrics, current, scope)


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as n:
        yield n
        n.cancel_scope.cancel()


async def test_first_instance_owns_others_wait(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    db = Db()
    a = await start(nursery, db)
    b = await start(nursery, db)
    # `hold` reports started after the first attempt: a owns before it ingests.
    assert a.current[0] == "owner-1" and a.gauge == 1
    assert b.current[0] is None and b.gauge == 0 and b.owner.runs == 0
    await trio.sleep(30)  # renewals keep it; b keeps trying, in vain
    assert a.owner.cancelled == 0 and a.count("notip_consumer_liveness_lease_lost_total") == 0
    assert b.owner.runs == 0 and db.opened > 5
    assert a.count("notip_consumer_liveness_lease_acquired_total") == 1


async def test_released_at_shutdown_taken_over_within_one_attempt_period(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    db = Db()
    a = await start(nursery, db)
    b = await start(nursery, db)
    a.scope.cancel()
    t0 = trio.current_time()
    while b.gauge != 1:
        await trio.sleep(0.01)
    assert trio.current_time() - t0 <= 1.25  # TTL/3 × 1.25 at most
    assert a.owner.cancelled == 1 and a.gauge == 0
    # a shutdown is a release, not a loss
    assert a.count("notip_consumer_liveness_lease_lost_total") == 0
    assert b.current[0] == "owner-1"


async def test_hung_renewal_cancels_the_owner_before_validity_ends(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    db = Db()
    a = await start(nursery, db)
    [fence] = a.owner.fences
    session = db.holder
    assert session is not None and fence()
    acquired_at = trio.current_time()
    db.renew_hangs = True
    while a.owner.cancelled == 0:
        await trio.sleep(0.01)
    lost_at = trio.current_time()
    # First renewal at TTL/3, bounded by TTL/3: the owner stops at 2/3 TTL, before
    # the validity (TTL − TTL/5) and long before the server could free the lock (TTL
    # after the last answered query).
    assert lost_at - acquired_at == pytest.approx(2.0, abs=0.02)
    assert not fence() and a.gauge == 0 and a.current[0] is None
    assert session.closed  # so that the server frees the lock at once
    assert a.count("notip_consumer_liveness_lease_lost_total") == 1


async def test_failed_renewal_loses_then_a_fresh_session_retakes(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    db = Db()
    a = await start(nursery, db)
    first = db.holder
    db.renew_fails = True
    while a.owner.cancelled == 0:
        await trio.sleep(0.01)
    assert first is not None and first.closed
    db.renew_fails = False
    while a.owner.runs < 2:
        await trio.sleep(0.01)
    assert db.holder is not first  # a new session, not the broken one
    assert a.count("notip_consumer_liveness_lease_acquired_total") == 2
    assert a.gauge == 1 and a.current[0] == "owner-2"


async def test_fence_is_false_once_validity_lapses_even_before_the_driver_runs(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """A paused process: time jumps past the validity with no task having run. The
    fence alone answers from the clock, so the owner's first action after the pause
    sees False; then the driver gives the lease up without trusting the session."""
    db = Db()
    a = await start(nursery, db)
    [fence] = a.owner.fences
    assert fence()
    mock_clock.jump(2.5)  # valid until 2.4 (3 − 0.6): no renewal has run yet
    assert not fence()
    mock_clock.autojump_threshold = 0
    while a.owner.cancelled == 0:
        await trio.sleep(0.01)
    assert a.count("notip_consumer_liveness_lease_lost_total") == 1


async def test_database_down_nobody_owns_then_one_does(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    db = Db(down=True)
    instances = [await start(nursery, db) for _ in range(3)]
    await trio.sleep(20)
    assert sum(i.gauge for i in instances) == 0
    db.down = False
    await trio.sleep(20)
    assert sum(i.gauge for i in instances) == 1
    assert sum(i.owner.runs for i in instances) == 1
