"""Validation of telemetry messages, batch-shaped and sans-io (docs/consumer.md#guarantees).

`validate_batch` turns one pulled batch of raw JetStream messages into the rows of one
multi-row INSERT (blobs verbatim, tenant from subject token 2, time from the envelope)
plus the list of rejected messages, each with a reason label. It runs in tight pure
Python per message: no I/O, no allocation beyond the row tuple, time passed in.

One message can never stop ingestion: its work is bounded before parsing (size, nesting
depth: the C JSON scanner recurses per level) and whatever else goes wrong while
checking it makes it a reject of its own, never an exception out of `validate_batch`.

Rejection reasons (the `reason` label of `notip_consumer_poison_messages_total`):

| reason | what |
|---|---|
| `bad_subject` | not `telemetry.data.{tenantId}.{gatewayId}`, bad tenant token, gateway token not a UUID |
| `payload_too_large` | payload over `MAX_PAYLOAD_BYTES` (64 KiB; a real envelope is ~300 bytes), refused before any parsing |
| `too_deep` | JSON nesting deeper than `MAX_DEPTH` (32; a real envelope is one flat object), refused before parsing |
| `bad_json` | not UTF-8 JSON, or not a JSON object; also any unexpected error while parsing or checking one message (the detail names the exception type) |
| `nul_byte` | a NUL byte anywhere in the payload (raw or `\\u0000`): PostgreSQL text cannot hold it |
| `bad_field` | a field missing or of the wrong type/shape (UUIDs, sensor type, base64 blobs, IV 12 bytes, tag 16 bytes) |
| `bad_key_version` | `keyVersion` not an integer in 1..2^31-1 |
| `bad_timestamp` | `timestamp` not ISO 8601 |
| `timestamp_without_zone` | `timestamp` without a zone (ambiguous instant) |
| `timestamp_out_of_range` | more than 24 h ahead of now or more than 366 days old |
| `gateway_mismatch` | payload `gatewayId` differs from the subject's gateway token |
| `not_jetstream` | no JetStream ack subject: cannot be acked, only dropped |
| `db_rejected` | valid here, but the database refused the row on its own (data error) |
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, NoReturn, Protocol

from notip import contracts
from notip.envelope import SENSOR_TYPES

MAX_FUTURE_S = 24 * 3600.0
MAX_PAST_S = 366 * 86400.0
KEY_VERSION_MAX = 2**31 - 1
# Work per message is bounded before parsing. A real envelope (notip/envelope.py) is one
# flat object of ~300 bytes: both limits leave a wide margin and keep the recursive C
# JSON scanner far from the interpreter's recursion limit.
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DEPTH = 32

REASONS = (
    "bad_subject",
    "payload_too_large",
    "too_deep",
    "bad_json",
    "nul_byte",
    "bad_field",
    "bad_key_version",
    "bad_timestamp",
    "timestamp_without_zone",
    "timestamp_out_of_range",
    "gateway_mismatch",
    "not_jetstream",
    "db_rejected",
)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TENANT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# sensorId|encryptedData|iv|authTag in one call: `|` is in none of the patterns, so the
# whole matches exactly when each part matches its own (a part holding `|` fails).
_FIELDS = re.compile(f"{_UUID.pattern}\\|{_B64.pattern}\\|{_B64.pattern}\\|{_B64.pattern}")
_SENSOR_TYPES = frozenset(SENSOR_TYPES)
_loads = json.loads
# JSONDecoder sets scan_once in __init__; typeshed does not declare it.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_fromiso = dt.datetime.fromisoformat
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Keep only brackets, both kinds folded into `[` `]`: only the nesting matters here.
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_DEEP_RUN = b"[" * (MAX_DEPTH + 1)
# A timestamp PostgreSQL reads as the very instant `datetime.fromisoformat` does (RFC
# 3339: `T`, 1-6 fraction digits, `Z` or `±HH:MM`; ASCII digits only, no comma) goes
# into the row as it came, once parsed and range-checked: re-rendering it with
# `isoformat()` cost ~0.8 µs per message (docs/design.md, consumer hot path).
# Anything else fromisoformat accepts (a space or a comma, basic format, seconds of
# offset, 7+ digits, which PostgreSQL would round rather than truncate) is re-rendered.
_CANONICAL_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_canonical_ts = _CANONICAL_TS.fullmatch

# (time, tenant_id, gateway_id, sensor_id, sensor_type, encrypted_data, iv, auth_tag, key_version)
# `time` is the envelope's timestamp as sent when it is in canonical RFC 3339 form
# (`_CANONICAL_TS`), else its instant re-rendered by `datetime.isoformat()` (always
# with its offset): the store passes columns to PostgreSQL as comma-joined text, and
# every field here is validated to a charset without commas (see store.py for why).
Row = tuple[str, str, str, str, str, str, str, str, int]


class RawMsg(Protocol):
    """What a pulled message offers (nats-py's `Msg` satisfies it)."""

    subject: str
    reply: str
    data: bytes


class Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class AckMeta(NamedTuple):
    """Fields of a JetStream ack subject
    (`$JS.ACK[.<domain>.<hash>].<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<rand>]`)."""

    stream_seq: int
    delivered: int
    stored_s: float  # the stream's stored timestamp, seconds since the epoch
    pending: int


def ack_meta(reply: str) -> AckMeta | None:
    f = _ack_fields(reply)
    return None if f is None else AckMeta(*f)


def _ack_fields(reply: str) -> tuple[int, int, float, int] | None:
    if not reply.startswith("$JS.ACK."):
        return None
    t = reply.split(".")
    n = len(t)
    if n == 9:
        b = 2
    elif n >= 11:
        b = 4
    else:
        return None
    try:
        return int(t[b + 3]), int(t[b + 2]), int(t[b + 5]) / 1e9, int(t[b + 6])
    except (ValueError, OverflowError):  # not a number, too many digits, beyond a float
        return None


_subjects: dict[str, tuple[str, str]] = {}
SUBJECT_CACHE_MAX = 100_000


def _subject(subject: str) -> tuple[str, str]:
    """(tenant, gateway) of a valid subject; cached, gateways repeat."""
    hit = _subjects.get(subject)
    if hit is not None:
        return hit
    # The contract's shape check runs on a cache miss only: a hit is the hot path.
    ids = contracts.parse_telemetry(subject)
    if ids is None:
        raise Rejected("bad_subject", "subject is not telemetry.data.{tenantId}.{gatewayId}")
    tenant, gateway = ids
    if _TENANT.fullmatch(tenant) is None:
        raise Rejected("bad_subject", "tenant token must be 1-128 of [A-Za-z0-9_-]")
    if _UUID.fullmatch(gateway) is None:
        raise Rejected("bad_subject", "gateway token is not a UUID")
    if len(_subjects) >= SUBJECT_CACHE_MAX:
        _subjects.clear()
    _subjects[subject] = hit = (tenant, gateway)
    return hit


def _too_deep(data: bytes) -> bool:
    """Would parsing `data` nest deeper than MAX_DEPTH? Exact for well-formed JSON;
    brackets inside strings do not count. Only C-level passes (about MAX_DEPTH of
    them at most) over at most MAX_PAYLOAD_BYTES: no Python loop per byte.

    With strings removed and `{}` folded into `[]`, what is left is the bracket
    skeleton. A run of more than MAX_DEPTH `[` is that deep already. Otherwise each
    `replace(b"[]", b"")` removes exactly the innermost pairs, i.e. one level; a `[]`
    still there after MAX_DEPTH passes is a pair nested deeper. What remains once no
    pair is left is unmatched brackets, `]…][…[`: a leading `]` makes the parser
    fail before any deeper level; only `[` left, more than MAX_DEPTH of them, is that
    many levels at least. Malformed input with fewer unmatched `[` nests at most
    2 × MAX_DEPTH: the parser gets it and rejects it (`bad_json`).
    """
    if data.count(b"{") + data.count(b"[") <= MAX_DEPTH:
        return False  # not enough openings to nest deeper
    b = _JSON_STRING.sub(b"", data).translate(_BRACKETS_ONLY, _NOT_BRACKETS)
    if _DEEP_RUN in b:
        return True  # the usual attack, `[[[[…`: no need to peel it level by level
    for _ in range(MAX_DEPTH):
        if not b:
            return False
        shorter = b.replace(b"[]", b"")
        if len(shorter) == len(b):
            break
        b = shorter
    else:
        if b"[]" in b:
            return True
    return b.count(b"]") == 0 and len(b) > MAX_DEPTH


def _parse_json(data: bytes) -> object:
    """json.loads without its per-call Python wrappers (encoding sniffing, two regex
    passes): decode, then the C scanner; anything unusual goes the slow, exact way."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        obj, end = _scan(text, 0)
    except StopIteration:
        return _loads(text)
    if end != len(text) and not text[end:].isspace():
        return _loads(text)  # raises the precise "Extra data" error
    return obj


def _check_fields(
    gateway: str,
    gw: object,
    sensor: object,
    stype: object,
    kv: object,
    enc: object,
    iv: object,
    tag: object,
) -> NoReturn:
    """The field checks one by one, in order: raises `Rejected` for the first that
    fails. Called only when the fast path in `check` refused the fields, which happens
    exactly when one of these fails (`_FIELDS`), so it never returns."""
    if type(gw) is not str:
        raise Rejected("bad_field", "gatewayId missing or not a string")
    if gw != gateway:
        raise Rejected("gateway_mismatch", "payload gatewayId differs from the subject's")
    if type(sensor) is not str or _UUID.fullmatch(sensor) is None:
        raise Rejected("bad_field", "sensorId missing or not a UUID")
    if type(stype) is not str or stype not in _SENSOR_TYPES:
        raise Rejected("bad_field", "sensorType missing or unknown")
    if type(kv) is not int or not 1 <= kv <= KEY_VERSION_MAX:
        raise Rejected("bad_key_version", "keyVersion must be an integer in 1..2147483647")
    if type(enc) is not str or len(enc) % 4 or _B64.fullmatch(enc) is None:
        raise Rejected("bad_field", "encryptedData missing or not padded base64")
    if type(iv) is not str or len(iv) != 16 or _B64.fullmatch(iv) is None:
        raise Rejected("bad_field", "iv missing or not base64 of 12 bytes")
    if (
        type(tag) is not str
        or len(tag) != 24
        or not tag.endswith("==")
        or _B64.fullmatch(tag) is None
    ):
        raise Rejected("bad_field", "authTag missing or not base64 of 16 bytes")
    raise Rejected("bad_field", "fields refused by the combined check")  # unreachable


def row_time(ts: str, when: dt.datetime) -> str:
    """The `time` column for timestamp `ts`, parsed as `when`: `ts` itself when it is
    canonical (`_CANONICAL_TS`), else `when.isoformat()`."""
    return ts if _canonical_ts(ts) is not None else when.isoformat()


def check(subject: str, data: bytes, now: float) -> Row:
    """Validate one message; returns its row or raises `Rejected`."""
    tenant, gateway = _subject(subject)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise Rejected("payload_too_large", f"payload over {MAX_PAYLOAD_BYTES} bytes")
    # `int in bytes` is one memchr (a bytes needle costs several times more); no
    # backslash, no `\u0000` escape.
    if 0 in data or (92 in data and b"\\u0000" in data):
        raise Rejected("nul_byte", "payload contains a NUL byte")
    # A real envelope is one flat object: no `[` (91) and its only `{` (123) first, so
    # depth 1. Anything else takes the exact scan (the rare slow path).
    if (91 in data or 123 in data[1:]) and _too_deep(data):
        raise Rejected("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        obj = _parse_json(data)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise Rejected("bad_json", f"not JSON: {exc}") from None
    if type(obj) is not dict:
        raise Rejected("bad_json", "payload is not a JSON object")

    gw = obj.get("gatewayId")
    sensor = obj.get("sensorId")
    stype = obj.get("sensorType")
    kv = obj.get("keyVersion")
    enc = obj.get("encryptedData")
    iv = obj.get("iv")
    tag = obj.get("authTag")
    # Fast path: every field checked at once, the four pattern checks as one regex
    # call (each call costs ~0.2 µs however short its string). What it does not pass
    # goes through the checks one by one, in order (`_check_fields`), which name the
    # precise reason.
    if not (
        type(gw) is str
        and gw == gateway
        and type(sensor) is str
        and type(stype) is str
        and stype in _SENSOR_TYPES
        and type(kv) is int
        and 1 <= kv <= KEY_VERSION_MAX
        and type(enc) is str
        and not len(enc) % 4
        and type(iv) is str
        and len(iv) == 16
        and type(tag) is str
        and len(tag) == 24
        and tag.endswith("==")
        and _FIELDS.fullmatch(f"{sensor}|{enc}|{iv}|{tag}") is not None
    ):
        _check_fields(gateway, gw, sensor, stype, kv, enc, iv, tag)
    ts = obj.get("timestamp")
    if type(ts) is not str:
        raise Rejected("bad_timestamp", "timestamp missing or not a string")
    try:
        when = _fromiso(ts)
    except ValueError:
        raise Rejected("bad_timestamp", "timestamp is not ISO 8601") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise Rejected("timestamp_without_zone", "timestamp has no time zone")
    epoch = when.timestamp()
    if epoch > now + MAX_FUTURE_S or epoch < now - MAX_PAST_S:
        raise Rejected("timestamp_out_of_range", "timestamp too far from now")
    return (
        ts if _canonical_ts(ts) is not None else when.isoformat(),  # row_time, inlined
        tenant,
        gateway,
        sensor,
        stype,
        enc,
        iv,
        tag,
        kv,
    )


@dataclass(slots=True)
class Reject:
    reply: str
    subject: str
    reason: str
    detail: str
    stream_seq: int | None


@dataclass(slots=True)
class Validated:
    """One batch after validation. `rows`, `replies` and `stored` are aligned."""

    rows: list[Row] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    stored: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    redelivered: int = 0
    last_pending: int | None = None


def validate_batch(msgs: Sequence[RawMsg], now: float) -> Validated:
    out = Validated()
    rows = out.rows
    replies = out.replies
    stored = out.stored
    seqs = out.seqs
    rejects = out.rejects
    redelivered = 0
    pending: int | None = None
    ack_fields = _ack_fields
    for m in msgs:
        reply = m.reply
        meta = ack_fields(reply)
        if meta is None:
            rejects.append(Reject("", m.subject, "not_jetstream", "no JetStream ack subject", None))
            continue
        seq, delivered, s, pending = meta
        if delivered > 1:
            redelivered += 1
        try:
            row = check(m.subject, m.data, now)
        except Rejected as rej:
            rejects.append(Reject(reply, m.subject, rej.reason, rej.detail, seq))
            continue
        except MemoryError:
            raise  # the process's condition, not this (size-bounded) message's
        except Exception as exc:  # noqa: BLE001 — one message's problem never stops ingestion: poison
            detail = f"unexpected {type(exc).__name__}: {str(exc)[:200]}"
            rejects.append(Reject(reply, m.subject, "bad_json", detail, seq))
            continue
        rows.append(row)
        replies.append(reply)
        stored.append(s if s < now else now)
        seqs.append(seq)
    out.redelivered = redelivered
    out.last_pending = pending
    return out


def latest_sightings(
    rows: Sequence[Row], stored: Sequence[float], indices: Iterable[int] | None = None
) -> dict[tuple[str, str], float]:
    """Newest stored timestamp per (tenant, gateway) among the committed rows."""
    seen: dict[tuple[str, str], float] = {}
    idx = range(len(rows)) if indices is None else indices
    for i in idx:
        row = rows[i]
        key = (row[1], row[2])
        s = stored[i]
        if seen.get(key, -1.0) < s:
            seen[key] = s
    return seen
