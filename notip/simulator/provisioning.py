"""Onboarding with the Provisioning Service (docs/contracts.md#provisioning-http), over HTTP.

`{PROVISIONING_URL}/api/provision/onboard` with factory credentials and a CSR for a
fresh RSA-2048 key; 15 s per attempt; transient failures (503, timeouts, connection
errors) retried with backoff. httpx runs on Trio through anyio.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import trio
from cryptography.hazmat.primitives.asymmetric import rsa

from notip import pki
from notip.backoff import retry
from notip.simulator.errors import ApiError

log = logging.getLogger("notip.simulator.provisioning")

ONBOARD_PATH = "/api/provision/onboard"

# Provisioning's error status → our gRPC code (→ REST status through one table).
PASS_THROUGH: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    409: grpc.StatusCode.ALREADY_EXISTS,
}


@dataclass(frozen=True)
class Credentials:
    """What onboarding yields: never logged, never returned by the API."""

    key_pem: str = field(repr=False)
    cert_pem: str = field(repr=False)
    aes_key: bytes = field(repr=False)
    gateway_id: str = ""
    tenant_id: str = ""
    send_frequency_ms: int = 0


def new_key_and_csr() -> tuple[str, str]:
    """An RSA-2048 key and its CSR (what deployed gateways send). CPU-bound: call it
    on a worker thread."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return pki.key_pem(key).decode(), pki.make_gateway_csr(key).decode()


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else f"HTTP {response.status_code}"


def _parse_success(body: Any, key_pem: str) -> Credentials:
    try:
        identity = body["identity"]
        cert_pem = body["certPem"]
        aes_key = base64.b64decode(body["aesKey"], validate=True)
        gateway_id = str(uuid.UUID(identity["gatewayId"]))
        tenant_id = str(identity["tenantId"])
        freq = body.get("sendFrequencyMs")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ValueError(f"unexpected onboarding answer ({type(exc).__name__})") from None
    if not isinstance(cert_pem, str) or "BEGIN CERTIFICATE" not in cert_pem:
        raise ValueError("onboarding answer has no certificate")
    if len(aes_key) != 32:
        raise ValueError("onboarding answer's aesKey is not 32 bytes")
    if not tenant_id:
        raise ValueError("onboarding answer has no tenant")
    if not isinstance(freq, int) or isinstance(freq, bool) or freq <= 0:
        freq = 0
    return Credentials(
        key_pem=key_pem,
        cert_pem=cert_pem,
        aes_key=aes_key,
        gateway_id=gateway_id,
        tenant_id=tenant_id,
        send_frequency_ms=freq,
    )


class _Transient(Exception):
    """An onboarding attempt worth repeating (timeout, unreachable, 503)."""


class ProvisioningClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 15.0,
        backoff_s: Sequence[float] = (0.5, 1.0, 2.0),
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + ONBOARD_PATH
        self.timeout_s = timeout_s
        self.backoff_s = tuple(backoff_s)
        self._client = client or httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._client.aclose()

    async def onboard(
        self,
        *,
        factory_id: str,
        factory_key: str,
        send_frequency_ms: int,
        firmware_version: str,
    ) -> Credentials:
        """Raises ApiError: 400/401/409 passed through, UNAVAILABLE (503) when the
        service cannot be reached or keeps failing."""
        key_pem, csr_pem = await trio.to_thread.run_sync(new_key_and_csr)
        body: dict[str, Any] = {
            "credentials": {"factoryId": factory_id, "factoryKey": factory_key},
            "csr": csr_pem,
            "sendFrequencyMs": send_frequency_ms,
        }
        if firmware_version:
            body["firmwareVersion"] = firmware_version
        attempts = 0

        async def attempt() -> Credentials:
            nonlocal attempts
            attempts += 1
            try:
                # Shielded (and bounded by the timeout): once the request is out, the
                # service may issue credentials that cannot be issued again; a
                # cancelled caller must not throw the answer away.
                with trio.CancelScope(shield=True):
                    response = await self._client.post(self.url, json=body, timeout=self.timeout_s)
            except httpx.TimeoutException:
                reason = "provisioning service timed out"
            except httpx.TransportError as exc:
                reason = f"provisioning service unreachable ({type(exc).__name__})"
            else:
                if response.status_code == 201:
                    try:
                        return _parse_success(response.json(), key_pem)
                    except ValueError as exc:
                        raise ApiError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
                code = _error_code(response)
                if response.status_code in PASS_THROUGH:
                    raise ApiError(PASS_THROUGH[response.status_code], code)
                reason = f"provisioning service answered {response.status_code} {code}"
                if response.status_code != 503:  # 500 and friends: not transient
                    raise ApiError(grpc.StatusCode.UNAVAILABLE, reason)
            log.warning(
                "onboarding attempt failed",
                extra={"factory_id": factory_id, "attempt": attempts, "reason": reason},
            )
            raise _Transient(reason)

        try:
            return await retry(attempt, backoff=self.backoff_s, retry_on=_Transient)
        except _Transient as exc:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
