"""The simulator's in-memory records: a gateway, its sensors, and the wake-up that
tells its publisher the record changed.

Both the registry (which owns the records) and a running gateway (which reads them at
every tick) import this module; it imports neither, so the dependency goes one way:
registry → gateway → model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import trio

from notip.simulator import sensors

RUNNING = "running"
STOPPED = "stopped"


class Signal:
    """A re-armable wake-up: `fire()` wakes every current waiter."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass
class SensorRecord:
    id: str
    gateway_id: str
    spec: sensors.SensorSpec
    created_at: dt.datetime

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "gateway_id": self.gateway_id,
            "type": self.spec.type,
            "min_range": self.spec.min_range,
            "max_range": self.spec.max_range,
            "algorithm": self.spec.algorithm,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(eq=False)
class GatewayRecord:
    id: str
    factory_id: str
    tenant_id: str
    model: str
    firmware_version: str
    send_frequency_ms: int
    created_at: dt.datetime
    cert_pem: str = field(repr=False)
    key_pem: str = field(repr=False)
    aes_key: bytes = field(repr=False)
    desired_state: str = RUNNING
    platform_status: str = "online"
    sensors: dict[str, SensorRecord] = field(default_factory=dict)
    pending_outliers: dict[str, float | None] = field(default_factory=dict)
    connected: bool = False
    last_error: str = ""
    restore_error: str = ""  # set: this gateway cannot run (its stored state is unusable)
    #: Fired after a change the publisher must see at once (send frequency, status).
    changed: Signal = field(default_factory=Signal)
    lock: trio.Lock = field(default_factory=trio.Lock)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "factory_id": self.factory_id,
            "tenant_id": self.tenant_id,
            "model": self.model,
            "firmware_version": self.firmware_version,
            "send_frequency_ms": self.send_frequency_ms,
            "created_at": self.created_at.isoformat(),
            "cert_pem": self.cert_pem,
            "key_pem": self.key_pem,
            "aes_key": self.aes_key,
            "desired_state": self.desired_state,
            "platform_status": self.platform_status,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> GatewayRecord:
        return cls(
            id=row["id"],
            factory_id=row["factory_id"],
            tenant_id=row["tenant_id"],
            model=row["model"],
            firmware_version=row["firmware_version"],
            send_frequency_ms=int(row["send_frequency_ms"]),
            created_at=dt.datetime.fromisoformat(row["created_at"]),
            cert_pem=row["cert_pem"],
            key_pem=row["key_pem"],
            aes_key=bytes(row["aes_key"]),
            desired_state=row["desired_state"],
            platform_status=row["platform_status"],
        )
