"""The liveness lease with identical instances on real NATS + PostgreSQL: one owner
among three; the owner SIGKILLed under load (a survivor takes over within the TTL, a
gateway silenced after the kill gets one alert and one `offline`, no row lost or
duplicated); a rolling restart of every instance under load; the database frozen
(SIGSTOP) for longer than the TTL (nobody acts as owner, then exactly one does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import trio

from notip import natsio
from notip.localservers import PostgresServer
from tests.waiting import eventually, stays_true

from .conftest import Collector, FakeMgmt, count_rows, encode, envelope, metric, publish, query
from .conftest import start_consumer as start_in_process
from .test_outage import own_postgres  # noqa: F401 — the fixture, shared

EnvFactory = Callable[..., dict[str, str]]

TTL_MS = 2000
TTL_S = TTL_MS / 1000
OWNER = "notip_consumer_liveness_owner"


def lease_env(make_env: EnvFactory, dsn: str | None = None, **extra: str) -> dict[str, str]:
    """One environment for every instance: same durables, feed subject, database."""
    return make_env(
        dsn,
        LIVENESS_LEASE_TTL_MS=str(TTL_MS),
        INGEST_ACK_WAIT_MS="2000",
        HEARTBEAT_TICK_MS="200",
        **extra,
    )


# -- child processes ----------------------------------------------------------------------


class Proc:
    """`python -m notip consumer` with its log in a file; its metrics port is read from
    its "consumer starting" log line (METRICS_ADDR picks a free port)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "notip", "consumer"],
                env={**os.environ, **env, "LOG_LEVEL": "info"},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.port: int | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _lines(self) -> Iterator[dict[str, object]]:
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue

    async def gauge(self, http: httpx.AsyncClient, name: str = OWNER) -> float:
        if self.port is None:
            for entry in self._lines():
                if entry.get("msg") == "consumer starting":
                    self.port = int(str(entry["metrics_port"]))
        if self.port is None or not self.alive():
            return 0.0
        try:
            text = (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        except httpx.HTTPError:
            return 0.0
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def ready(self, http: httpx.AsyncClient) -> bool:
        assert self.alive(), f"consumer exited ({self.proc.returncode}):\n{self.log.read_text()}"
        await self.gauge(http)  # reads the port
        if self.port is None:
            return False
        try:
            return (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)


@contextmanager
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()


async def wait_ready(http: httpx.AsyncClient, p: Proc) -> None:
    await eventually(partial(p.ready, http), timeout=60, what=f"{p.log.name} ready")


async def owners(http: httpx.AsyncClient, ps: list[Proc]) -> list[Proc]:
    return [p for p in ps if p.alive() and await p.gauge(http) == 1]


class Load:
    """One envelope per active gateway every 0.2 s (JetStream publishes)."""

    def __init__(self, nc: natsio.NATS, tenant: str, gateways: list[str]) -> None:
        self.nc = nc
        self.tenant = tenant
        self.active = list(gateways)
        self.sent = 0
        self.stopped = trio.Event()

    async def run(self) -> None:
        while not self.stopped.is_set():
            batch = [
                (f"telemetry.data.{self.tenant}.{gw}", encode(envelope(gw))) for gw in self.active
            ]
            await publish(self.nc, batch)
            self.sent += len(batch)
            await trio.sleep(0.2)  # the load's own pace, not a wait for something


async def all_rows_once(dsn: str, tenant: str, sent: int) -> None:
    async def complete() -> bool:
        return await count_rows(dsn, tenant) >= sent

    await eventually(complete, timeout=60, what="every published message stored")
    assert await count_rows(dsn, tenant) == sent
    dupes = await query(
        dsn, "SELECT count(*) - count(DISTINCT iv) FROM telemetry WHERE tenant_id = $1", tenant
    )
    assert dupes[0][0] == 0


# -- tests --------------------------------------------------------------------------------


async def test_one_owner_among_identical_instances_and_the_feed_reaches_it(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory
) -> None:
    """Three in-process instances with one environment: exactly one holds the lease,
    and sightings ingested by the others reach it through the feed."""
    tenant = str(uuid.uuid4())
    gateways = [str(uuid.uuid4()) for _ in range(20)]
    env = lease_env(make_env)
    async with trio.open_nursery() as nursery:
        infos = [await start_in_process(nursery, env) for _ in range(3)]

        def holders() -> int:
            return sum(int(metric(i, OWNER)) for i in infos)

        assert holders() == 1
        assert sum(1 for i in infos if i.liveness is not None) == 1
        await stays_true(lambda: holders() == 1, for_s=TTL_S * 2)
        load = Load(nc, tenant, gateways)
        nursery.start_soon(load.run)
        await eventually(
            lambda: all(mgmt.statuses(gw) == ["online"] for gw in gateways),
            what="every gateway online, whichever instance ingested it",
        )
        [holder] = [i for i in infos if i.liveness is not None]
        others = [i for i in infos if i is not holder]
        # The work queue hands batches to the others too (once the holder's pull
        # requests are filled); what they commit reaches the holder through the feed.
        await eventually(
            lambda: any(metric(i, "notip_consumer_messages_written_total") > 0 for i in others),
            timeout=30,
            what="a non-holder ingesting",
        )
        assert holder.liveness is not None
        before = {k: e.last_seen for k, e in holder.liveness.tracker.entries.items()}
        await eventually(
            lambda: (
                holder.liveness is not None
                and all(
                    holder.liveness.tracker.entries[k].last_seen > seen
                    for k, seen in before.items()
                )
            ),
            what="the holder seeing every gateway's newer messages",
        )
        assert metric(holder, "notip_consumer_heartbeat_map_size") == 20
        assert all(metric(i, OWNER) == 0 and i.liveness is None for i in others)
        load.stopped.set()
        nursery.cancel_scope.cancel()


async def test_sigkill_of_the_holder_under_load(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory, pg_database: str, tmp_path: Path
) -> None:
    tenant = str(uuid.uuid4())
    alive = [str(uuid.uuid4()) for _ in range(8)]
    silenced = str(uuid.uuid4())
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 4000}]
    alerts = await Collector().start(nc, f"alert.gw_offline.{tenant}")
    env = lease_env(make_env)
    load = Load(nc, tenant, [*alive, silenced])
    with procs() as ps:
        async with httpx.AsyncClient(timeout=5) as http, trio.open_nursery() as nursery:
            ps.extend(Proc(env, tmp_path / f"consumer-{i}.log") for i in range(3))
            for p in ps:
                await wait_ready(http, p)
            holders = await eventually(lambda: owners(http, ps), what="a holder")
            assert len(holders) == 1
            nursery.start_soon(load.run)
            await eventually(lambda: mgmt.statuses(silenced) == ["online"], timeout=30)

            [victim] = holders
            victim.proc.send_signal(signal.SIGKILL)
            t_kill = trio.current_time()
            load.active.remove(silenced)
            survivors = [p for p in ps if p is not victim]
            new = await eventually(lambda: owners(http, survivors), what="a new holder")
            took = trio.current_time() - t_kill
            assert len(new) == 1
            assert took < TTL_S, f"takeover after {took:.2f} s"

            await eventually(lambda: alerts.msgs, timeout=30, what="the alert for the silenced")
            await eventually(lambda: mgmt.statuses(silenced)[-1:] == ["offline"])

            def consistent() -> bool:
                return (
                    [a["gatewayId"] for a in alerts.json()] == [silenced]
                    and mgmt.statuses(silenced).count("offline") == 1
                    and mgmt.statuses(silenced)[-1] == "offline"
                    and len([p for p in survivors if p.alive()]) == 2
                )

            # No second alert, no `online` after the `offline`, none for the live ones.
            await stays_true(consistent, for_s=5)
            assert len(await owners(http, survivors)) == 1
            load.stopped.set()
        await all_rows_once(pg_database, tenant, load.sent)


async def test_rolling_restart_under_load(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: EnvFactory, pg_database: str, tmp_path: Path
) -> None:
    tenant = str(uuid.uuid4())
    gateways = [str(uuid.uuid4()) for _ in range(8)]
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 10_000}]
    alerts = await Collector().start(nc, f"alert.gw_offline.{tenant}")
    env = lease_env(make_env)
    load = Load(nc, tenant, gateways)
    with procs() as ps:
        async with httpx.AsyncClient(timeout=5) as http, trio.open_nursery() as nursery:
            for i in range(3):
                ps.append(Proc(env, tmp_path / f"consumer-{i}.log"))
            for p in ps:
                await wait_ready(http, p)
            nursery.start_soon(load.run)
            await eventually(lambda: all(mgmt.statuses(gw) for gw in gateways), timeout=30)

            for i in range(3):
                old = ps[i]
                old.proc.send_signal(signal.SIGTERM)
                rc = await trio.to_thread.run_sync(old.proc.wait, 60)
                assert rc == 0, old.log.read_text()
                ps[i] = Proc(env, tmp_path / f"consumer-{i}-restarted.log")
                await wait_ready(http, ps[i])

            holders = await eventually(lambda: owners(http, ps), timeout=30, what="a holder")
            assert len(holders) == 1
            # Every gateway kept publishing through the restarts: nobody is alerted.
            await stays_true(lambda: alerts.msgs == [], for_s=3)
            load.stopped.set()
            assert alerts.msgs == [], alerts.json()
        await all_rows_once(pg_database, tenant, load.sent)


def _family(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


async def test_database_frozen_longer_than_the_ttl_nobody_acts_then_one_does(
    nc: natsio.NATS,
    mgmt: FakeMgmt,
    make_env: EnvFactory,
    own_postgres: PostgresServer,  # noqa: F811 — the fixture imported above
) -> None:
    """SIGSTOP of every PostgreSQL process: connections stay open, nothing answers. The
    holder's renewal times out and it stops acting before its validity ends; a gateway
    that falls due meanwhile is not alerted by anyone (without fencing the holder would
    alert: the checks and the alert only need NATS). After SIGCONT exactly one
    instance owns liveness and alerts it once."""
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    mgmt.configs = [{"tenant_id": tenant, "timeout_ms": 3000}]
    alerts = await Collector().start(nc, f"alert.gw_offline.{tenant}")
    env = lease_env(make_env, own_postgres.dsn)
    assert own_postgres.proc is not None
    postmaster = own_postgres.proc.pid
    frozen: list[int] = []
    try:
        async with trio.open_nursery() as nursery:
            infos = [await start_in_process(nursery, env) for _ in range(3)]

            def holders() -> int:
                return sum(int(metric(i, OWNER)) for i in infos)

            assert holders() == 1
            await publish(nc, [(f"telemetry.data.{tenant}.{gw}", encode(envelope(gw)))])
            await eventually(lambda: mgmt.statuses(gw) == ["online"], what="online")

            frozen = _family(postmaster)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            t_stop = trio.current_time()
            await eventually(lambda: holders() == 0, what="the holder giving up")
            assert trio.current_time() - t_stop < TTL_S
            # The gateway falls due about 3 s after its message; nobody may alert it.
            await stays_true(lambda: holders() == 0 and alerts.msgs == [], for_s=TTL_S * 3)

            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            frozen = []
            await eventually(lambda: holders() == 1, timeout=30, what="one holder again")
            await eventually(lambda: alerts.msgs, timeout=30, what="the alert, now")
            await stays_true(lambda: holders() == 1 and len(alerts.msgs) == 1, for_s=TTL_S * 2)
            assert mgmt.statuses(gw) == ["online", "offline"]
            nursery.cancel_scope.cancel()
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
