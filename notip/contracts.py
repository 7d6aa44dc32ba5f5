"""The wire contract in one place (docs/contracts.md#nats): every NATS subject the daemons use,
its parser, the JetStream stream table, the gateway-status aliases and the JSON
shapes that one daemon builds and another reads (commands, command acks, gw_offline
alerts, decommission events). Pure: no I/O, no clock.

Producers and consumers of a message both call the functions here, so a subject or
a field name cannot drift between the two sides. Subjects with a fixed value are
precomputed strings; the builders are plain f-strings (callers on a hot path build
once per gateway or per batch, never per message).

The telemetry envelope's shape and crypto live in `notip.envelope` (already the one
home of that contract: the simulator seals with it, `notip tail` opens with it).
The consumer's envelope check (notip/consumer/ingest.py) reads the same field names
as literals on purpose: it is the hot path, and a test pins that both agree.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

# -- telemetry (docs/contracts.md#telemetry-envelope) -----------------------------------------------------------------

#: `telemetry.data.{tenantId}.{gatewayId}`: gateways publish, the consumer ingests.
TELEMETRY_PREFIX = "telemetry.data."
TELEMETRY_ALL = "telemetry.data.>"


def telemetry_subject(tenant_id: str, gateway_id: str) -> str:
    return f"{TELEMETRY_PREFIX}{tenant_id}.{gateway_id}"


def telemetry_gateway_filter(gateway_id: str) -> str:
    """One gateway's telemetry, whatever its tenant (`notip tail --gateway`)."""
    return f"{TELEMETRY_PREFIX}*.{gateway_id}"


def _two_ids(subject: str, prefix: str) -> tuple[str, str] | None:
    """`{prefix}{a}.{b}` → (a, b), both non-empty; None for any other shape. The split
    is bounded, whatever the subject's length."""
    if not subject.startswith(prefix):
        return None
    parts = subject[len(prefix) :].split(".", 2)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def parse_telemetry(subject: str) -> tuple[str, str] | None:
    """(tenant, gateway) of a telemetry subject's shape; the tokens' syntax (tenant
    charset, gateway UUID) is the ingest's business."""
    return _two_ids(subject, TELEMETRY_PREFIX)


# -- commands and acks (docs/contracts.md#commands-and-acks) ---------------------------------------------------------

COMMAND_PREFIX = "command.gw."
COMMANDS_ALL = "command.gw.>"
COMMAND_ACK_PREFIX = "command.ack."
COMMAND_ACKS_ALL = "command.ack.>"


def command_subject(tenant_id: str, gateway_id: str) -> str:
    return f"{COMMAND_PREFIX}{tenant_id}.{gateway_id}"


def command_ack_subject(tenant_id: str, gateway_id: str) -> str:
    return f"{COMMAND_ACK_PREFIX}{tenant_id}.{gateway_id}"


def parse_command_ack(subject: str) -> tuple[str, str] | None:
    """(tenant, gateway) of `command.ack.{tenantId}.{gatewayId}`, else None."""
    return _two_ids(subject, COMMAND_ACK_PREFIX)


def command_durable(gateway_id: str) -> str:
    """The gateway's durable on COMMANDS (`gw-{gatewayId}`)."""
    return f"gw-{gateway_id}"


# -- a gateway's own connection ------------------------------------------------------------


def gateway_inbox_prefix(gateway_id: str) -> str:
    """The inbox prefix a gateway connects with (`_INBOX.{gatewayId}`): every reply to
    it (PubAcks, JetStream API answers, pulled commands) comes under
    `_INBOX.{gatewayId}.>`, the only subscriptions a gateway identity is allowed."""
    return f"_INBOX.{gateway_id}"


# -- alerts (docs/contracts.md#alerts-and-decommission-events) --------------------------------------------------------------------

ALERTS_ALL = "alert.>"
GW_OFFLINE = "gw_offline"
#: Default of the consumer's ALERT_SUBJECT_TEMPLATE (the contract's form).
GW_OFFLINE_ALERT_TEMPLATE = "alert.gw_offline.{tenant_id}"


def parse_gw_offline_alert(subject: str) -> str | None:
    """The tenant token of a gw_offline alert subject: `alert.gw_offline.{tenantId}`
    (the contract's form) or `alert.{tenantId}.gw_offline` (the tenant-first form a
    custom ALERT_SUBJECT_TEMPLATE may produce). None for anything else."""
    tokens = subject.split(".", 3)
    if len(tokens) != 3 or tokens[0] != "alert":
        return None
    if tokens[1] == GW_OFFLINE and tokens[2]:
        return tokens[2]
    if tokens[2] == GW_OFFLINE and tokens[1]:
        return tokens[1]
    return None


# -- decommission (docs/contracts.md#alerts-and-decommission-events) --------------------------------------------------------------

DECOMMISSIONED_PREFIX = "gateway.decommissioned."
DECOMMISSIONED_ALL = "gateway.decommissioned.>"


def decommissioned_subject(tenant_id: str, gateway_id: str) -> str:
    return f"{DECOMMISSIONED_PREFIX}{tenant_id}.{gateway_id}"


def parse_decommissioned(subject: str) -> tuple[str, str] | None:
    """(tenant, gateway) from `gateway.decommissioned.{tenantId}.{gatewayId}` (tokens
    2 and 3); None for any other shape (a listener terminates or ignores those)."""
    return _two_ids(subject, DECOMMISSIONED_PREFIX)


# -- audit (provisioning) --------------------------------------------------------------

AUDIT_ALL = "log.audit.>"


def audit_subject(tenant_id: str) -> str:
    return f"log.audit.{tenant_id}"


# -- internal request-reply (docs/contracts.md#management-request-reply) and the consumers' liveness feed -------------------

MGMT_FACTORY_VALIDATE = "internal.mgmt.factory.validate"
MGMT_PROVISIONING_COMPLETE = "internal.mgmt.provisioning.complete"
MGMT_ALERT_CONFIGS_LIST = "internal.mgmt.alert-configs.list"
MGMT_GATEWAY_UPDATE_STATUS = "internal.mgmt.gateway.update-status"
MGMT_GATEWAY_GET_STATUS = "internal.mgmt.gateway.get-status"
#: Everything the management responders answer.
MGMT_SUBJECTS = (
    MGMT_FACTORY_VALIDATE,
    MGMT_PROVISIONING_COMPLETE,
    MGMT_ALERT_CONFIGS_LIST,
    MGMT_GATEWAY_UPDATE_STATUS,
    MGMT_GATEWAY_GET_STATUS,
)

#: Default of the consumer's LIVENESS_FEED_SUBJECT: ingest-only instances publish
#: committed sightings here, the liveness owner subscribes (core NATS, no stream).
LIVENESS_FEED_SUBJECT = "internal.consumer.liveness.seen"

# -- streams (docs/contracts.md#streams) -------------------------------------------------------------------

DAY_S = 86400.0


class Stream(NamedTuple):
    name: str
    subjects: tuple[str, ...]
    max_age_s: float  # 0 = unlimited


TELEMETRY = Stream("TELEMETRY", (TELEMETRY_ALL,), 30 * DAY_S)
COMMANDS = Stream("COMMANDS", (COMMANDS_ALL,), 75.0)
COMMAND_ACKS = Stream("COMMAND_ACKS", (COMMAND_ACKS_ALL,), 300.0)
ALERTS = Stream("ALERTS", (ALERTS_ALL,), 0.0)
DECOMMISSION = Stream("DECOMMISSION", (DECOMMISSIONED_ALL,), DAY_S)
AUDIT_LOG = Stream("AUDIT_LOG", (AUDIT_ALL,), 90 * DAY_S)
STREAMS: tuple[Stream, ...] = (TELEMETRY, COMMANDS, COMMAND_ACKS, ALERTS, DECOMMISSION, AUDIT_LOG)

# -- the NATS server's own API subjects (docs/contracts.md#permissions-by-identity) --------------------------
# Not ours to define, but every identity's permissions name them, so they are built
# here like any other subject.

#: Where nats-py puts every reply subject of a connection without an inbox prefix.
INBOX_ALL = "_INBOX.>"


def js_stream_api(action: str, stream: str) -> str:
    """`$JS.API.STREAM.{INFO|CREATE|UPDATE|DELETE|…}.{stream}`."""
    return f"$JS.API.STREAM.{action}.{stream}"


def js_consumer_create(stream: str, consumer: str, filter_subject: str) -> str:
    """The filtered create: the server refuses a body whose name or filter differs
    from the subject's, so allowing this subject allows exactly that consumer. nats-py
    uses it when the config sets `name` and one `filter_subject`."""
    return f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.{filter_subject}"


def js_consumer_info(stream: str, consumer: str) -> str:
    return f"$JS.API.CONSUMER.INFO.{stream}.{consumer}"


def js_consumer_next(stream: str, consumer: str) -> str:
    """A pull request (reply subject: the puller's inbox)."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"


def js_consumer_acks(stream: str, consumer: str) -> str:
    """Every ack reply subject of the consumer's messages (ack, nak, term, progress)."""
    return f"$JS.ACK.{stream}.{consumer}.>"


#: Auth callout requests (the server publishes, the auth service answers).
SYS_USER_AUTH = "$SYS.REQ.USER.AUTH"
#: CONNZ of every server (each answers once).
SYS_CONNZ_ALL = "$SYS.REQ.SERVER.PING.CONNZ"
#: KICK on any server.
SYS_KICK_ANY = "$SYS.REQ.SERVER.*.KICK"


def sys_kick(server_id: str) -> str:
    """Close one connection of server `server_id` (body `{"cid": N}`)."""
    return f"$SYS.REQ.SERVER.{server_id}.KICK"


# -- gateway status aliases (docs/contracts.md#commands-and-acks) ----------------------------------------------------

#: Canonical platform status ← accepted spelling (after `normal_status_key`).
STATUS_ALIASES: dict[str, str] = {
    "online": "online",
    "gateway_online": "online",
    "paused": "paused",
    "suspended": "paused",
    "gateway_suspended": "paused",
    "offline": "offline",
    "gateway_offline": "offline",
}
_STATUS_SEPARATORS = re.compile(r"[-\s]")


def canonical_status(value: object) -> str | None:
    """`online` | `paused` | `offline` for any alias (case-insensitive, surrounding
    blanks ignored, `-` and white space read as `_`); None for anything else."""
    if not isinstance(value, str):
        return None
    return STATUS_ALIASES.get(_STATUS_SEPARATORS.sub("_", value.strip().lower()))


# -- JSON payload shapes (docs/contracts.md#commands-and-acks, docs/contracts.md#alerts-and-decommission-events) ---------------------------------------------------


def _compact(obj: dict[str, Any], *, ascii_only: bool = True) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def field(obj: dict[str, Any], snake: str) -> Any:
    """`obj[snake]`, else `obj[camelCase]`, else None: readers accept both spellings
    (management publishes snake_case, the published contract says camelCase)."""
    if snake in obj:
        return obj[snake]
    return obj.get(camel(snake))


def json_object(data: bytes) -> dict[str, Any]:
    """The JSON object a payload holds; ValueError (`not JSON: …` / `not a JSON
    object`) otherwise."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


CONFIG_UPDATE = "config_update"
FIRMWARE_PUSH = "firmware_push"
COMMAND_TYPES = (CONFIG_UPDATE, FIRMWARE_PUSH)

ACK = "ack"
NACK = "nack"
EXPIRED = "expired"
ACK_STATUSES = (ACK, NACK, EXPIRED)


@dataclass(frozen=True)
class CommandFields:
    """A command's fields as sent (types unchecked: the gateway judges them)."""

    command_id: Any
    type: Any
    payload: Any
    issued_at: Any


def command_body(command_id: str, type_: str, payload: dict[str, Any], issued_at: str) -> bytes:
    """The command management publishes on `command.gw.…` (snake_case)."""
    return _compact(
        {"command_id": command_id, "type": type_, "payload": payload, "issued_at": issued_at}
    )


def read_command(data: bytes) -> CommandFields:
    """A command's fields in either spelling; ValueError when it is not a JSON object."""
    obj = json_object(data)
    return CommandFields(
        field(obj, "command_id"), field(obj, "type"), field(obj, "payload"), field(obj, "issued_at")
    )


@dataclass(frozen=True)
class AckFields:
    """An ack's fields as sent (types unchecked: the reader judges them)."""

    command_id: Any
    status: Any
    message: Any
    timestamp: Any


def ack_body(command_id: str, status: str, message: str | None, timestamp: str) -> bytes:
    """The ack a gateway publishes on `command.ack.…` (snake_case); `message` only when
    there is one (always on nack)."""
    body: dict[str, Any] = {"command_id": command_id, "status": status}
    if message:
        body["message"] = message
    body["timestamp"] = timestamp
    return _compact(body, ascii_only=False)


def read_ack(data: bytes) -> AckFields:
    """An ack's fields (`command_id`/`commandId`); ValueError when not a JSON object."""
    obj = json_object(data)
    return AckFields(
        field(obj, "command_id"), obj.get("status"), obj.get("message"), obj.get("timestamp")
    )


@dataclass(frozen=True)
class GwOfflineFields:
    gateway_id: Any
    last_seen: Any
    timeout_ms: Any
    timestamp: Any


def gw_offline_alert_body(
    gateway_id: str, last_seen: str, timeout_ms: int, timestamp: str
) -> bytes:
    """The gw_offline alert the consumer publishes (camelCase, docs/contracts.md#alerts-and-decommission-events)."""
    return _compact(
        {
            "gatewayId": gateway_id,
            "lastSeen": last_seen,
            "timeoutMs": timeout_ms,
            "timestamp": timestamp,
        }
    )


def gw_offline_msg_id(tenant_id: str, gateway_id: str, last_seen: str) -> str:
    """Its Nats-Msg-Id: one per (tenant, gateway, lastSeen), so a retried publish of
    the same transition is deduplicated by the stream."""
    return f"{GW_OFFLINE}.{tenant_id}.{gateway_id}.{last_seen}"


def read_gw_offline_alert(data: bytes) -> GwOfflineFields:
    """An alert's fields, camelCase first, snake_case accepted; ValueError when not a
    JSON object."""
    obj = json_object(data)

    def get(camel_name: str, snake: str) -> Any:
        return obj.get(camel_name, obj.get(snake))

    return GwOfflineFields(
        get("gatewayId", "gateway_id"),
        get("lastSeen", "last_seen"),
        get("timeoutMs", "timeout_ms"),
        obj.get("timestamp"),
    )


def decommission_body(gateway_id: str, timestamp: str) -> bytes:
    """The event management publishes on `gateway.decommissioned.…` (the listeners
    read tenant and gateway from the subject)."""
    return _compact({"gatewayId": gateway_id, "timestamp": timestamp})


# -- internal.mgmt.gateway.get-status (docs/contracts.md#management-request-reply) ------------

NOT_FOUND = "NOT_FOUND"


def get_status_request(gateway_id: str, tenant_id: str) -> bytes:
    return _compact({"gateway_id": gateway_id, "tenant_id": tenant_id})


def get_status_answer(gateway_id: str, state: str, *, provisioned: bool) -> dict[str, Any]:
    """A live gateway: its runtime `state` (what the consumer reads) and whether it
    completed provisioning (what the NATS auth service reads; `state` alone cannot
    say, `paused` wins over `provisioning`)."""
    return {
        "gateway_id": gateway_id,
        "state": state,
        "provisioned": provisioned,
        "decommissioned": False,
    }


def get_status_not_found(gateway_id: Any, *, decommissioned: bool) -> dict[str, Any]:
    """No live gateway: `decommissioned` true only for a decommissioned gateway of the
    tenant asked about (another tenant's gateway reads as unknown)."""
    return {"gateway_id": gateway_id, "error": NOT_FOUND, "decommissioned": decommissioned}


@dataclass(frozen=True)
class GetStatusFields:
    """A get-status answer about the gateway asked for, fields as sent."""

    state: Any
    provisioned: Any
    decommissioned: Any
    error: Any


def read_get_status(data: bytes, gateway_id: str) -> GetStatusFields:
    """The answer's fields; ValueError when it is not a JSON object about `gateway_id`."""
    obj = json_object(data)
    if obj.get("gateway_id") != gateway_id:
        raise ValueError("answer is about another gateway")
    return GetStatusFields(
        obj.get("state"), obj.get("provisioned"), obj.get("decommissioned"), obj.get("error")
    )
