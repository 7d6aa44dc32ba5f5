"""Management's side of the wire formats (docs/contracts.md#commands-and-acks, docs/contracts.md#alerts-and-decommission-events, docs/contracts.md#management-admin-http): pure functions,
no I/O, time passed in. Subjects, field names, the command and decommission bodies,
the ack and alert field readers and the status aliases are the contract's
(notip.contracts, shared with the gateways and the data consumer); this module adds
management's validation of what it reads (UUIDs, timestamps, lower-case ids):

- the command payloads it accepts on its admin routes (`config_payload`, …);
- acks it reads from `command.ack.{tenantId}.{gatewayId}` (`parse_ack`);
- gw_offline alerts it reads from `alert.>` (both subject forms of docs/contracts.md#subjects);
- the lazy command-status resolution of docs/contracts.md#management-admin-http.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from notip import contracts
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

COMMAND_TYPES = contracts.COMMAND_TYPES
ACK_STATUSES = contracts.ACK_STATUSES
#: A command with no ack this long after `issued_at` reads as `timeout` (docs/contracts.md#management-admin-http).
COMMAND_TIMEOUT_S = 75.0

# -- commands ---------------------------------------------------------------------------


def config_payload(body: dict[str, Any]) -> dict[str, Any]:
    """`{send_frequency_ms?: int > 0, status?: alias}`, at least one; the status is
    published in its canonical form."""
    only_fields(body, {"send_frequency_ms", "status"})
    payload: dict[str, Any] = {}
    if body.get("send_frequency_ms") is not None:
        payload["send_frequency_ms"] = positive_int(body["send_frequency_ms"], "send_frequency_ms")
    if body.get("status") is not None:
        status = contracts.canonical_status(body["status"])
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


def parse_ack(subject: str, data: bytes, *, now: dt.datetime) -> Ack:
    """An ack from `command.ack.{tenantId}.{gatewayId}`; `command_id`/`commandId`
    both accepted. A missing or unreadable timestamp becomes the receive time."""
    ids = contracts.parse_command_ack(subject)
    if ids is None:
        raise BadInput(f"unexpected subject {subject!r}")
    tenant_id, gateway_id = ids
    if not (is_uuid(tenant_id) and is_uuid(gateway_id)):
        raise BadInput(f"subject {subject!r} does not carry tenant and gateway UUIDs")
    try:
        sent = contracts.read_ack(data)
    except ValueError as exc:
        raise BadInput(f"body is {exc}") from None
    command_id = uuid_field(sent.command_id, "command_id")
    status = sent.status
    if status not in ACK_STATUSES:
        raise BadInput(f"status must be one of {', '.join(ACK_STATUSES)}")
    message = sent.message
    if message is not None and not isinstance(message, str):
        raise BadInput("message must be a string")
    try:
        stamp = iso_us(timestamp_field(sent.timestamp, "timestamp"))
    except BadInput:
        stamp = iso_us(now)
    return Ack(tenant_id.lower(), gateway_id.lower(), command_id, status, message, stamp)


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
    tenant = contracts.parse_gw_offline_alert(subject)
    if tenant is None or not is_uuid(tenant):
        raise BadInput(f"not a gw_offline alert subject: {subject!r}")
    return tenant.lower()


def parse_alert(subject: str, data: bytes) -> Alert:
    tenant_id = alert_tenant(subject)
    try:
        sent = contracts.read_gw_offline_alert(data)
    except ValueError as exc:
        raise BadInput(f"body is {exc}") from None
    gateway_id = uuid_field(sent.gateway_id, "gatewayId")
    last_seen = iso_us(timestamp_field(sent.last_seen, "lastSeen"))
    timeout_ms = positive_int(sent.timeout_ms, "timeoutMs")
    raw_ts = sent.timestamp
    timestamp = iso_us(timestamp_field(raw_ts, "timestamp")) if raw_ts is not None else None
    return Alert(tenant_id, gateway_id, last_seen, timeout_ms, timestamp)
