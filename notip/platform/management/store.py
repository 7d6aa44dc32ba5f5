"""The management stand-in's own SQLite store (`MGMT_DB_PATH`): a normal file.

Opened through notip/sqlite.py, as the simulator's store is. Methods are synchronous:
each is one short statement or one `BEGIN IMMEDIATE … COMMIT` transaction. The Trio
side calls them through `Store.run`, on the store's one worker thread: several
instances may share one file (WAL mode, `busy_timeout`: the queue-group test runs two
of them), and a statement waiting for another instance's write lock must not block
the event loop.

Two separate notions of a gateway's state, as docs/contracts.md#management-request-reply/docs/contracts.md#management-admin-http need:
- `status` — the runtime status reported by the data consumer (`online`/`offline`;
  `provisioning` until onboarding completes);
- `paused` — the admin lifecycle flag, set and cleared only by the admin routes, so a
  runtime status update never clears a pause.
Timestamps are stored as fixed-width UTC strings (`clock.iso_us`) and compare as text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from notip.platform.management.messages import Ack, Alert
from notip.sqlite import Database

P = ParamSpec("P")
T = TypeVar("T")

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id                 TEXT PRIMARY KEY,
    default_timeout_ms INTEGER,              -- NULL: no tenant default
    created_at         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gateways (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    factory_id        TEXT NOT NULL UNIQUE,
    factory_key_hash  TEXT,                  -- scrypt; NULL once provisioned
    model             TEXT NOT NULL,
    provisioned       INTEGER NOT NULL DEFAULT 0,
    key_material      TEXT,                  -- sealed AES key (keys.KeySealer)
    key_version       INTEGER,
    send_frequency_ms INTEGER,
    firmware_version  TEXT,
    status            TEXT NOT NULL DEFAULT 'provisioning',
    last_seen_at      TEXT,
    paused            INTEGER NOT NULL DEFAULT 0,
    timeout_ms        INTEGER,               -- per-gateway offline timeout override
    created_at        TEXT NOT NULL,
    provisioned_at    TEXT,
    decommissioned_at TEXT
);
CREATE INDEX IF NOT EXISTS gateways_tenant ON gateways (tenant_id);
CREATE TABLE IF NOT EXISTS commands (
    id         TEXT PRIMARY KEY,
    gateway_id TEXT NOT NULL REFERENCES gateways(id),
    tenant_id  TEXT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'queued',  -- queued | ack | nack | expired
    message    TEXT,
    acked_at   TEXT
);
CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    gateway_id  TEXT NOT NULL,
    type        TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    timeout_ms  INTEGER NOT NULL,
    timestamp   TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (tenant_id, gateway_id, type, last_seen)  -- a redelivered alert is one row
);
CREATE INDEX IF NOT EXISTS alerts_gateway ON alerts (tenant_id, gateway_id);
"""


class Conflict(Exception):
    """A unique value (factory id, gateway id) is taken."""


@dataclass(frozen=True)
class Gateway:
    id: str
    tenant_id: str
    factory_id: str
    factory_key_hash: str | None
    model: str
    provisioned: bool
    key_material: str | None
    key_version: int | None
    send_frequency_ms: int | None
    firmware_version: str | None
    status: str
    last_seen_at: str | None
    paused: bool
    timeout_ms: int | None
    created_at: str
    provisioned_at: str | None
    decommissioned_at: str | None

    @property
    def decommissioned(self) -> bool:
        return self.decommissioned_at is not None

    @property
    def lifecycle(self) -> str:
        if self.decommissioned:
            return "decommissioned"
        return "paused" if self.paused else "active"

    @property
    def state(self) -> str:
        """The `get-status` answer (docs/contracts.md#management-request-reply): paused > provisioning > online/offline."""
        if self.paused:
            return "paused"
        if not self.provisioned:
            return "provisioning"
        return "online" if self.status == "online" else "offline"

    def public(self) -> dict[str, Any]:
        """The admin JSON view; never the factory key hash or the AES key."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "factory_id": self.factory_id,
            "model": self.model,
            "provisioned": self.provisioned,
            "status": self.status,
            "lifecycle": self.lifecycle,
            "last_seen_at": self.last_seen_at,
            "firmware_version": self.firmware_version,
            "send_frequency_ms": self.send_frequency_ms,
            "key_version": self.key_version,
            "timeout_ms": self.timeout_ms,
            "created_at": self.created_at,
            "provisioned_at": self.provisioned_at,
            "decommissioned_at": self.decommissioned_at,
        }


@dataclass(frozen=True)
class Command:
    id: str
    gateway_id: str
    tenant_id: str
    type: str
    payload: dict[str, Any]
    issued_at: str
    status: str
    message: str | None
    acked_at: str | None


def _gateway(row: sqlite3.Row | None) -> Gateway | None:
    if row is None:
        return None
    values = dict(row)
    values["provisioned"] = bool(values["provisioned"])
    values["paused"] = bool(values["paused"])
    return Gateway(**values)


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # Holds factory-key hashes and (sealed) gateway keys: a private file.
        self.db = Database(path)
        # Every statement is IF NOT EXISTS: safe to run by several instances at once.
        self.db.executescript(SCHEMA)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store method on the store's worker thread (notip/sqlite.py)."""
        return await self.db.run(fn, *args, **kwargs)

    def close(self) -> None:
        self.db.close()

    # -- tenants and gateways ------------------------------------------------------------

    def tenant_exists(self, tenant_id: str) -> bool:
        row = self.db.query_one("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,))
        return row is not None

    def create_gateway(
        self,
        *,
        gateway_id: str,
        tenant_id: str,
        factory_id: str,
        factory_key_hash: str,
        model: str,
        now: str,
    ) -> None:
        """Create the gateway (and its tenant on first use) in one transaction.
        Raises Conflict when the factory id or the gateway id is taken."""
        with self.db.transaction() as db:
            taken = db.execute(
                "SELECT id, factory_id FROM gateways WHERE factory_id = ? OR id = ?",
                (factory_id, gateway_id),
            ).fetchone()
            if taken is not None:
                what = "factory_id" if taken["factory_id"] == factory_id else "id"
                raise Conflict(f"a gateway with this {what} already exists")
            db.execute(
                "INSERT OR IGNORE INTO tenants (id, created_at) VALUES (?, ?)", (tenant_id, now)
            )
            db.execute(
                "INSERT INTO gateways (id, tenant_id, factory_id, factory_key_hash, model,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (gateway_id, tenant_id, factory_id, factory_key_hash, model, now),
            )

    def get_gateway(self, gateway_id: str) -> Gateway | None:
        return _gateway(self.db.query_one("SELECT * FROM gateways WHERE id = ?", (gateway_id,)))

    def gateway_by_factory_id(self, factory_id: str) -> Gateway | None:
        return _gateway(
            self.db.query_one("SELECT * FROM gateways WHERE factory_id = ?", (factory_id,))
        )

    def list_gateways(self, tenant_id: str | None = None) -> list[Gateway]:
        if tenant_id is None:
            rows = self.db.query("SELECT * FROM gateways ORDER BY created_at, id")
        else:
            rows = self.db.query(
                "SELECT * FROM gateways WHERE tenant_id = ? ORDER BY created_at, id", (tenant_id,)
            )
        return [g for g in map(_gateway, rows) if g is not None]

    def complete_provisioning(
        self,
        *,
        gateway_id: str,
        sealed_key: str,
        key_version: int,
        send_frequency_ms: int,
        firmware_version: str | None,
        now: str,
        same_key: Callable[[Gateway], bool],
    ) -> str:
        """Atomically: store the key, mark provisioned, forget the factory key hash,
        status online. Returns `ok`, `not_found` (unknown or decommissioned) or
        `conflict` (already provisioned with another key). Completing again with the
        same key is `ok`: a retried request whose first reply was lost."""
        with self.db.transaction() as db:
            cur = db.execute(
                "UPDATE gateways SET provisioned = 1, key_material = ?, key_version = ?,"
                " send_frequency_ms = ?, firmware_version = ?, factory_key_hash = NULL,"
                " status = 'online', last_seen_at = ?, provisioned_at = ?"
                " WHERE id = ? AND provisioned = 0 AND decommissioned_at IS NULL",
                (
                    sealed_key,
                    key_version,
                    send_frequency_ms,
                    firmware_version,
                    now,
                    now,
                    gateway_id,
                ),
            )
            if cur.rowcount == 1:
                return "ok"
        gw = self.get_gateway(gateway_id)
        if gw is None or gw.decommissioned:
            return "not_found"
        return "ok" if same_key(gw) else "conflict"

    def update_status(self, gateway_id: str, status: str, last_seen_at: str) -> str:
        """Runtime status from the data consumer; never touches `paused`. An update
        older than what is stored (a delayed retry) is ignored. Returns `ok` or
        `not_found`."""
        with self.db.transaction() as db:
            cur = db.execute(
                "UPDATE gateways SET status = ?, last_seen_at = ?"
                " WHERE id = ? AND decommissioned_at IS NULL"
                " AND (last_seen_at IS NULL OR last_seen_at <= ?)",
                (status, last_seen_at, gateway_id, last_seen_at),
            )
            if cur.rowcount == 1:
                return "ok"
            exists = db.execute(
                "SELECT 1 FROM gateways WHERE id = ? AND decommissioned_at IS NULL", (gateway_id,)
            ).fetchone()
        return "ok" if exists else "not_found"

    def set_paused(self, gateway_id: str, paused: bool) -> None:
        self.db.execute("UPDATE gateways SET paused = ? WHERE id = ?", (int(paused), gateway_id))

    def decommission(self, gateway_id: str, now: str) -> None:
        """Mark decommissioned and drop its secrets and its timeout override."""
        self.db.execute(
            "UPDATE gateways SET decommissioned_at = ?, key_material = NULL,"
            " factory_key_hash = NULL, timeout_ms = NULL WHERE id = ? AND decommissioned_at IS NULL",
            (now, gateway_id),
        )

    # -- alert configs -------------------------------------------------------------------

    def set_tenant_timeout(self, tenant_id: str, timeout_ms: int) -> None:
        self.db.execute(
            "UPDATE tenants SET default_timeout_ms = ? WHERE id = ?", (timeout_ms, tenant_id)
        )

    def set_gateway_timeout(self, gateway_id: str, timeout_ms: int | None) -> None:
        self.db.execute("UPDATE gateways SET timeout_ms = ? WHERE id = ?", (timeout_ms, gateway_id))

    def alert_configs(self) -> list[dict[str, Any]]:
        """docs/contracts.md#management-request-reply `alert-configs.list`: tenant defaults (gateway_id null) and per-gateway
        overrides of live gateways."""
        out: list[dict[str, Any]] = [
            {"tenant_id": r["id"], "gateway_id": None, "timeout_ms": r["default_timeout_ms"]}
            for r in self.db.query(
                "SELECT id, default_timeout_ms FROM tenants"
                " WHERE default_timeout_ms IS NOT NULL ORDER BY id"
            )
        ]
        out += [
            {"tenant_id": r["tenant_id"], "gateway_id": r["id"], "timeout_ms": r["timeout_ms"]}
            for r in self.db.query(
                "SELECT id, tenant_id, timeout_ms FROM gateways"
                " WHERE timeout_ms IS NOT NULL AND decommissioned_at IS NULL ORDER BY tenant_id, id"
            )
        ]
        return out

    def tenant_timeout(self, tenant_id: str) -> int | None:
        row = self.db.query_one("SELECT default_timeout_ms FROM tenants WHERE id = ?", (tenant_id,))
        return None if row is None else row["default_timeout_ms"]

    # -- commands ------------------------------------------------------------------------

    def insert_command(
        self,
        *,
        command_id: str,
        gateway_id: str,
        tenant_id: str,
        type_: str,
        payload: dict[str, Any],
        issued_at: str,
    ) -> None:
        self.db.execute(
            "INSERT INTO commands (id, gateway_id, tenant_id, type, payload, issued_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (command_id, gateway_id, tenant_id, type_, json.dumps(payload), issued_at),
        )

    def delete_command(self, command_id: str) -> None:
        self.db.execute("DELETE FROM commands WHERE id = ?", (command_id,))

    def get_command(self, command_id: str) -> Command | None:
        row = self.db.query_one("SELECT * FROM commands WHERE id = ?", (command_id,))
        if row is None:
            return None
        values = dict(row)
        values["payload"] = json.loads(values["payload"])
        return Command(**values)

    def record_ack(self, ack: Ack) -> str:
        """`recorded`, `duplicate` (the command already has an outcome: first one
        wins), `unknown` (no such command) or `wrong_gateway` (the ack's subject names
        another gateway or tenant than the command's: rejected, nothing written)."""
        with self.db.transaction() as db:
            row = db.execute(
                "SELECT gateway_id, tenant_id, status FROM commands WHERE id = ?", (ack.command_id,)
            ).fetchone()
            if row is None:
                return "unknown"
            if row["gateway_id"] != ack.gateway_id or row["tenant_id"] != ack.tenant_id:
                return "wrong_gateway"
            if row["status"] != "queued":
                return "duplicate"
            db.execute(
                "UPDATE commands SET status = ?, message = ?, acked_at = ? WHERE id = ?",
                (ack.status, ack.message, ack.timestamp, ack.command_id),
            )
        return "recorded"

    # -- alerts --------------------------------------------------------------------------

    def record_alert(self, alert: Alert, received_at: str) -> bool:
        """False when the same alert (tenant, gateway, lastSeen) is already recorded."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO alerts (tenant_id, gateway_id, type, last_seen, timeout_ms,"
            " timestamp, received_at) VALUES (?, ?, 'gateway_offline', ?, ?, ?, ?)",
            (
                alert.tenant_id,
                alert.gateway_id,
                alert.last_seen,
                alert.timeout_ms,
                alert.timestamp,
                received_at,
            ),
        )
        return cur.rowcount == 1

    def list_alerts(
        self, tenant_id: str | None = None, gateway_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM alerts WHERE 1 = 1"
        args: list[str] = []
        if tenant_id is not None:
            sql += " AND tenant_id = ?"
            args.append(tenant_id)
        if gateway_id is not None:
            sql += " AND gateway_id = ?"
            args.append(gateway_id)
        sql += " ORDER BY received_at, id"
        return [
            {
                "gateway_id": r["gateway_id"],
                "tenant_id": r["tenant_id"],
                "type": r["type"],
                "last_seen": r["last_seen"],
                "timeout_ms": r["timeout_ms"],
                "timestamp": r["timestamp"],
                "received_at": r["received_at"],
            }
            for r in self.db.query(sql, args)
        ]
