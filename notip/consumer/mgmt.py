"""Client of the management responders (docs/contracts.md#management-request-reply), over NATS request-reply with
the callers' retry policy (only transport failures retried). Parsing is sans-io."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS

from notip import contracts, natsio
from notip.backoff import Backoff
from notip.consumer.liveness import AlertConfigs, iso_epoch, parse_alert_configs

log = logging.getLogger("notip.consumer.mgmt")


STATES = frozenset({"online", "offline", "paused", "provisioning"})
PERMANENT_UPDATE_ERRORS = frozenset({"INVALID_PAYLOAD", "NOT_FOUND"})

# Outcomes of one status update (the dispatcher's vocabulary).
OK = "ok"
RETRY = "retry"
FAIL = "fail"


class MgmtError(Exception):
    """No usable answer: transport failure after the retries, or a malformed answer."""


def parse_state(payload: bytes, gateway_id: str) -> str:
    """get-status answer → state. Raises ValueError for anything but a well-formed
    answer about *this* gateway with a known state."""
    data: Any = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("answer is not a JSON object")
    if data.get("gateway_id") != gateway_id:
        raise ValueError("answer is about another gateway")
    state = data.get("state")
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    return str(state)


def parse_update_answer(payload: bytes) -> tuple[str, str | None]:
    """update-status answer → (outcome, error code)."""
    try:
        data: Any = json.loads(payload)
    except ValueError:
        return RETRY, "MALFORMED"
    if not isinstance(data, dict):
        return RETRY, "MALFORMED"
    if data.get("success") is True:
        return OK, None
    error = data.get("error")
    code = error if isinstance(error, str) else "MALFORMED"
    return (FAIL if code in PERMANENT_UPDATE_ERRORS else RETRY), code


def retry_backoff(retries: int) -> tuple[float, ...]:
    """docs/contracts.md#request-reply-policy: 1 s / 2 s / 4 s, then 4 s."""
    return Backoff(1.0, cap=4.0, limit=retries).schedule()


@dataclass
class MgmtClient:
    nc: NATS
    timeout_s: float = natsio.REQUEST_TIMEOUT_S
    retries: int = 3

    async def _request(self, subject: str, body: bytes, *, retries: int | None = None) -> bytes:
        n = self.retries if retries is None else retries
        try:
            return await natsio.request(
                self.nc, subject, body, timeout=self.timeout_s, backoff=retry_backoff(n)
            )
        except natsio.RequestFailed as exc:
            raise MgmtError(str(exc)) from exc

    async def alert_configs(self, default_ms: int) -> AlertConfigs:
        """One attempt (the refresher owns the start-up retries and their backoff)."""
        payload = await self._request(contracts.MGMT_ALERT_CONFIGS_LIST, b"", retries=0)
        try:
            snapshot, skipped = parse_alert_configs(payload, default_ms)
        except ValueError as exc:
            raise MgmtError(f"alert-configs: {exc}") from exc
        if skipped:
            log.warning("alert-config entries ignored", extra={"skipped": skipped})
        return snapshot

    async def gateway_state(self, tenant_id: str, gateway_id: str) -> str:
        body = json.dumps({"gateway_id": gateway_id, "tenant_id": tenant_id}).encode()
        payload = await self._request(contracts.MGMT_GATEWAY_GET_STATUS, body)
        try:
            return parse_state(payload, gateway_id)
        except ValueError as exc:
            raise MgmtError(f"get-status: {exc}") from exc

    async def update_status(self, gateway_id: str, status: str, last_seen: float) -> str:
        body = json.dumps(
            {"gateway_id": gateway_id, "status": status, "last_seen_at": iso_epoch(last_seen)}
        ).encode()
        try:
            payload = await self._request(contracts.MGMT_GATEWAY_UPDATE_STATUS, body)
        except MgmtError as exc:
            log.warning("status update not delivered: %s", exc, extra={"gateway_id": gateway_id})
            return RETRY
        outcome, code = parse_update_answer(payload)
        if outcome != OK:
            log.warning(
                "status update refused",
                extra={"gateway_id": gateway_id, "status": status, "error": code},
            )
        return outcome
