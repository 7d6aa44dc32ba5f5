from __future__ import annotations

import json
import os

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from notip import envelope


@given(
    value=st.floats(allow_nan=False, allow_infinity=False, width=64),
    sensor_type=st.sampled_from(envelope.SENSOR_TYPES),
)
def test_seal_open_round_trip(value: float, sensor_type: str) -> None:
    key = os.urandom(32)
    env = envelope.seal(key, gateway_id="g", sensor_id="s", sensor_type=sensor_type, value=value)
    assert envelope.open_envelope(key, json.loads(env.encode())) == {
        "value": value,
        "unit": envelope.UNITS[sensor_type],
    }


def test_wire_shape_and_fresh_iv() -> None:
    key = os.urandom(32)
    a = envelope.seal(key, gateway_id="g", sensor_id="s", sensor_type="temperature", value=21.5)
    b = envelope.seal(key, gateway_id="g", sensor_id="s", sensor_type="temperature", value=21.5)
    obj = json.loads(a.encode())
    assert list(obj) == [
        "gatewayId",
        "sensorId",
        "sensorType",
        "timestamp",
        "keyVersion",
        "encryptedData",
        "iv",
        "authTag",
    ]
    assert obj["keyVersion"] == 1 and obj["timestamp"].endswith("Z")
    assert len(envelope.unb64(obj["iv"])) == 12 and len(envelope.unb64(obj["authTag"])) == 16
    assert a.iv != b.iv and a.encrypted_data != b.encrypted_data


def test_plaintext_is_compact_utf8() -> None:
    assert envelope.plaintext(21.5, "°C") == '{"value":21.5,"unit":"°C"}'.encode()
    with pytest.raises(ValueError, match="finite number"):
        envelope.plaintext(float("nan"), "°C")


def test_wrong_key_fails() -> None:
    env = envelope.seal(
        os.urandom(32), gateway_id="g", sensor_id="s", sensor_type="humidity", value=1
    )
    with pytest.raises(InvalidTag):
        envelope.open_envelope(os.urandom(32), env)


def test_parse_iso_requires_zone() -> None:
    assert envelope.parse_iso("2026-01-01T00:00:00.000Z").tzinfo is not None
    with pytest.raises(ValueError, match="no time zone"):
        envelope.parse_iso("2026-01-01T00:00:00")
