"""Wire formats the management stand-in publishes and reads (CONTRACTS §1.4, §1.5):
pure functions, no I/O, time passed in.

- commands it publishes on `command.gw.{tenantId}.{gatewayId}` (snake_case);
- acks it reads from `command.ack.{tenantId}.{gatewayId}` (both spellings);
- gw_offline alerts it reads from `alert.>` (both subject forms of §1.2);
- decommission events it publishes on `gateway.decommissioned.{tenantId}.{gatewayId}`;
- the status aliases of §1.4 and the lazy command-status resolution of §7.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from notip.platform.management.clock import iso_us
from notip.platform.validation import (
    BadInput,
    http_url,
    is_uuid,
    only_fields,
    positive_int,
    text_field,
    timestamp_field,
    uuid_field,
)

COMMAND_TYPES = ("config_update", "firmware_push")
ACK_STATUSES = ("ack", "nack", "expired")
#: A command with no ack this long after `issued_at` reads as `timeout` (§7).
COMMAND_TIMEOUT_S = 75.0

# -- status aliases (§1.4) --------------------------------------------------------------

_ALIASES = {
    "online": "online",
    "gateway_online": "online",
    "paused": "paused",
    "suspended": "paused",
    "gateway_suspended": "paused",
    "offline": "offline",
    "gateway_offline": "offline",
}


def canonical_status(value: object) -> str | None:
    """`online` | `paused` | `offline` for any alias of §1.4 (case-insensitive, `-`
    and space read as `_`), None for anything else."""
    if not isinstance(value, str):
        return None
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    return _ALIASES.get(key)


# -- commands ---------------------------------------------------------------------------


def command_subject(tenant_id: str, gateway_id: str) -> str:
    return f"command.gw.{tenant_id}.{gateway_id}"


def config_payload(body: dict[str, Any]) -> dict[str, Any]:
    """`{send_frequency_ms?: int > 0, status?: alias}`, at least one; the status is
    published in its canonical form."""
    only_fields(body, {"send_frequency_ms", "status"})
    payload: dict[str, Any] = {}
    if body.get("send_frequency_ms") is not None:
        payload["send_frequency_ms"] = positive_int(body["send_frequency_ms"], "send_frequency_ms")
    if body.get("status") is not None:
        status = canonical_status(body["status"])
        if status is None:
            raise BadInput("status must be one of online, paused, offline (or an alias of them)")
        payload["status"] = status
    if not payload:
        raise BadInput("give at least one of send_frequency_ms, status")
    return payload


def firmware_payload(body: dict[str, Any]) -> dict[str, Any]:
    only_fields(body, {"firmware_version", "download_url"})
    return {
        "firmware_version": text_field(body.get("firmware_version"), "firmware_version"),
        "download_url": http_url(body.get("download_url"), "download_url"),
    }


def command_body(command_id: str, type_: str, payload: dict[str, Any], issued_at: str) -> bytes:
    """The snake_case command management publishes (§1.4)."""
    return json.dumps(
        {"command_id": command_id, "type": type_, "payload": payload, "issued_at": issued_at},
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class CommandView:
    status: str  # queued | ack | nack | expired | timeout
    timestamp: str
    message: str | None


def resolve_command_status(
    *,
    stored_status: str,
    issued_at: str,
    acked_at: str | None,
    message: str | None,
    now: dt.datetime,
    timeout_s: float = COMMAND_TIMEOUT_S,
) -> CommandView:
    """What `GET /cmd/{gw}/status/{id}` answers. A recorded ack/nack/expired is the
    answer (its `timestamp` is the ack's); with none, the command is `queued` until
    `timeout_s` after `issued_at` and `timeout` from then on (timestamp = the moment
    it timed out). Computed on read, so no timer runs and tests can pass `now`."""
    if stored_status in ACK_STATUSES:
        return CommandView(stored_status, acked_at or issued_at, message)
    issued = timestamp_field(issued_at, "issued_at")
    deadline = issued + dt.timedelta(seconds=timeout_s)
    if now >= deadline:
        return CommandView("timeout", iso_us(deadline), None)
    return CommandView("queued", issued_at, None)


# -- acks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    tenant_id: str
    gateway_id: str
    command_id: str
    status: str
    message: str | None
    timestamp: str


def _subject_ids(subject: str, prefix: tuple[str, ...]) -> tuple[str, str]:
    tokens = subject.split(".")
    if len(tokens) != len(prefix) + 2 or tuple(tokens[: len(prefix)]) != prefix:
        raise BadInput(f"unexpected subject {subject!r}")
    tenant_id, gateway_id = tokens[len(prefix)], tokens[len(prefix) + 1]
    if not (is_uuid(tenant_id) and is_uuid(gateway_id)):
        raise BadInput(f"subject {subject!r} does not carry tenant and gateway UUIDs")
    return tenant_id.lower(), gateway_id.lower()


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("body is not JSON") from None
    if not isinstance(obj, dict):
        raise BadInput("body is not a JSON object")
    return obj


def parse_ack(subject: str, data: bytes, *, now: dt.datetime) -> Ack:
    """An ack from `command.ack.{tenantId}.{gatewayId}`; `command_id`/`commandId`
    both accepted. A missing or unreadable timestamp becomes the receive time."""
    tenant_id, gateway_id = _subject_ids(subject, ("command", "ack"))
    body = _json_object(data)
    command_id = body.get("command_id", body.get("commandId"))
    command_id = uuid_field(command_id, "command_id")
    status = body.get("status")
    if status not in ACK_STATUSES:
        raise BadInput(f"status must be one of {', '.join(ACK_STATUSES)}")
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise BadInput("message must be a string")
    try:
        stamp = iso_us(timestamp_field(body.get("timestamp"), "timestamp"))
    except BadInput:
        stamp = iso_us(now)
    return Ack(tenant_id, gateway_id, command_id, status, message, stamp)


# -- alerts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    tenant_id: str
    gateway_id: str
    last_seen: str
    timeout_ms: int
    timestamp: str | None


def alert_tenant(subject: str) -> str:
    """The tenant of a gw_offline alert subject: `alert.gw_offline.{tenantId}` (the
    contract's form) or `alert.{tenantId}.gw_offline` (the tenant-first form)."""
    tokens = subject.split(".")
    if len(tokens) == 3 and tokens[0] == "alert":
        if tokens[1] == "gw_offline" and is_uuid(tokens[2]):
            return tokens[2].lower()
        if tokens[2] == "gw_offline" and is_uuid(tokens[1]):
            return tokens[1].lower()
    raise BadInput(f"not a gw_offline alert subject: {subject!r}")


def parse_alert(subject: str, data: bytes) -> Alert:
    tenant_id = alert_tenant(subject)
    body = _json_object(data)
    gateway_id = uuid_field(body.get("gatewayId", body.get("gateway_id")), "gatewayId")
    last_seen = iso_us(timestamp_field(body.get("lastSeen", body.get("last_seen")), "lastSeen"))
    timeout_ms = positive_int(body.get("timeoutMs", body.get("timeout_ms")), "timeoutMs")
    raw_ts = body.get("timestamp")
    timestamp = iso_us(timestamp_field(raw_ts, "timestamp")) if raw_ts is not None else None
    return Alert(tenant_id, gateway_id, last_seen, timeout_ms, timestamp)


# -- decommission -----------------------------------------------------------------------


def decommission_subject(tenant_id: str, gateway_id: str) -> str:
    return f"gateway.decommissioned.{tenant_id}.{gateway_id}"


def decommission_body(gateway_id: str, timestamp: str) -> bytes:
    return json.dumps(
        {"gatewayId": gateway_id, "timestamp": timestamp}, separators=(",", ":")
    ).encode()
