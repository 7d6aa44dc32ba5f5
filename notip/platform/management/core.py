"""What the management stand-in does, independent of how a request arrives (NATS
responder, admin HTTP route, seed file, durable consumer): validation, store calls,
publishing. Time comes from an injected clock; publishing goes through a `Publisher`
(JetStream in the service, a list in unit tests). Store calls go through `store.run`
(off the event loop: store.py).

Errors: `BadInput` (400 / INVALID_PAYLOAD), `NotFound` (404), `Forbidden` (403),
`store.Conflict` (409), `Unavailable` (503: a publish failed, nothing was written).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from prometheus_client import CollectorRegistry, Counter

from notip import contracts
from notip.platform.management import keys, messages
from notip.platform.management.clock import Clock, iso_us, system_clock
from notip.platform.management.store import Conflict, Gateway, Store
from notip.platform.validation import (
    BadInput,
    is_uuid,
    only_fields,
    positive_int,
    text_field,
    timestamp_field,
    uuid_field,
)

log = logging.getLogger("notip.mgmt")

AES_KEY_BYTES = 32
KEY_VERSION = 1


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class Unavailable(Exception):
    pass


class Publisher(Protocol):
    async def __call__(self, subject: str, body: bytes, *, msg_id: str) -> None:
        """Publish through JetStream (deduplicated by `msg_id`); raise on failure."""


@dataclass
class Metrics:
    requests: Counter
    acks: Counter
    alerts: Counter
    commands: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        return cls(
            requests=Counter(
                "notip_mgmt_requests",
                "Request-reply requests answered, by subject and outcome",
                ["subject", "outcome"],
                registry=registry,
            ),
            acks=Counter(
                "notip_mgmt_command_acks",
                "Command acks read, by outcome (recorded, duplicate, unknown, wrong_gateway, malformed)",
                ["outcome"],
                registry=registry,
            ),
            alerts=Counter(
                "notip_mgmt_alerts",
                "gw_offline alerts read, by outcome (recorded, duplicate, malformed)",
                ["outcome"],
                registry=registry,
            ),
            commands=Counter(
                "notip_mgmt_commands_published",
                "Commands published to gateways, by type",
                ["type"],
                registry=registry,
            ),
        )


class Management:
    def __init__(
        self,
        store: Store,
        sealer: keys.KeySealer,
        publish: Publisher,
        *,
        clock: Clock = system_clock,
        command_timeout_s: float = messages.COMMAND_TIMEOUT_S,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.publish = publish
        self.clock = clock
        self.command_timeout_s = command_timeout_s
        self.metrics = metrics or Metrics.create(CollectorRegistry())

    def now(self) -> str:
        return iso_us(self.clock())

    # -- lookups -------------------------------------------------------------------------

    async def _gateway(self, gateway_id: object, *, live: bool = False) -> Gateway:
        gid = uuid_field(gateway_id, "gateway id")
        gw = await self.store.run(self.store.get_gateway, gid)
        if gw is None:
            raise NotFound("unknown gateway")
        if live and gw.decommissioned:
            raise Conflict("gateway is decommissioned")
        return gw

    async def _tenant(self, tenant_id: object) -> str:
        tid = uuid_field(tenant_id, "tenant_id")
        if not await self.store.run(self.store.tenant_exists, tid):
            raise NotFound("unknown tenant")
        return tid

    # == NATS responders (docs/contracts.md#management-request-reply) ===============================================

    async def factory_validate(self, body: Any) -> dict[str, Any]:
        """→ `{gateway_id, tenant_id}` or `{"error": INVALID|ALREADY_PROVISIONED|
        INTERNAL}`; already-provisioned is checked before the key."""
        if not isinstance(body, dict):
            return {"error": "INVALID"}
        factory_id, factory_key = body.get("factory_id"), body.get("factory_key")
        if not isinstance(factory_id, str) or not isinstance(factory_key, str):
            return {"error": "INVALID"}
        gw = await self.store.run(self.store.gateway_by_factory_id, factory_id)
        if gw is not None and gw.provisioned:
            return {"error": "ALREADY_PROVISIONED"}
        if gw is None or gw.decommissioned or gw.factory_key_hash is None:
            await trio.to_thread.run_sync(keys.burn_time)
            return {"error": "INVALID"}
        stored_hash = gw.factory_key_hash
        if not await trio.to_thread.run_sync(keys.verify_factory_key, factory_key, stored_hash):
            return {"error": "INVALID"}
        return {"gateway_id": gw.id, "tenant_id": gw.tenant_id}

    async def provisioning_complete(self, body: Any) -> dict[str, Any]:
        """Atomic: store the key, provisioned, factory key forgotten, status online."""
        try:
            if not isinstance(body, dict):
                raise BadInput("body must be an object")
            gateway_id = uuid_field(body.get("gateway_id"), "gateway_id")
            material = body.get("key_material")
            if not isinstance(material, str):
                raise BadInput("key_material must be a base64 string")
            try:
                key = base64.b64decode(material, validate=True)
            except (binascii.Error, ValueError):
                raise BadInput("key_material is not base64") from None
            if len(key) != AES_KEY_BYTES:
                raise BadInput("key_material must decode to 32 bytes")
            if body.get("key_version", KEY_VERSION) != KEY_VERSION:
                raise BadInput("key_version must be 1")
            send_frequency_ms = positive_int(body.get("send_frequency_ms"), "send_frequency_ms")
            firmware = body.get("firmware_version")
            if firmware is not None:
                firmware = text_field(firmware, "firmware_version")
        except BadInput as exc:
            # docs/contracts.md#management-request-reply has no code for a malformed request here; INTERNAL is the failure.
            log.warning("provisioning.complete rejected: %s", exc)
            return {"success": False, "error": "INTERNAL"}

        def same_key(gw: Gateway) -> bool:
            if gw.key_material is None:
                return False
            return hmac.compare_digest(self.sealer.open(gw.id, gw.key_material), key)

        outcome = await self.store.run(
            self.store.complete_provisioning,
            gateway_id=gateway_id,
            sealed_key=self.sealer.seal(gateway_id, key),
            key_version=KEY_VERSION,
            send_frequency_ms=send_frequency_ms,
            firmware_version=firmware,
            now=self.now(),
            same_key=same_key,
        )
        if outcome == "ok":
            log.info("gateway provisioned", extra={"gateway_id": gateway_id})
            return {"success": True}
        if outcome == "not_found":
            return {"success": False, "error": "NOT_FOUND"}
        log.warning(
            "provisioning.complete for a gateway provisioned with another key",
            extra={"gateway_id": gateway_id},
        )
        return {"success": False, "error": "INTERNAL"}

    async def alert_configs_list(self) -> list[dict[str, Any]]:
        return await self.store.run(self.store.alert_configs)

    async def update_status(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"success": False, "error": "INVALID_PAYLOAD"}
        status = contracts.canonical_status(body.get("status"))
        if not is_uuid(body.get("gateway_id")) or status not in ("online", "offline"):
            return {"success": False, "error": "INVALID_PAYLOAD"}
        try:
            last_seen = iso_us(timestamp_field(body.get("last_seen_at"), "last_seen_at"))
        except BadInput:
            return {"success": False, "error": "INVALID_PAYLOAD"}
        outcome = await self.store.run(
            self.store.update_status, str(body["gateway_id"]).lower(), status, last_seen
        )
        if outcome == "not_found":
            return {"success": False, "error": "NOT_FOUND"}
        return {"success": True}

    async def get_status(self, body: Any) -> dict[str, Any]:
        """`{gateway_id, state, provisioned, decommissioned: false}`; an unknown or
        decommissioned gateway, or one of another tenant, answers `{gateway_id, error:
        NOT_FOUND, decommissioned}` (no state: the consumer fails open, as
        docs/contracts.md#management-request-reply asks; `decommissioned` is true only
        for a decommissioned gateway of the tenant asked about)."""
        if not isinstance(body, dict) or not is_uuid(body.get("gateway_id")):
            return {"error": "INVALID_PAYLOAD"}
        gateway_id = str(body["gateway_id"]).lower()
        gw = await self.store.run(self.store.get_gateway, gateway_id)
        tenant = body.get("tenant_id")
        if gw is None or (tenant is not None and str(tenant).lower() != gw.tenant_id):
            return contracts.get_status_not_found(body["gateway_id"], decommissioned=False)
        if gw.decommissioned:
            return contracts.get_status_not_found(body["gateway_id"], decommissioned=True)
        return contracts.get_status_answer(body["gateway_id"], gw.state, provisioned=gw.provisioned)

    # == admin (docs/contracts.md#management-admin-http) ===========================================================

    async def create_gateway(self, body: dict[str, Any]) -> str:
        only_fields(body, {"factory_id", "factory_key", "tenant_id", "model", "id"})
        tenant_id = uuid_field(body.get("tenant_id"), "tenant_id")
        factory_id = text_field(body.get("factory_id"), "factory_id")
        factory_key = text_field(body.get("factory_key"), "factory_key", max_len=1024)
        model = text_field(body.get("model"), "model")
        gateway_id = (
            uuid_field(body["id"], "id") if body.get("id") is not None else str(uuid.uuid4())
        )
        if await self.store.run(self.store.gateway_by_factory_id, factory_id) is not None:
            raise Conflict("a gateway with this factory_id already exists")
        hashed = await trio.to_thread.run_sync(keys.hash_factory_key, factory_key)
        await self.store.run(
            self.store.create_gateway,
            gateway_id=gateway_id,
            tenant_id=tenant_id,
            factory_id=factory_id,
            factory_key_hash=hashed,
            model=model,
            now=self.now(),
        )
        log.info(
            "gateway created",
            extra={"gateway_id": gateway_id, "tenant_id": tenant_id, "factory_id": factory_id},
        )
        return gateway_id

    async def list_gateways(self, tenant_id: str | None) -> list[dict[str, Any]]:
        tid = await self._tenant(tenant_id) if tenant_id is not None else None
        return [gw.public() for gw in await self.store.run(self.store.list_gateways, tid)]

    async def gateway(self, gateway_id: str) -> dict[str, Any]:
        return (await self._gateway(gateway_id)).public()

    async def set_paused(self, gateway_id: str, paused: bool) -> None:
        gw = await self._gateway(gateway_id, live=True)
        await self.store.run(self.store.set_paused, gw.id, paused)
        log.info("gateway %s", "paused" if paused else "resumed", extra={"gateway_id": gw.id})

    async def decommission(self, gateway_id: str) -> None:
        """Publish `gateway.decommissioned.{tenant}.{gw}` first, then mark the gateway:
        a failed publish leaves nothing written (503), and a retried DELETE publishes
        the same deduplicated event."""
        gw = await self._gateway(gateway_id, live=True)
        now = self.now()
        try:
            await self.publish(
                contracts.decommissioned_subject(gw.tenant_id, gw.id),
                contracts.decommission_body(gw.id, now),
                msg_id=f"decommission-{gw.id}",
            )
        except Exception as exc:
            log.warning("decommission event not published: %s", exc, extra={"gateway_id": gw.id})
            raise Unavailable("could not publish the decommission event") from exc
        with trio.CancelScope(shield=True):  # published: record it even when cancelled now
            await self.store.run(self.store.decommission, gw.id, now)
        log.info("gateway decommissioned", extra={"gateway_id": gw.id, "tenant_id": gw.tenant_id})

    async def set_tenant_timeout(self, body: dict[str, Any]) -> dict[str, Any]:
        only_fields(body, {"tenant_id", "tenant_unreachable_timeout_ms"})
        timeout = positive_int(
            body.get("tenant_unreachable_timeout_ms"), "tenant_unreachable_timeout_ms"
        )
        tenant_id = await self._tenant(body.get("tenant_id"))
        await self.store.run(self.store.set_tenant_timeout, tenant_id, timeout)
        return {"tenant_id": tenant_id, "tenant_unreachable_timeout_ms": timeout}

    async def set_gateway_timeout(self, gateway_id: str, body: dict[str, Any]) -> dict[str, Any]:
        only_fields(body, {"gateway_unreachable_timeout_ms"})
        timeout = positive_int(
            body.get("gateway_unreachable_timeout_ms"), "gateway_unreachable_timeout_ms"
        )
        gw = await self._gateway(gateway_id, live=True)
        await self.store.run(self.store.set_gateway_timeout, gw.id, timeout)
        return {"gateway_id": gw.id, "gateway_unreachable_timeout_ms": timeout}

    async def clear_gateway_timeout(self, gateway_id: str) -> None:
        gw = await self._gateway(gateway_id)
        await self.store.run(self.store.set_gateway_timeout, gw.id, None)

    async def alerts(self, tenant_id: str | None, gateway_id: str | None) -> list[dict[str, Any]]:
        tid = uuid_field(tenant_id, "tenant_id") if tenant_id is not None else None
        gid = uuid_field(gateway_id, "gateway_id") if gateway_id is not None else None
        return await self.store.run(self.store.list_alerts, tid, gid)

    async def send_command(
        self, gateway_id: str, type_: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Record the command as `queued`, then publish it through JetStream; a failed
        publish removes the record again (503, nothing half-written). Recording first
        means an ack can never arrive for a command the store does not know."""
        payload = (
            messages.config_payload(body)
            if type_ == "config_update"
            else messages.firmware_payload(body)
        )
        gw = await self._gateway(gateway_id, live=True)
        command_id = str(uuid.uuid4())
        issued_at = self.now()
        await self.store.run(
            self.store.insert_command,
            command_id=command_id,
            gateway_id=gw.id,
            tenant_id=gw.tenant_id,
            type_=type_,
            payload=payload,
            issued_at=issued_at,
        )
        try:
            await self.publish(
                contracts.command_subject(gw.tenant_id, gw.id),
                contracts.command_body(command_id, type_, payload, issued_at),
                msg_id=command_id,
            )
        except BaseException as exc:
            with trio.CancelScope(shield=True):  # runs even when cancelled
                await self.store.run(self.store.delete_command, command_id)
            if not isinstance(exc, Exception):
                raise
            log.warning("command not published: %s", exc, extra={"gateway_id": gw.id})
            raise Unavailable("could not publish the command") from exc
        self.metrics.commands.labels(type_).inc()
        log.info(
            "command published",
            extra={"gateway_id": gw.id, "command_id": command_id, "type": type_},
        )
        return {"command_id": command_id, "status": "queued", "issued_at": issued_at}

    async def command_status(self, gateway_id: str, command_id: str) -> dict[str, Any]:
        gw = await self._gateway(gateway_id)
        cid = uuid_field(command_id, "command id")
        cmd = await self.store.run(self.store.get_command, cid)
        if cmd is None or cmd.gateway_id != gw.id:
            raise NotFound("unknown command")
        view = messages.resolve_command_status(
            stored_status=cmd.status,
            issued_at=cmd.issued_at,
            acked_at=cmd.acked_at,
            message=cmd.message,
            now=self.clock(),
            timeout_s=self.command_timeout_s,
        )
        out: dict[str, Any] = {"command_id": cmd.id, "status": view.status}
        if view.message is not None:
            out["message"] = view.message
        out["timestamp"] = view.timestamp
        return out

    async def keys(self, gateway_id: str) -> list[dict[str, Any]]:
        gw = await self._gateway(gateway_id)
        if gw.decommissioned:
            raise Forbidden("gateway is decommissioned")
        if not gw.provisioned or gw.key_material is None:
            return []
        key = self.sealer.open(gw.id, gw.key_material)
        return [
            {
                "gateway_id": gw.id,
                "key_material": base64.b64encode(key).decode("ascii"),
                "key_version": gw.key_version or KEY_VERSION,
            }
        ]

    # == durable consumers ==============================================================

    async def record_ack(self, subject: str, data: bytes) -> str:
        try:
            ack = messages.parse_ack(subject, data, now=self.clock())
        except BadInput as exc:
            log.warning("malformed command ack: %s", exc, extra={"subject": subject})
            outcome = "malformed"
        else:
            outcome = await self.store.run(self.store.record_ack, ack)
            if outcome == "wrong_gateway":
                log.warning(
                    "command ack rejected: its subject names another gateway than the command's",
                    extra={"subject": subject, "command_id": ack.command_id},
                )
            else:
                log.debug("command ack %s", outcome, extra={"command_id": ack.command_id})
        self.metrics.acks.labels(outcome).inc()
        return outcome

    async def record_alert(self, subject: str, data: bytes) -> str:
        try:
            alert = messages.parse_alert(subject, data)
        except BadInput as exc:
            log.warning("unreadable alert: %s", exc, extra={"subject": subject})
            outcome = "malformed"
        else:
            recorded = await self.store.run(self.store.record_alert, alert, self.now())
            outcome = "recorded" if recorded else "duplicate"
            if recorded:
                log.info(
                    "gw_offline alert",
                    extra={"tenant_id": alert.tenant_id, "gateway_id": alert.gateway_id},
                )
        self.metrics.alerts.labels(outcome).inc()
        return outcome
