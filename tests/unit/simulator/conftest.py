from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from notip.natsio import TlsFiles
from notip.simulator import sensors
from notip.simulator.events import EventHub
from notip.simulator.gateway import GatewayDeps
from notip.simulator.metrics import Metrics
from notip.simulator.model import GatewayRecord, SensorRecord
from notip.simulator.settings import Settings
from notip.simulator.store import Store


def make_settings(tmp_path: Path, **over: object) -> Settings:
    import dataclasses

    base = Settings(
        provisioning_url="http://127.0.0.1:9",
        nats_url="tls://127.0.0.1:9",
        nats_tls=TlsFiles(tmp_path / "ca.crt"),
        sqlite_path=tmp_path / "sim.db",
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def make_record(freq_ms: int = 1000, **over: object) -> GatewayRecord:
    rec = GatewayRecord(
        id=str(uuid.uuid4()),
        factory_id=f"f-{uuid.uuid4().hex[:6]}",
        tenant_id=str(uuid.uuid4()),
        model="m",
        firmware_version="1",
        send_frequency_ms=freq_ms,
        created_at=dt.datetime.now(dt.UTC),
        cert_pem="",
        key_pem="",
        aes_key=os.urandom(32),
    )
    for k, v in over.items():
        setattr(rec, k, v)
    return rec


def add_sensor(
    rec: GatewayRecord,
    type_: str = "temperature",
    lo: float = 0,
    hi: float = 10,
    algo: str = "uniform_random",
) -> SensorRecord:
    s = SensorRecord(
        str(uuid.uuid4()), rec.id, sensors.SensorSpec(type_, lo, hi, algo), dt.datetime.now(dt.UTC)
    )
    rec.sensors[s.id] = s
    return s


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "sim.db")
    yield s
    s.close()


@pytest.fixture
def deps(tmp_path: Path, store: Store) -> GatewayDeps:
    return GatewayDeps(
        settings=make_settings(tmp_path),
        metrics=Metrics(),
        store=store,
        hub=EventHub(),
        tls_for=lambda rec: None,  # type: ignore[arg-type,return-value]
        rng=random.Random(1),
    )
