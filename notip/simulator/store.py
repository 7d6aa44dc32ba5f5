"""The simulator's SQLite state (`SQLITE_PATH`).

- Opened through notip/sqlite.py (as the management stand-in's store is): the file
  is 0600, it holds gateways' private keys and AES keys. Nothing here logs a row.
  `synchronous = FULL`: a commit survives a power cut (credentials cannot be
  issued again).
- Schema changes are numbered migrations tracked by `PRAGMA user_version`.
- Methods are synchronous and short; the Trio side calls them through `Store.run`,
  which runs them on a worker thread one at a time (SQLite commits fsync), and never
  abandons them half-way when the caller is cancelled.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from notip.sqlite import Database

P = ParamSpec("P")
T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    # 1: gateways, sensors, command bookkeeping
    """
    CREATE TABLE gateways (
        id                TEXT PRIMARY KEY,          -- platform gateway UUID
        factory_id        TEXT NOT NULL UNIQUE,
        tenant_id         TEXT NOT NULL,
        model             TEXT NOT NULL,
        firmware_version  TEXT NOT NULL,
        send_frequency_ms INTEGER NOT NULL,
        created_at        TEXT NOT NULL,
        cert_pem          TEXT NOT NULL,
        key_pem           TEXT NOT NULL,
        aes_key           BLOB NOT NULL,
        desired_state     TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped')),
        platform_status   TEXT NOT NULL CHECK (platform_status IN ('online', 'offline', 'paused'))
    );
    CREATE TABLE sensors (
        id          TEXT PRIMARY KEY,
        gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
        type        TEXT NOT NULL,
        min_range   REAL NOT NULL,
        max_range   REAL NOT NULL,
        algorithm   TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE INDEX sensors_by_gateway ON sensors(gateway_id);
    -- Commands already executed (their ack is sent again on redelivery, the command
    -- is never executed twice).
    CREATE TABLE executed_commands (
        gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
        command_id  TEXT NOT NULL,
        status      TEXT NOT NULL,
        message     TEXT,
        executed_at TEXT NOT NULL,
        PRIMARY KEY (gateway_id, command_id)
    );
    -- Commands received while an anomaly was active: they run when it ends.
    CREATE TABLE pending_commands (
        gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
        command_id  TEXT NOT NULL,
        body        BLOB NOT NULL,
        received_at TEXT NOT NULL,
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        UNIQUE (gateway_id, command_id)
    );
    """,
)

GATEWAY_FIELDS = (
    "id",
    "factory_id",
    "tenant_id",
    "model",
    "firmware_version",
    "send_frequency_ms",
    "created_at",
    "cert_pem",
    "key_pem",
    "aes_key",
    "desired_state",
    "platform_status",
)
SENSOR_FIELDS = ("id", "gateway_id", "type", "min_range", "max_range", "algorithm", "created_at")
UPDATABLE = {"firmware_version", "send_frequency_ms", "desired_state", "platform_status"}
EXECUTED_RETENTION = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ExecutedCommand:
    status: str
    message: str | None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = Database(path, synchronous="FULL")
        self.migrate()

    # -- plumbing -------------------------------------------------------------------

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store method on the store's worker thread (notip/sqlite.py)."""
        return await self.db.run(fn, *args, **kwargs)

    def _tx(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self.db.transaction() as db:
            return work(db)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self.db.query(sql, params)

    def migrate(self) -> int:
        version = int(self._query("PRAGMA user_version")[0][0])
        for number, script in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue

            def apply(db: sqlite3.Connection, script: str = script, number: int = number) -> None:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

            self._tx(apply)
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def close(self) -> None:
        self.db.close()

    # -- gateways and sensors -------------------------------------------------------

    def insert_gateway(self, row: dict[str, Any]) -> None:
        cols = ", ".join(GATEWAY_FIELDS)
        marks = ", ".join("?" for _ in GATEWAY_FIELDS)
        values = tuple(row[f] for f in GATEWAY_FIELDS)
        self._tx(lambda db: db.execute(f"INSERT INTO gateways ({cols}) VALUES ({marks})", values))

    def update_gateway(self, gateway_id: str, **fields: Any) -> None:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        values = (*fields.values(), gateway_id)
        self._tx(lambda db: db.execute(f"UPDATE gateways SET {sets} WHERE id = ?", values))

    def delete_gateway(self, gateway_id: str) -> None:
        self._tx(lambda db: db.execute("DELETE FROM gateways WHERE id = ?", (gateway_id,)))

    def gateways(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM gateways ORDER BY created_at, id")]

    def insert_sensor(self, row: dict[str, Any]) -> None:
        cols = ", ".join(SENSOR_FIELDS)
        marks = ", ".join("?" for _ in SENSOR_FIELDS)
        values = tuple(row[f] for f in SENSOR_FIELDS)
        self._tx(lambda db: db.execute(f"INSERT INTO sensors ({cols}) VALUES ({marks})", values))

    def delete_sensor(self, sensor_id: str) -> None:
        self._tx(lambda db: db.execute("DELETE FROM sensors WHERE id = ?", (sensor_id,)))

    def sensors(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM sensors ORDER BY created_at, id")]

    # -- commands -------------------------------------------------------------------

    def executed(self, gateway_id: str, command_id: str) -> ExecutedCommand | None:
        rows = self._query(
            "SELECT status, message FROM executed_commands WHERE gateway_id = ? AND command_id = ?",
            (gateway_id, command_id),
        )
        return ExecutedCommand(rows[0]["status"], rows[0]["message"]) if rows else None

    def record_executed(
        self,
        gateway_id: str,
        command_id: str,
        status: str,
        message: str | None,
        *,
        updates: dict[str, Any] | None = None,
    ) -> None:
        """In one transaction: the command's effect on the gateway (`updates`), the
        record that it was executed, and its removal from the pending queue."""
        fields = dict(updates or {})
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        now = dt.datetime.now(dt.UTC)

        def work(db: sqlite3.Connection) -> None:
            if fields:
                sets = ", ".join(f"{k} = ?" for k in fields)
                db.execute(
                    f"UPDATE gateways SET {sets} WHERE id = ?", (*fields.values(), gateway_id)
                )
            db.execute(
                "INSERT OR REPLACE INTO executed_commands VALUES (?, ?, ?, ?, ?)",
                (gateway_id, command_id, status, message, now.isoformat()),
            )
            db.execute(
                "DELETE FROM pending_commands WHERE gateway_id = ? AND command_id = ?",
                (gateway_id, command_id),
            )
            db.execute(
                "DELETE FROM executed_commands WHERE executed_at < ?",
                ((now - EXECUTED_RETENTION).isoformat(),),
            )

        self._tx(work)

    def add_pending(self, gateway_id: str, command_id: str, body: bytes) -> None:
        self._tx(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO pending_commands (gateway_id, command_id, body, received_at)"
                " VALUES (?, ?, ?, ?)",
                (gateway_id, command_id, body, _now()),
            )
        )

    def pending(self, gateway_id: str) -> list[tuple[str, bytes]]:
        rows = self._query(
            "SELECT command_id, body FROM pending_commands WHERE gateway_id = ? ORDER BY seq",
            (gateway_id,),
        )
        return [(r["command_id"], bytes(r["body"])) for r in rows]

    def is_pending(self, gateway_id: str, command_id: str) -> bool:
        return bool(
            self._query(
                "SELECT 1 FROM pending_commands WHERE gateway_id = ? AND command_id = ?",
                (gateway_id, command_id),
            )
        )
