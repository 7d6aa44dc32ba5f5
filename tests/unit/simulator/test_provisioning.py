"""The onboarding client: retries, error mapping, and credentials that survive a
cancelled caller (httpx MockTransport; the real service is in the integration tests)."""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import trio

from notip.simulator.errors import ApiError
from notip.simulator.metrics import Metrics
from notip.simulator.provisioning import ProvisioningClient
from notip.simulator.registry import CreateSpec, Registry
from notip.simulator.store import Store

from .conftest import make_settings
from .test_supervisor import FakeRuntime

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def ok_body(request: httpx.Request, gateway_id: str | None = None) -> dict[str, Any]:
    sent = json.loads(request.content)
    return {
        "certPem": CERT,
        "aesKey": base64.b64encode(os.urandom(32)).decode(),
        "identity": {"gatewayId": gateway_id or str(uuid.uuid4()), "tenantId": str(uuid.uuid4())},
        "sendFrequencyMs": sent["sendFrequencyMs"],
    }


def client(handler: Any, **kw: Any) -> ProvisioningClient:
    transport = httpx.MockTransport(handler)
    return ProvisioningClient(
        "http://prov:3000/",
        backoff_s=(0.01, 0.01, 0.01),
        client=httpx.AsyncClient(transport=transport),
        **kw,
    )


async def test_request_shape_and_transient_503_retried() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            return httpx.Response(503, json={"error": "SERVICE_UNAVAILABLE"})
        return httpx.Response(201, json=ok_body(request))

    creds = await client(handler).onboard(
        factory_id="f1", factory_key="k1", send_frequency_ms=750, firmware_version="1.2"
    )
    assert len(seen) == 3
    assert seen[0].url == "http://prov:3000/api/provision/onboard"
    body = json.loads(seen[0].content)
    assert body["credentials"] == {"factoryId": "f1", "factoryKey": "k1"}
    assert body["sendFrequencyMs"] == 750 and body["firmwareVersion"] == "1.2"
    assert "BEGIN CERTIFICATE REQUEST" in body["csr"]
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = x509.load_pem_x509_csr(body["csr"].encode()).public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert len(creds.aes_key) == 32 and creds.send_frequency_ms == 750
    assert "PRIVATE KEY" in creds.key_pem


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "VALIDATION_ERROR", grpc.StatusCode.INVALID_ARGUMENT),
        (401, "INVALID_CREDENTIALS", grpc.StatusCode.UNAUTHENTICATED),
        (409, "ALREADY_PROVISIONED", grpc.StatusCode.ALREADY_EXISTS),
        (500, "INTERNAL_ERROR", grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_errors_are_not_retried(status: int, code: str, expected: grpc.StatusCode) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"error": code})

    with pytest.raises(ApiError) as info:
        await client(handler).onboard(
            factory_id="f", factory_key="k", send_frequency_ms=1, firmware_version=""
        )
    assert info.value.code == expected and code in info.value.message
    assert calls == 1


async def test_timeouts_and_connection_errors_are_retried_then_503() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise httpx.ReadTimeout("slow", request=request)
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ApiError) as info:
        await client(handler).onboard(
            factory_id="f", factory_key="k", send_frequency_ms=1, firmware_version=""
        )
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and calls == 4


async def test_malformed_success_is_503() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = ok_body(request)
        body["aesKey"] = base64.b64encode(b"short").decode()
        return httpx.Response(201, json=body)

    with pytest.raises(ApiError) as info:
        await client(handler).onboard(
            factory_id="f", factory_key="k", send_frequency_ms=1, firmware_version=""
        )
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and "32 bytes" in info.value.message


async def test_credentials_survive_a_cancelled_caller(tmp_path: Path) -> None:
    """The caller gives up while the onboarding request is in flight: the answer is
    still received, persisted and the gateway registered."""
    gateway_id = str(uuid.uuid4())
    answered = trio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(0.5)
        answered.set()
        return httpx.Response(201, json=ok_body(request, gateway_id))

    store = Store(tmp_path / "sim.db")
    try:
        registry = Registry(
            make_settings(tmp_path), store, Metrics(), client(handler), runtime_factory=FakeRuntime
        )
        async with trio.open_nursery() as n:
            await n.start(registry.run)
            with trio.move_on_after(0.1) as scope:
                await registry.create(CreateSpec(factory_id="f1", factory_key="k"))
            assert scope.cancel_called and answered.is_set()  # gave up mid-request
            assert [g["id"] for g in await store.run(store.gateways)] == [gateway_id]
            assert registry.get(gateway_id).factory_id == "f1"
            assert registry.running(gateway_id)
            n.cancel_scope.cancel()
    finally:
        store.close()


async def test_provisioning_frequency_is_honoured_when_the_request_gave_none(
    tmp_path: Path,
) -> None:
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["sendFrequencyMs"])
        return httpx.Response(201, json={**ok_body(request), "sendFrequencyMs": 4321})

    store = Store(tmp_path / "sim.db")
    try:
        settings = make_settings(tmp_path, default_send_frequency_ms=2500)
        registry = Registry(
            settings, store, Metrics(), client(handler), runtime_factory=FakeRuntime
        )
        async with trio.open_nursery() as n:
            await n.start(registry.run)
            implicit = await registry.create(CreateSpec(factory_id="f1", factory_key="k"))
            explicit = await registry.create(
                CreateSpec(factory_id="f2", factory_key="k", send_frequency_ms=700)
            )
            n.cancel_scope.cancel()
        assert sent == [2500, 700]  # the default goes out when none was given
        assert implicit.send_frequency_ms == 4321  # ... and the service's answer wins
        assert explicit.send_frequency_ms == 700  # an explicit request value wins
    finally:
        store.close()


def test_secrets_are_not_in_reprs() -> None:
    from notip.simulator.provisioning import Credentials

    creds = Credentials(
        key_pem="PRIVATE-KEY-PEM",
        cert_pem="CERT-PEM",
        aes_key=b"A" * 32,
        gateway_id="g",
        tenant_id="t",
        send_frequency_ms=1,
    )
    spec = CreateSpec(factory_id="f", factory_key="FACTORY-SECRET")
    assert "PRIVATE-KEY-PEM" not in repr(creds) and "AAAA" not in repr(creds)
    assert "FACTORY-SECRET" not in repr(spec)


class CountingOnboarder:
    """Answers after a pause, counting how many onboardings run at once."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def onboard(self, *, factory_id: str, **kwargs: Any) -> Any:
        from notip.simulator.provisioning import Credentials

        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await trio.sleep(0.05)
            if factory_id.startswith("bad"):
                raise ApiError(grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
            return Credentials(
                key_pem="k",
                cert_pem=CERT,
                aes_key=os.urandom(32),
                gateway_id=str(uuid.uuid4()),
                tenant_id="t",
                send_frequency_ms=1000,
            )
        finally:
            self.active -= 1


async def test_bulk_is_bounded_and_index_aligned(tmp_path: Path) -> None:
    store = Store(tmp_path / "sim.db")
    onboarder = CountingOnboarder()
    try:
        registry = Registry(
            make_settings(tmp_path, bulk_concurrency=4),
            store,
            Metrics(),
            onboarder,
            runtime_factory=FakeRuntime,
        )
        ids = [f"f{i}" for i in range(12)] + ["bad-1", " ", "f3"]
        async with trio.open_nursery() as n:
            await n.start(registry.run)
            created, errors = await registry.bulk_create(
                ids, CreateSpec(factory_id="", factory_key="k")
            )
            n.cancel_scope.cancel()
        assert onboarder.peak == 4
        assert [g.factory_id for g in created] == [f"f{i}" for i in range(12)]
        assert errors[:12] == [""] * 12
        assert errors[12] == "INVALID_CREDENTIALS"
        assert errors[13] == "factoryId is required"
        assert errors[14].startswith("duplicate")
    finally:
        store.close()
