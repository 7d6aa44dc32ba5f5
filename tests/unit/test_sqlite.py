"""notip/sqlite.py through both stores that use it: a store call that waits for
another connection's write lock (another instance sharing the file) waits on the
store's worker thread, and the Trio event loop keeps running meanwhile."""

from __future__ import annotations

import sqlite3
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from notip import sqlite
from notip.platform.management.store import Store as MgmtStore
from notip.simulator.store import Store as SimStore
from tests.unit.simulator.test_store import gateway_row

DEADLINE_S = 4.0  # under the 5 s busy timeout: the call must not fail, it waits


def _mgmt(path: Path) -> tuple[Any, Callable[[], None], Callable[[], bool]]:
    store = MgmtStore(path)
    gid = str(uuid.uuid4())

    def write() -> None:  # BEGIN IMMEDIATE: needs the write lock
        store.create_gateway(
            gateway_id=gid,
            tenant_id=str(uuid.uuid4()),
            factory_id=f"F-{gid}",
            factory_key_hash="h",
            model="m",
            now="2026-01-01T00:00:00.000000Z",
        )

    return store, write, lambda: store.get_gateway(gid) is not None


def _sim(path: Path) -> tuple[Any, Callable[[], None], Callable[[], bool]]:
    store = SimStore(path)
    row = gateway_row()
    return (
        store,
        lambda: store.insert_gateway(row),
        lambda: any(g["id"] == row["id"] for g in store.gateways()),
    )


@pytest.mark.parametrize("open_store", [_mgmt, _sim], ids=["management", "simulator"])
async def test_the_event_loop_runs_while_a_store_call_waits_for_the_write_lock(
    tmp_path: Path, open_store: Callable[[Path], tuple[Any, Callable[[], None], Callable[[], bool]]]
) -> None:
    path = tmp_path / "shared.db"
    store, write, written = open_store(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another instance holds the write lock
    on_thread, done, ticked = trio.Event(), trio.Event(), trio.Event()
    ticks = 0

    def call() -> None:
        trio.from_thread.run_sync(on_thread.set)  # on the store's worker thread now
        write()  # waits for `other`'s lock (busy timeout)

    async def store_call() -> None:
        await store.run(call)
        done.set()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await trio.lowlevel.checkpoint()
            ticks += 1
            if ticks == 100:
                ticked.set()

    try:
        with trio.fail_after(DEADLINE_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store_call)
                await on_thread.wait()
                nursery.start_soon(ticker)
                await ticked.wait()  # 100 loop turns while the call is blocked
                assert not done.is_set()  # still waiting for the lock
                other.execute("ROLLBACK")  # the lock is free: the call completes
                await done.wait()
        assert written()
    finally:
        other.close()
        store.close()


def test_connect_creates_a_private_file_and_skips_it_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.db"
    db = sqlite.connect(path, synchronous="FULL")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == sqlite.BUSY_TIMEOUT_MS
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        db.close()
    mem = sqlite.connect(sqlite.MEMORY)
    try:
        assert mem.execute("PRAGMA busy_timeout").fetchone()[0] == sqlite.BUSY_TIMEOUT_MS
        assert not (Path.cwd() / sqlite.MEMORY).exists()
    finally:
        mem.close()
