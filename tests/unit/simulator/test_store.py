from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from notip.simulator.store import MIGRATIONS, Store


def gateway_row(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "factory_id": f"f-{uuid.uuid4().hex[:8]}",
        "tenant_id": str(uuid.uuid4()),
        "model": "m",
        "firmware_version": "1.0",
        "send_frequency_ms": 1000,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "cert_pem": "CERT",
        "key_pem": "KEY",
        "aes_key": os.urandom(32),
        "desired_state": "running",
        "platform_status": "online",
    }
    row.update(over)
    return row


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_is_private_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "sim.db"
    store = Store(path)
    try:
        store.insert_gateway(gateway_row())
        assert mode(path) == 0o600
        for side in (path.with_name("sim.db-wal"), path.with_name("sim.db-shm")):
            if side.exists():
                assert mode(side) == 0o600, side
        assert store.schema_version() == len(MIGRATIONS)
    finally:
        store.close()


def test_existing_file_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Store(path).close()
    assert mode(path) == 0o600


def test_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    store = Store(path)
    row = gateway_row()
    store.insert_gateway(row)
    store.close()
    again = Store(path)  # a second start: nothing re-applied, data intact
    try:
        assert [g["id"] for g in again.gateways()] == [row["id"]]
        assert again.schema_version() == len(MIGRATIONS)
    finally:
        again.close()


def test_gateways_sensors_and_cascade(tmp_path: Path) -> None:
    store = Store(tmp_path / "sim.db")
    try:
        row = gateway_row()
        store.insert_gateway(row)
        with pytest.raises(sqlite3.IntegrityError):
            store.insert_gateway(gateway_row(factory_id=row["factory_id"]))
        sensor = {
            "id": str(uuid.uuid4()),
            "gateway_id": row["id"],
            "type": "temperature",
            "min_range": -5.0,
            "max_range": 5.0,
            "algorithm": "constant",
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        store.insert_sensor(sensor)
        store.update_gateway(row["id"], desired_state="stopped", platform_status="paused")
        got = store.gateways()[0]
        assert got["desired_state"] == "stopped" and got["platform_status"] == "paused"
        assert bytes(got["aes_key"]) == row["aes_key"]
        with pytest.raises(ValueError, match="not updatable"):
            store.update_gateway(row["id"], aes_key=b"x")  # credentials are not updatable
        store.add_pending(row["id"], "c1", b"{}")
        store.record_executed(row["id"], "c0", "ack", None)
        store.delete_gateway(row["id"])
        assert store.gateways() == [] and store.sensors() == []
        assert store.pending(row["id"]) == [] and store.executed(row["id"], "c0") is None
    finally:
        store.close()


def test_command_bookkeeping(tmp_path: Path) -> None:
    store = Store(tmp_path / "sim.db")
    try:
        row = gateway_row()
        store.insert_gateway(row)
        gid = row["id"]
        store.add_pending(gid, "c1", b'{"command_id":"c1"}')
        store.add_pending(gid, "c2", b'{"command_id":"c2"}')
        store.add_pending(gid, "c1", b"dup ignored")
        assert [c for c, _ in store.pending(gid)] == ["c1", "c2"]
        assert store.is_pending(gid, "c1")
        # executing removes from the queue, records the ack and applies the effect atomically
        store.record_executed(gid, "c1", "ack", None, updates={"firmware_version": "9.9"})
        assert not store.is_pending(gid, "c1")
        assert store.executed(gid, "c1") is not None and store.executed(gid, "c1").status == "ack"  # type: ignore[union-attr]
        assert store.gateways()[0]["firmware_version"] == "9.9"
        store.record_executed(gid, "c2", "nack", "bad")
        assert store.executed(gid, "c2").message == "bad"  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="not updatable"):
            store.record_executed(gid, "c3", "ack", None, updates={"key_pem": "x"})
    finally:
        store.close()


async def test_run_executes_on_a_worker_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "sim.db")
    try:
        row = gateway_row()
        await store.run(store.insert_gateway, row)
        assert [g["id"] for g in await store.run(store.gateways)] == [row["id"]]
    finally:
        store.close()
