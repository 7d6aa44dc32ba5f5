from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from notip.consumer import ingest
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
        e["timestamp"],  # canonical RFC 3339 (`…T…Z`, milliseconds): stored as sent
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
    assert row[0].endswith("Z")  # the instant, with its offset: never ambiguous


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


@pytest.mark.parametrize(
    "ts",
    [
        "2025-06-01T12:00:00Z",
        "2025-06-01T12:00:00.5Z",
        "2025-06-01T12:00:00.123456Z",
        "2025-06-01T14:00:00.000+02:00",
        "2025-06-01T06:15:00-05:45",
        "2025-06-01T12:00:00-00:00",
    ],
)
def test_canonical_timestamps_are_stored_as_sent(ts: str) -> None:
    row = check(SUBJECT, raw(env(timestamp=ts)), 1748779200.0)
    assert row[0] == ts


@pytest.mark.parametrize(
    "ts",
    [
        "2025-06-01T12:00:00,5Z",  # comma: would split the store's comma-joined column
        "2025-06-01 12:00:00Z",  # space separator
        "20250601T120000Z",  # basic format
        "2025-06-01T12:00Z",  # no seconds
        "2025-06-01T12:00:00.1234567Z",  # 7 digits: PostgreSQL rounds, Python truncates
        "2025-06-01T14:00:00+0200",  # offset without a colon
        "2025-06-01T14:00:30+02:00:30",  # offset with seconds
        "2025-06-01T12:00:00+00:00\n",  # trailing newline (fromisoformat refuses it anyway)
    ],
)
def test_odd_but_valid_timestamps_are_re_rendered(ts: str) -> None:
    try:
        when = dt.datetime.fromisoformat(ts)
    except ValueError:
        assert reason(SUBJECT, raw(env(timestamp=ts))) == "bad_timestamp"
        return
    row = check(SUBJECT, raw(env(timestamp=ts)), when.timestamp())
    assert row[0] == when.isoformat()
    assert ingest._CANONICAL_TS.fullmatch(ts) is None


DIGITS = "0123456789"
# Fixed offsets fromisoformat accepts (|offset| < 24 h), minute granularity.
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)


def _offset(minutes: int, sign_of_zero: str) -> str:
    if minutes == 0:
        return sign_of_zero
    sign = "+" if minutes > 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@given(
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.text(DIGITS, min_size=0, max_size=7),
    OFFSETS,
    st.sampled_from(["Z", "+00:00", "-00:00"]),
    st.sampled_from(["T", " ", "t"]),
)
def test_passed_through_timestamps_are_the_instant_isoformat_renders(
    when: dt.datetime, fraction: str, offset_min: int, zero: str, sep: str
) -> None:
    """Whatever spelling: the row's time is the same instant as `isoformat()`'s, and a
    spelling kept as sent is one the canonical pattern admits."""
    ts = f"{when.year:04d}-{when:%m-%d}{sep}{when:%H:%M:%S}"  # %Y does not pad year 1
    ts += ("." + fraction if fraction else "") + _offset(offset_min, zero)
    try:
        parsed = dt.datetime.fromisoformat(ts)
    except ValueError:
        event("not ISO 8601 for Python")
        return
    out = ingest.row_time(ts, parsed)
    assert dt.datetime.fromisoformat(out) == dt.datetime.fromisoformat(parsed.isoformat())
    assert dt.datetime.fromisoformat(out).utcoffset() == parsed.utcoffset()
    assert "," not in out
    if out == ts:
        event("passed through")
        assert sep == "T" and len(fraction) <= 6
    else:
        event("re-rendered")
        assert out == parsed.isoformat()
        assert sep != "T" or len(fraction) > 6


def rejection(data: bytes) -> str | None:
    """Why `check` rejects `data`; None when it makes a row (any other error fails)."""
    try:
        check(SUBJECT, data, NOW)
    except Rejected as exc:
        return exc.reason
    return None


@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_rows_or_rejections(data: bytes) -> None:
    assert rejection(data) in (None, *REASONS)


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
    assert rejection(raw({**env(), **fields})) in (None, *REASONS)


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


# -- one message can never stop ingestion ------------------------------------------------


def nested(depth: int, inner: bytes = b"") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def deep_payload(depth: int) -> bytes:
    """`{"gatewayId": [[[…]]]}`: the ~2 KB payload that used to raise RecursionError."""
    return b'{"gatewayId": ' + nested(depth) + b"}"


def batch_around(poison: bytes) -> list[FakeMsg]:
    return [
        FakeMsg(SUBJECT, raw(env()), reply(1)),
        FakeMsg(SUBJECT, poison, reply(2)),
        FakeMsg(SUBJECT, raw(env()), reply(3)),
    ]


def assert_only_middle_rejected(v: Any, reason: str) -> None:
    assert v.seqs == [1, 3]  # batch-mates kept
    assert len(v.rows) == len(v.replies) == len(v.stored) == 2
    assert [(r.reason, r.stream_seq) for r in v.rejects] == [(reason, 2)]
    assert v.rejects[0].reply == reply(2)  # what the pipeline terminates


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (deep_payload(1000), "too_deep"),  # ~2 KB
        (deep_payload(30_000), "too_deep"),  # ~60 KB, under the size limit
        (deep_payload(100_000), "payload_too_large"),  # ~200 KB
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, "too_deep"),  # objects nest too
        (raw(env(extra=json.loads(nested(ingest.MAX_DEPTH)))), "too_deep"),  # 1 + 32 levels
        (nested(5000), "too_deep"),  # not even an object
        (b"[" * 5000, "too_deep"),  # never closed
        (b"{" * 5000, "too_deep"),
    ],
)
def test_deep_nesting_is_rejected_before_parsing(data: bytes, expected: str) -> None:
    assert len(data) > ingest.MAX_PAYLOAD_BYTES or expected != "payload_too_large"
    assert reason(SUBJECT, data) == expected
    assert_only_middle_rejected(validate_batch(batch_around(data), NOW), expected)


def test_depth_bound_does_not_rely_on_the_size_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_PAYLOAD_BYTES", 1 << 20)
    assert reason(SUBJECT, deep_payload(100_000)) == "too_deep"
    assert reason(SUBJECT, b'{"gatewayId": ' + b"[" * 500_000) == "too_deep"


def test_nesting_up_to_the_bound_is_parsed() -> None:
    # An extra field nested MAX_DEPTH - 1 deep: the object is MAX_DEPTH deep, accepted
    # (unknown fields are ignored); brackets inside strings do not count.
    for extra in (
        json.loads(nested(ingest.MAX_DEPTH - 1)),
        "[" * 10_000,
        ["{" * 100, {"k": "]]]}}}" * 100}],
    ):
        assert check(SUBJECT, raw(env(extra=extra)), NOW)[2] == GW
    # Malformed: the depth verdict or the parser's, never an exception.
    for data in (b"[" * ingest.MAX_DEPTH, b"]" * 5000 + b"[" * 5000, b'"' + b"[" * 5000):
        assert reason(SUBJECT, data) in {"bad_json", "too_deep"}


def test_oversized_payload_is_rejected_before_parsing() -> None:
    base = raw(env(pad=""))
    fits = raw(env(pad="x" * (ingest.MAX_PAYLOAD_BYTES - len(base))))
    assert len(fits) == ingest.MAX_PAYLOAD_BYTES
    assert check(SUBJECT, fits, NOW)[2] == GW  # the limit itself is allowed
    too_big = raw(env(pad="x" * (ingest.MAX_PAYLOAD_BYTES - len(base) + 1)))
    assert reason(SUBJECT, too_big) == "payload_too_large"
    assert_only_middle_rejected(validate_batch(batch_around(too_big), NOW), "payload_too_large")
    # A real envelope is a few hundred bytes: the limit is far away.
    assert len(raw(env())) * 100 < ingest.MAX_PAYLOAD_BYTES


@pytest.mark.parametrize(
    "exc", [RuntimeError("boom"), RecursionError("deep"), KeyError("k"), OverflowError("big")]
)
def test_any_error_checking_one_message_makes_it_poison(
    monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    parse = ingest._parse_json

    def failing(data: bytes) -> object:
        if b"POISON" in data:
            raise exc
        return parse(data)

    monkeypatch.setattr(ingest, "_parse_json", failing)
    v = validate_batch(batch_around(raw(env(note="POISON"))), NOW)
    assert_only_middle_rejected(v, "bad_json")
    assert type(exc).__name__ in v.rejects[0].detail


def test_memory_error_is_not_blamed_on_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message is at most 64 KiB: MemoryError is the process's state, not the
    message's fault; terminating a valid message for it would lose data."""

    def failing(data: bytes) -> object:
        raise MemoryError

    monkeypatch.setattr(ingest, "_parse_json", failing)
    with pytest.raises(MemoryError):
        validate_batch(batch_around(raw(env())), NOW)


def test_ack_subjects_with_absurd_numbers_are_not_jetstream() -> None:
    ts = "9" * 400  # an int, but beyond a float once divided
    for bad in (
        f"$JS.ACK.TELEMETRY.d.1.5.5.{ts}.0",
        f"$JS.ACK.TELEMETRY.d.1.{'9' * 5000}.5.1.0",  # beyond int()'s digit limit
        "$JS.ACK." + "." * 100_000,
    ):
        assert ack_meta(bad) is None
        v = validate_batch([FakeMsg(SUBJECT, raw(env()), bad)], NOW)
        assert [r.reason for r in v.rejects] == ["not_jetstream"] and not v.rows


@pytest.mark.parametrize(
    "subject",
    [
        "telemetry.data." + "x." * 100_000 + GW,
        "telemetry.data." + "x" * 1_000_000 + "." + GW,
        f"telemetry.data.{TENANT}.{GW}" + "." * 10_000,
        "." * 100_000,
        "",
        f"telemetry.data.{TENANT}.{GW.upper()}\n",
    ],
)
def test_absurd_subjects_are_bad_subject(subject: str) -> None:
    assert reason(subject, raw(env())) == "bad_subject"


def assert_accounted(msgs: list[FakeMsg], v: Any) -> None:
    assert len(v.rows) + len(v.rejects) == len(msgs)
    assert len(v.rows) == len(v.replies) == len(v.stored) == len(v.seqs)
    assert all(r.reason in REASONS for r in v.rejects)


# Tokens of a `$JS.ACK.…` reply: numbers, numbers too long for a float or for int(), text.
ACK_TOKENS = st.lists(
    st.integers(min_value=0).map(str)
    | st.integers(min_value=300, max_value=6000).map(lambda n: "9" * n)
    | st.text(max_size=12),
    min_size=7,
    max_size=12,
)


@given(st.lists(st.tuples(st.text(max_size=300), ACK_TOKENS), max_size=5))
def test_arbitrary_subjects_and_replies_never_escape_validate_batch(
    heads: list[tuple[str, list[str]]],
) -> None:
    msgs = [FakeMsg(subj, raw(env()), "$JS.ACK." + ".".join(tokens)) for subj, tokens in heads]
    msgs.append(FakeMsg(SUBJECT, raw(env()), reply(99)))
    v = validate_batch(msgs, NOW)
    assert_accounted(msgs, v)
    assert v.seqs[-1] == 99
    assert all(r.reason in ("bad_subject", "not_jetstream", "gateway_mismatch") for r in v.rejects)


# Arbitrary bytes, some after a long run of one JSON-significant byte (depth, strings).
PAYLOADS = st.builds(
    lambda run, n, tail: run * n + tail,
    st.sampled_from([b"[", b"{", b'{"a":[', b'"', b"\\"]),
    st.integers(min_value=0, max_value=40) | st.integers(min_value=0, max_value=20_000),
    st.binary(max_size=400),
)


@given(st.lists(PAYLOADS, max_size=8))
def test_arbitrary_bytes_never_escape_validate_batch(payloads: list[bytes]) -> None:
    msgs = [FakeMsg(SUBJECT, p, reply(i + 1)) for i, p in enumerate(payloads)]
    msgs.append(FakeMsg(SUBJECT, raw(env()), reply(len(msgs) + 1)))
    v = validate_batch(msgs, NOW)
    assert_accounted(msgs, v)
    assert v.seqs[-1] == len(msgs)  # the valid message behind them is written


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


def json_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(json_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(json_depth, value.values()), default=0)
    return 0


def expected_verdict(data: bytes, depth: int) -> str | None:
    """What check must say about a valid envelope carrying extra JSON of `depth`."""
    if len(data) > ingest.MAX_PAYLOAD_BYTES:
        return "payload_too_large"
    if b"\\u0000" in data:
        return "nul_byte"
    if depth > ingest.MAX_DEPTH:
        return "too_deep"
    return None  # a row: unknown fields are ignored


@settings(max_examples=300)
@given(
    JSON_VALUES,
    st.integers(min_value=0, max_value=40) | st.integers(min_value=0, max_value=50_000),
    st.sampled_from(["gatewayId", "extra", "keyVersion", None]),
)
def test_arbitrary_nested_json_never_escapes_validate_batch(
    value: Any, wrap: int, key: str | None
) -> None:
    """Any JSON value, wrapped in up to 50,000 more lists, as a field of an envelope
    (or as the whole payload): a row or a reject, and the exact depth verdict."""
    inner = json.dumps(value).encode()
    if key is None:
        data, depth = nested(wrap, inner), wrap + json_depth(value)
    else:
        prefix = raw(env(**{key: 0}))
        data = prefix.replace(f'"{key}": 0'.encode(), f'"{key}": '.encode() + nested(wrap, inner))
        depth = 1 + wrap + json_depth(value)
    msgs = [FakeMsg(SUBJECT, data, reply(1)), FakeMsg(SUBJECT, raw(env()), reply(2))]
    v = validate_batch(msgs, NOW)
    assert_accounted(msgs, v)
    assert v.seqs[-1] == 2  # the valid message behind it is written
    verdict = expected_verdict(data, depth)
    event(verdict or ("row" if v.seqs == [1, 2] else "other reject"))
    if verdict is not None:
        assert [r.reason for r in v.rejects] == [verdict]
    elif key == "extra":
        assert v.seqs == [1, 2]  # an unknown field, however nested (≤ the bound): a row


# Strings near the patterns' edges: valid UUIDs and base64, the same with a `|` (what
# the combined check joins on), `=`, a newline or any character spliced in, and any text.
def _spliced(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda v, i, ch: v[: i % (len(v) + 1)] + ch + v[i % (len(v) + 1) :],
        valid,
        st.integers(min_value=0),
        st.sampled_from(["|", "=", "==", "\n", "-", " "]) | st.characters(),
    )


_VALID_B64 = st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode())
_VALID_UUID = st.uuids().map(str)
FIELD_TEXT = (
    _VALID_UUID
    | _VALID_B64
    | _spliced(_VALID_UUID)
    | _spliced(_VALID_B64)
    | st.text(alphabet=st.sampled_from("0123456789abcdefABCDEF-+/=|\n "), max_size=40)
    | st.text(max_size=40)
)


@given(_VALID_UUID, _VALID_B64, _VALID_B64, _VALID_B64, st.integers(0, 3), FIELD_TEXT)
def test_the_combined_field_check_is_the_four_checks(
    a: str, b: str, c: str, d: str, position: int, candidate: str
) -> None:
    """check()'s fast path accepts exactly what the one-by-one checks accept: three
    valid parts and one candidate anywhere."""
    parts = [a, b, c, d]
    parts[position] = candidate
    one_by_one = ingest._UUID.fullmatch(parts[0]) is not None and all(
        ingest._B64.fullmatch(x) is not None for x in parts[1:]
    )
    assert (ingest._FIELDS.fullmatch("|".join(parts)) is not None) == one_by_one
    event("accepted" if one_by_one else "refused")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("gatewayId", 5, "bad_field"),
        ("gatewayId", str(uuid.uuid4()), "gateway_mismatch"),
        ("sensorId", "not-a-uuid", "bad_field"),
        ("sensorId", str(uuid.uuid4()) + "|", "bad_field"),
        ("sensorType", "radiation", "bad_field"),
        ("keyVersion", True, "bad_key_version"),
        ("keyVersion", 2**31, "bad_key_version"),
        ("encryptedData", "abc|", "bad_field"),
        ("iv", "AAAAAAAAAAAAAAA|", "bad_field"),
        ("authTag", "AAAAAAAAAAAAAAAAAAAA|A==", "bad_field"),
    ],
)
def test_each_field_still_names_its_reason(field: str, value: Any, expected: str) -> None:
    assert reason(SUBJECT, raw(env(**{field: value}))) == expected


def test_the_first_failing_field_names_the_reason() -> None:
    # keyVersion and sensorId both bad: sensorId is checked first, as before.
    assert reason(SUBJECT, raw(env(sensorId="x", keyVersion=0))) == "bad_field"
    assert reason(SUBJECT, raw(env(keyVersion=0, iv="x"))) == "bad_key_version"
