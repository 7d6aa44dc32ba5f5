"""The telemetry envelope and its crypto contract (docs/contracts.md#telemetry-envelope): pure, no I/O.

Gateways (the simulator) seal readings; clients that hold the key (`notip tail`,
tests) open them; the cloud (the consumer) only checks the envelope's shape and
stores the blobs verbatim ("Rule Zero").
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SENSOR_TYPES = ("temperature", "humidity", "movement", "pressure", "biometric")
UNITS = {
    "temperature": "°C",
    "humidity": "%",
    "pressure": "hPa",
    "movement": "m/s",
    "biometric": "bpm",
}
KEY_VERSION = 1
IV_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32


# -- time --------------------------------------------------------------------------


def iso(ts: dt.datetime) -> str:
    """UTC ISO 8601 with a `Z` and millisecond precision."""
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_now() -> str:
    return iso(dt.datetime.now(dt.UTC))


def parse_iso(value: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp that carries a zone; raises ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("timestamp is not a string")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("timestamp has no time zone")
    return parsed.astimezone(dt.UTC)


# -- base64 ----------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


# -- envelope --------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    gateway_id: str
    sensor_id: str
    sensor_type: str
    timestamp: str
    key_version: int
    encrypted_data: str
    iv: str
    auth_tag: str

    def to_json(self) -> dict[str, Any]:
        return {
            "gatewayId": self.gateway_id,
            "sensorId": self.sensor_id,
            "sensorType": self.sensor_type,
            "timestamp": self.timestamp,
            "keyVersion": self.key_version,
            "encryptedData": self.encrypted_data,
            "iv": self.iv,
            "authTag": self.auth_tag,
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Envelope:
        return cls(
            gateway_id=obj["gatewayId"],
            sensor_id=obj["sensorId"],
            sensor_type=obj["sensorType"],
            timestamp=obj["timestamp"],
            key_version=obj["keyVersion"],
            encrypted_data=obj["encryptedData"],
            iv=obj["iv"],
            auth_tag=obj["authTag"],
        )


def plaintext(value: float, unit: str) -> bytes:
    """Compact JSON, `°` not escaped, no NaN/Infinity (docs/contracts.md#telemetry-envelope)."""
    if not math.isfinite(value):
        raise ValueError("reading must be a finite number")
    return json.dumps(
        {"value": value, "unit": unit}, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def seal(
    key: bytes,
    *,
    gateway_id: str,
    sensor_id: str,
    sensor_type: str,
    value: float,
    timestamp: str | None = None,
    iv: bytes | None = None,
) -> Envelope:
    """Encrypt one reading with AES-256-GCM, a fresh random 12-byte IV, no AAD."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256 key must be 32 bytes")
    nonce = iv if iv is not None else os.urandom(IV_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext(value, UNITS[sensor_type]), None)
    return Envelope(
        gateway_id=gateway_id,
        sensor_id=sensor_id,
        sensor_type=sensor_type,
        timestamp=timestamp or iso_now(),
        key_version=KEY_VERSION,
        encrypted_data=b64(sealed[:-TAG_BYTES]),
        iv=b64(nonce),
        auth_tag=b64(sealed[-TAG_BYTES:]),
    )


def open_envelope(key: bytes, env: Envelope | dict[str, Any]) -> dict[str, Any]:
    """Decrypt an envelope (or its JSON object) → `{"value", "unit"}`."""
    e = env if isinstance(env, Envelope) else Envelope.from_json(env)
    data = AESGCM(key).decrypt(unb64(e.iv), unb64(e.encrypted_data) + unb64(e.auth_tag), None)
    result: dict[str, Any] = json.loads(data.decode("utf-8"))
    return result
