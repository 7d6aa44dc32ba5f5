"""Commands and acks (docs/contracts.md#commands-and-acks), sans-io.

Management publishes snake_case; the published contract uses camelCase: every key is
read in both spellings (`contracts.field`). `parse` checks the envelope of a command,
`interpret` its type and payload (a `Rejected` becomes a `nack` with its message),
`expired` applies the 60 s TTL, `ack_payload` builds what goes back on
`command.ack.{tenant}.{gateway}`. Field names, command types, ack statuses and the
status aliases are the contract's (notip.contracts), shared with management.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from notip import contracts
from notip.contracts import ACK as ACK  # the ack statuses: re-exported for the gateway
from notip.contracts import COMMAND_TYPES, CONFIG_UPDATE, field
from notip.contracts import EXPIRED as EXPIRED
from notip.contracts import NACK as NACK
from notip.envelope import iso, parse_iso

TTL_S = 60.0
MAX_SEND_FREQUENCY_MS = 86_400_000


class Unparseable(ValueError):
    """Not a command at all (no JSON object or no command id): nothing can be acked."""


class Rejected(ValueError):
    """A command that is answered with `nack` and this message."""


def _encodable(text: str) -> bool:
    """False for a str holding an unpaired surrogate (`"\\ud800"` is valid JSON):
    no UTF-8 store or payload can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Command:
    command_id: str
    type: str
    payload: Any
    issued_at: Any  # raw value; checked by `expired`


@dataclass(frozen=True)
class ConfigUpdate:
    send_frequency_ms: int | None
    status: str | None  # canonical: online | paused | offline


@dataclass(frozen=True)
class FirmwarePush:
    firmware_version: str
    download_url: str


def parse(data: bytes) -> Command:
    try:
        sent = contracts.read_command(data)
    except ValueError as exc:
        raise Unparseable(str(exc)) from None
    command_id = sent.command_id
    if not isinstance(command_id, str) or not command_id:
        raise Unparseable("command_id is missing")
    if not _encodable(command_id):
        raise Unparseable("command_id is not valid Unicode")
    type_ = sent.type
    if isinstance(type_, str) and not _encodable(type_):
        type_ = type_.encode("utf-8", "backslashreplace").decode("utf-8")  # unknown: nack
    return Command(
        command_id=command_id, type=type_, payload=sent.payload, issued_at=sent.issued_at
    )


def expired(cmd: Command, now: dt.datetime, ttl_s: float = TTL_S) -> bool:
    """True when `issued_at` is more than `ttl_s` old. A command without `issued_at`
    cannot be aged and is executed; an unreadable one is rejected."""
    if cmd.issued_at is None:
        return False
    try:
        issued = parse_iso(cmd.issued_at)
    except (ValueError, TypeError):
        raise Rejected(
            f"issued_at is not an ISO 8601 timestamp with a zone: {cmd.issued_at!r}"
        ) from None
    return (now - issued).total_seconds() > ttl_s


def normalise_status(value: Any) -> str:
    if not isinstance(value, str):
        raise Rejected("status must be a string")
    status = contracts.canonical_status(value)
    if status is None:
        raise Rejected(f"unknown status {value!r}")
    return status


def _frequency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("send_frequency_ms must be an integer")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise Rejected("send_frequency_ms must be an integer")
    ms = int(value)
    if ms <= 0:
        raise Rejected("send_frequency_ms must be > 0")
    if ms > MAX_SEND_FREQUENCY_MS:
        raise Rejected(f"send_frequency_ms must be <= {MAX_SEND_FREQUENCY_MS}")
    return ms


def interpret(cmd: Command) -> ConfigUpdate | FirmwarePush:
    if cmd.type not in COMMAND_TYPES:
        raise Rejected(f"unknown command type {cmd.type!r}")
    if not isinstance(cmd.payload, dict):
        raise Rejected("payload must be a JSON object")
    if cmd.type == CONFIG_UPDATE:
        freq = field(cmd.payload, "send_frequency_ms")
        status = field(cmd.payload, "status")
        if freq is None and status is None:
            raise Rejected("config_update needs send_frequency_ms or status")
        return ConfigUpdate(
            send_frequency_ms=None if freq is None else _frequency(freq),
            status=None if status is None else normalise_status(status),
        )
    version = field(cmd.payload, "firmware_version")
    url = field(cmd.payload, "download_url")
    if not isinstance(version, str) or not version.strip():
        raise Rejected("firmware_version must be a non-empty string")
    if not _encodable(version):
        raise Rejected("firmware_version is not valid Unicode")
    if url is not None and not isinstance(url, str):
        raise Rejected("download_url must be a string")
    return FirmwarePush(firmware_version=version.strip(), download_url=url or "")


def ack_payload(command_id: str, status: str, message: str | None, now: dt.datetime) -> bytes:
    """docs/contracts.md#commands-and-acks ack (snake_case); `message` is present when there is one (always on
    nack)."""
    return contracts.ack_body(command_id, status, message, iso(now))
