from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notip.consumer.ingest import (
    REASONS,
    Rejected,
    ack_meta,
    check,
    latest_sightings,
    validate_batch,
)
from notip.envelope import seal

NOW = time.time()
TENANT = str(uuid.uuid4())
GW = str(uuid.uuid4())
SUBJECT = f"telemetry.data.{TENANT}.{GW}"


def env(**overrides: Any) -> dict[str, Any]:
    e = seal(
        bytes(32), gateway_id=GW, sensor_id=str(uuid.uuid4()), sensor_type="humidity", value=1.0
    ).to_json()
    e.update(overrides)
    return e


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def reason(subject: str, data: bytes) -> str:
    with pytest.raises(Rejected) as info:
        check(subject, data, NOW)
    assert info.value.reason in REASONS
    return info.value.reason


def test_valid_envelope_becomes_a_verbatim_row() -> None:
    e = env()
    row = check(SUBJECT, raw(e), NOW)
    assert row == (
        dt.datetime.fromisoformat(e["timestamp"]).isoformat(),
        TENANT,
        GW,
        e["sensorId"],
        "humidity",
        e["encryptedData"],
        e["iv"],
        e["authTag"],
        1,
    )
    assert dt.datetime.fromisoformat(row[0]) == dt.datetime.fromisoformat(e["timestamp"])
    assert row[0].endswith("+00:00")  # the instant, with its offset: never ambiguous


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        (f"telemetry.data.{TENANT}", "three tokens"),
        (f"telemetry.data.{TENANT}.{GW}.x", "five tokens"),
        (f"telemetry.other.{TENANT}.{GW}", "not data"),
        (f"telemetry.data.{TENANT}.not-a-uuid", "gateway not a uuid"),
        (f"telemetry.data.te\u0000nant.{GW}", "NUL in the tenant"),
        (f"telemetry.data.{'x' * 129}.{GW}", "tenant too long"),
    ],
)
def test_bad_subjects(subject: str, why: str) -> None:
    assert reason(subject, raw(env())) == "bad_subject", why


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "bad_json"),
        (b"\xff\xfe{}", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b"", "bad_json"),
        (raw(env(sensorType="temper\u0000ature")), "nul_byte"),
        (raw(env()).replace(b'"iv"', b'"i\x00v"'), "nul_byte"),
        (raw(env(keyVersion=2**31)), "bad_key_version"),
        (raw(env(keyVersion=0)), "bad_key_version"),
        (raw(env(keyVersion=True)), "bad_key_version"),
        (raw(env(keyVersion=1.0)), "bad_key_version"),
        (raw(env(keyVersion="1")), "bad_key_version"),
        (raw(env(timestamp="2025-01-01T10:00:00.000")), "timestamp_without_zone"),
        (raw(env(timestamp="yesterday")), "bad_timestamp"),
        (raw(env(timestamp=1700000000)), "bad_timestamp"),
        (raw(env(timestamp="1999-01-01T00:00:00Z")), "timestamp_out_of_range"),
        (raw(env(timestamp="2999-01-01T00:00:00Z")), "timestamp_out_of_range"),
        (raw(env(gatewayId=str(uuid.uuid4()))), "gateway_mismatch"),
        (raw(env(gatewayId=None)), "bad_field"),
        (raw(env(sensorId="sensor-1")), "bad_field"),
        (raw(env(sensorType="voltage")), "bad_field"),
        (raw(env(encryptedData="not base64!")), "bad_field"),
        (raw(env(encryptedData="")), "bad_field"),
        (raw(env(encryptedData="QUJD=")), "bad_field"),
        (raw(env(iv="AAAA")), "bad_field"),
        (raw(env(authTag="A" * 24)), "bad_field"),
        (raw({k: v for k, v in env().items() if k != "authTag"}), "bad_field"),
    ],
)
def test_bad_payloads(data: bytes, expected: str) -> None:
    assert reason(SUBJECT, data) == expected


def test_timezone_offsets_are_the_same_instant() -> None:
    row = check(SUBJECT, raw(env(timestamp="2025-06-01T12:00:00.000+02:00")), 1748779200.0)
    assert dt.datetime.fromisoformat(row[0]) == dt.datetime(2025, 6, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "ts",
    [
        "2025-06-01T12:00:00,5Z",
        "2025-06-01T12:00:00.5+02:00",
        "20250601T120000Z",
        "2025-06-01 12:00Z",
    ],
)
def test_no_accepted_row_contains_a_comma(ts: str) -> None:
    """The store joins columns with commas (store.py): a row must never hold one,
    whatever ISO 8601 spelling the timestamp had."""
    row = check(SUBJECT, raw(env(timestamp=ts)), 1748779200.0)
    assert not any("," in str(col) for col in row)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_rows_or_rejections(data: bytes) -> None:
    try:
        check(SUBJECT, data, NOW)
    except Rejected as exc:
        assert exc.reason in REASONS


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "gatewayId",
                "sensorId",
                "sensorType",
                "timestamp",
                "keyVersion",
                "encryptedData",
                "iv",
                "authTag",
            ]
        ),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40)),
    )
)
def test_arbitrary_field_values_never_crash(fields: dict[str, Any]) -> None:
    try:
        check(SUBJECT, raw({**env(), **fields}), NOW)
    except Rejected as exc:
        assert exc.reason in REASONS


def test_ack_meta_both_reply_formats() -> None:
    v1 = "$JS.ACK.TELEMETRY.dur.2.1234.99.1700000000123456789.17"
    m = ack_meta(v1)
    assert m is not None
    assert (m.stream_seq, m.delivered, m.pending) == (1234, 2, 17)
    assert m.stored_s == pytest.approx(1700000000.123456789)
    v2 = "$JS.ACK.hub.ACCHASH.TELEMETRY.dur.1.55.7.1700000000000000000.0.token"
    m2 = ack_meta(v2)
    assert m2 is not None and (m2.stream_seq, m2.delivered, m2.pending) == (55, 1, 0)
    assert ack_meta("_INBOX.abc") is None
    assert ack_meta("$JS.ACK.a.b.c") is None
    assert ack_meta("$JS.ACK.S.d.x.1.1.1.1") is None


@dataclass
class FakeMsg:
    subject: str
    data: bytes
    reply: str


def reply(seq: int, delivered: int = 1, stored_s: float = NOW - 5, pending: int = 0) -> str:
    return f"$JS.ACK.TELEMETRY.d.{delivered}.{seq}.{seq}.{int(stored_s * 1e9)}.{pending}"


def test_validate_batch_separates_rejects_and_keeps_alignment() -> None:
    gw2 = str(uuid.uuid4())
    msgs = [
        FakeMsg(SUBJECT, raw(env()), reply(1)),
        FakeMsg(SUBJECT, b"{", reply(2)),
        FakeMsg(f"telemetry.data.{TENANT}.{gw2}", raw(env(gatewayId=gw2)), reply(3, delivered=2)),
        FakeMsg(SUBJECT, raw(env()), ""),
        FakeMsg(SUBJECT, raw(env()), reply(5, stored_s=NOW + 100, pending=42)),
    ]
    v = validate_batch(msgs, NOW)
    assert [r[2] for r in v.rows] == [GW, gw2, GW]
    assert v.replies == [msgs[0].reply, msgs[2].reply, msgs[4].reply]
    assert v.seqs == [1, 3, 5]
    assert v.stored[2] == NOW  # clamped to now
    assert [(r.reason, r.stream_seq) for r in v.rejects] == [
        ("bad_json", 2),
        ("not_jetstream", None),
    ]
    assert v.redelivered == 1
    assert v.last_pending == 42
    seen = latest_sightings(v.rows, v.stored)
    assert seen == {(TENANT, GW): NOW, (TENANT, gw2): v.stored[1]}
    assert latest_sightings(v.rows, v.stored, [1]) == {(TENANT, gw2): v.stored[1]}
