"""The onboarding flow of docs/contracts.md#provisioning-http, in its order:

1. `internal.mgmt.factory.validate` (request-reply) → gateway and tenant ids;
2. verify the CSR (signature, key ≥ RSA-2048 / P-256) and sign it with the CA;
3. 32 random bytes from the OS CSPRNG (the gateway's AES-256 key);
4. `internal.mgmt.provisioning.complete` (request-reply);
5. 201 `{certPem, aesKey, identity, sendFrequencyMs}`.

Every failure is an `OnboardError` carrying the HTTP status, the contract's error
code and a metrics/audit reason. Management is reached through a `Requester` (NATS in
the service, a fake in unit tests); the whole flow runs under one deadline so that the
answer comes before a gateway's 15 s client timeout (see Settings).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from cryptography import x509

from notip import contracts, natsio, pki
from notip.platform.validation import is_uuid

AES_KEY_BYTES = 32
KEY_VERSION = 1


class OnboardError(Exception):
    def __init__(self, status: int, code: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or code)
        self.status = status
        self.code = code
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code}
        if self.message is not None and self.status == 400:
            out["message"] = self.message
        return out


def _invalid(message: str) -> OnboardError:
    return OnboardError(400, "VALIDATION_ERROR", "validation", message)


def _unavailable(reason: str, message: str) -> OnboardError:
    return OnboardError(503, "SERVICE_UNAVAILABLE", reason, message)


@dataclass(frozen=True)
class OnboardRequest:
    factory_id: str
    factory_key: str
    csr_pem: str
    send_frequency_ms: int
    firmware_version: str | None

    def __repr__(self) -> str:  # never print the factory key
        return f"OnboardRequest(factory_id={self.factory_id!r}, ...)"


def parse_request(body: Any) -> OnboardRequest:
    """`{"credentials": {"factoryId", "factoryKey"}, "csr", "sendFrequencyMs",
    "firmwareVersion"?}` → OnboardRequest, or OnboardError 400 naming the field."""
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object")
    creds = body.get("credentials")
    if not isinstance(creds, dict):
        raise _invalid("credentials must be an object with factoryId and factoryKey")
    factory_id, factory_key = creds.get("factoryId"), creds.get("factoryKey")
    if not isinstance(factory_id, str) or not factory_id.strip():
        raise _invalid("credentials.factoryId must be a non-empty string")
    if not isinstance(factory_key, str) or not factory_key:
        raise _invalid("credentials.factoryKey must be a non-empty string")
    csr = body.get("csr")
    if not isinstance(csr, str) or not csr.strip():
        raise _invalid("csr must be a PEM PKCS#10 string")
    freq = body.get("sendFrequencyMs")
    if isinstance(freq, bool) or not isinstance(freq, int) or freq < 1:
        raise _invalid("sendFrequencyMs must be an integer >= 1")
    if freq > 2**31 - 1:
        raise _invalid("sendFrequencyMs is too large")
    firmware = body.get("firmwareVersion")
    if firmware is not None and (not isinstance(firmware, str) or len(firmware) > 256):
        raise _invalid("firmwareVersion must be a string (at most 256 characters)")
    return OnboardRequest(factory_id, factory_key, csr, freq, firmware or None)


@dataclass(frozen=True)
class Onboarded:
    gateway_id: str
    tenant_id: str
    certificate: x509.Certificate
    aes_key: bytes
    send_frequency_ms: int

    def response(self) -> dict[str, Any]:
        return {
            "certPem": pki.cert_pem(self.certificate).decode("ascii"),
            "aesKey": base64.b64encode(self.aes_key).decode("ascii"),
            "identity": {"gatewayId": self.gateway_id, "tenantId": self.tenant_id},
            "sendFrequencyMs": self.send_frequency_ms,
        }

    def __repr__(self) -> str:  # never print the AES key
        return f"Onboarded(gateway_id={self.gateway_id!r}, tenant_id={self.tenant_id!r})"


class Requester(Protocol):
    async def __call__(self, subject: str, body: dict[str, Any]) -> Any:
        """Send one request; return the decoded JSON answer or raise MgmtUnreachable."""


class MgmtUnreachable(Exception):
    pass


def nats_requester(nc: Any, *, attempt_timeout_s: float, backoff_s: tuple[float, ...]) -> Requester:
    """Request-reply over NATS, retried only on transport failures (natsio.request)."""

    async def request(subject: str, body: dict[str, Any]) -> Any:
        try:
            data = await natsio.request(
                nc, subject, json.dumps(body).encode(), timeout=attempt_timeout_s, backoff=backoff_s
            )
        except natsio.RequestFailed as exc:
            raise MgmtUnreachable(str(exc)) from exc
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None  # an unreadable answer is a failing management

    return request


class Onboarding:
    def __init__(
        self,
        request: Requester,
        ca_key: pki.PrivateKey,
        ca_cert: x509.Certificate,
        *,
        cert_ttl_days: int = 90,
        deadline_s: float = 12.0,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._request = request
        self._ca_key = ca_key
        self._ca_cert = ca_cert
        self._ttl = cert_ttl_days
        self._deadline_s = deadline_s
        self._random = random_bytes

    async def onboard(self, req: OnboardRequest) -> Onboarded:
        with trio.move_on_after(self._deadline_s):
            return await self._onboard(req)
        raise _unavailable("deadline", "management did not answer in time")

    async def _ask(self, subject: str, body: dict[str, Any]) -> Any:
        try:
            return await self._request(subject, body)
        except MgmtUnreachable as exc:
            raise _unavailable("mgmt_unreachable", str(exc)) from exc

    async def _validate(self, req: OnboardRequest) -> tuple[str, str]:
        answer = await self._ask(
            contracts.MGMT_FACTORY_VALIDATE,
            {"factory_id": req.factory_id, "factory_key": req.factory_key},
        )
        if isinstance(answer, dict):
            error = answer.get("error")
            if error == "INVALID":
                raise OnboardError(401, "INVALID_CREDENTIALS", "invalid_credentials")
            if error == "ALREADY_PROVISIONED":
                raise OnboardError(409, "ALREADY_PROVISIONED", "already_provisioned")
            gateway_id, tenant_id = answer.get("gateway_id"), answer.get("tenant_id")
            if error is None and is_uuid(gateway_id) and is_uuid(tenant_id):
                return str(gateway_id).lower(), str(tenant_id).lower()
        raise _unavailable("mgmt_error", f"factory.validate answered {_shape(answer)}")

    def _sign(self, req: OnboardRequest, gateway_id: str, tenant_id: str) -> x509.Certificate:
        try:
            csr = pki.load_csr(req.csr_pem)
        except pki.CsrError as exc:
            raise OnboardError(400, "MALFORMED_CSR", "malformed_csr", str(exc)) from None
        return pki.sign_gateway_csr(
            self._ca_key,
            self._ca_cert,
            csr,
            gateway_id=gateway_id,
            tenant_id=tenant_id,
            days=self._ttl,
        )

    async def _complete(self, req: OnboardRequest, gateway_id: str, key: bytes) -> None:
        body: dict[str, Any] = {
            "gateway_id": gateway_id,
            "key_material": base64.b64encode(key).decode("ascii"),
            "key_version": KEY_VERSION,
            "send_frequency_ms": req.send_frequency_ms,
        }
        if req.firmware_version is not None:
            body["firmware_version"] = req.firmware_version
        answer = await self._ask(contracts.MGMT_PROVISIONING_COMPLETE, body)
        if isinstance(answer, dict) and answer.get("success") is True:
            return
        # Refused. The usual cause is a concurrent onboarding with the same factory id
        # that completed first: ask again, so that the loser gets 409, not 503.
        again = await self._ask(
            contracts.MGMT_FACTORY_VALIDATE,
            {"factory_id": req.factory_id, "factory_key": req.factory_key},
        )
        if isinstance(again, dict) and again.get("error") == "ALREADY_PROVISIONED":
            raise OnboardError(409, "ALREADY_PROVISIONED", "already_provisioned")
        raise _unavailable("mgmt_error", f"provisioning.complete answered {_shape(answer)}")

    async def _onboard(self, req: OnboardRequest) -> Onboarded:
        gateway_id, tenant_id = await self._validate(req)
        cert = self._sign(req, gateway_id, tenant_id)
        key = self._random(AES_KEY_BYTES)
        await self._complete(req, gateway_id, key)
        return Onboarded(gateway_id, tenant_id, cert, key, req.send_frequency_ms)


def _shape(answer: Any) -> str:
    """A log-safe description of an unexpected answer (never its secrets)."""
    if isinstance(answer, dict):
        return (
            "{"
            + ", ".join(f"{k}: {answer[k]!r}" for k in ("error", "success") if k in answer)
            + "}"
        )
    return type(answer).__name__
