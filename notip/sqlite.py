"""SQLite files of the simulator (`SQLITE_PATH`) and the management stand-in
(`MGMT_DB_PATH`): one way to open them and one way to use them from Trio.

- The file (and SQLite's -wal/-shm side files, which inherit its mode) is created 0600:
  both hold keys. `:memory:` (unit tests) skips the file and its pragmas.
- WAL, `busy_timeout` 5 s, foreign keys on. Several processes may share a file (two
  management instances in the queue-group test), so a statement can wait up to the
  busy timeout for another connection's write lock; `Database.run` therefore runs
  every store call on a worker thread, one at a time (a limiter of one), so that such
  a wait never blocks the Trio event loop. A call is never abandoned when its caller
  is cancelled: the commit happens or fails, it is never cut in half.
- Connections are autocommit (`isolation_level=None`); transactions are explicit
  (`Database.transaction`: `BEGIN IMMEDIATE`, so a writer takes the lock up front
  and never fails half-way on a lock upgrade).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import trio

from notip.pki import touch_private

P = ParamSpec("P")
T = TypeVar("T")

MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 5000


def connect(
    path: Path | str, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
) -> sqlite3.Connection:
    """Open (creating it 0600 if needed) the database file at `path`."""
    in_memory = str(path) == MEMORY
    if not in_memory:
        touch_private(Path(path))
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys = ON")
    if not in_memory:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {synchronous}")
    return db


class Database:
    """One connection, used by one thread at a time.

    Store methods are synchronous and use `transaction`, `query` and `execute`; the
    Trio side calls them through `run`. The re-entrant lock also covers direct calls
    (start-up, tests) and lets one store method call another."""

    def __init__(
        self, path: Path | str, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    ) -> None:
        self.path = path
        self._db = connect(path, synchronous=synchronous)
        self._lock = threading.RLock()
        self._limiter = trio.CapacityLimiter(1)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on a worker thread (see the module docstring)."""
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self._limiter
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE … COMMIT`, rolled back when the block raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        """One statement in its own (autocommit) transaction."""
        with self._lock:
            return self._db.execute(sql, params)

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return row

    def executescript(self, script: str) -> None:
        with self._lock:
            self._db.executescript(script)

    def close(self) -> None:
        with self._lock:
            self._db.close()
