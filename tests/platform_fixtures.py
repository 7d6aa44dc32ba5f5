"""The platform stand-ins as pytest fixtures: a running `notip mgmt` and a running
`notip provisioning`, in-process, on the session's nats-server (mTLS) and PKI.

Registered for the whole suite by `pytest_plugins = ["tests.platform_fixtures"]` in
tests/conftest.py. Both fixtures are function-scoped async (pytest-trio) fixtures;
each starts in well under 2 s and stops cleanly by cancellation at teardown.

Fixtures
--------
``mgmt`` → :class:`MgmtHandle`
    A running management stand-in with a fresh SQLite file in ``tmp_path`` and its
    own durable consumer names (so several tests and instances never share acks or
    alerts). Depends on ``aio_loop``, ``nats_server``, ``pki``.

    ``url`` (admin base URL, e.g. ``http://127.0.0.1:PORT``), ``info``
    (:class:`ManagementInfo`), ``settings``, ``http`` (an ``httpx.AsyncClient`` with
    that base URL) and helpers, all ``async``:

    - ``create_gateway(tenant_id=None, factory_id=None, factory_key=FACTORY_KEY,
      model="sim-1") -> gateway_id`` — None means a fresh uuid4 / unique factory id;
    - ``new_gateway(...) -> SeededGateway`` — same, returns every field
      (``gateway_id, tenant_id, factory_id, factory_key, model``);
    - ``get_gateway(gateway_id) -> dict`` (``GET /gateways/{id}``);
    - ``get_key(gateway_id) -> bytes`` — the 32-byte AES key (AssertionError when the
      gateway is not provisioned);
    - ``pause(gateway_id)``, ``resume(gateway_id)``, ``decommission(gateway_id)``;
    - ``set_tenant_timeout(tenant_id, ms)``, ``set_gateway_timeout(gateway_id, ms)``,
      ``clear_gateway_timeout(gateway_id)``;
    - ``send_config(gateway_id, *, send_frequency_ms=None, status=None) -> dict`` and
      ``send_firmware(gateway_id, firmware_version, download_url) -> dict``
      (``{command_id, status: "queued", issued_at}``);
    - ``command_status(gateway_id, command_id) -> dict`` and
      ``wait_command_status(gateway_id, command_id, *statuses, timeout=15) -> dict``
      (default statuses: anything but ``queued``);
    - ``alerts(tenant_id=None, gateway_id=None) -> list[dict]`` and
      ``wait_alerts(tenant_id=None, gateway_id=None, count=1, timeout=15)``.

    Every helper asserts the expected HTTP status, so a failing call fails the test
    with the answer's body.

``provisioning`` → ``str``
    Base URL of a running provisioning stand-in that signs with the session PKI's CA
    (``pki.ca_cert``); onboarding is at ``f"{provisioning}/provision/onboard"`` (and
    ``/api/provision/onboard``). Depends on ``mgmt``.

Building blocks (for tests that need two instances, no management, other settings)
-----------------------------------------------------------------------------------
- ``mgmt_settings(nats_server, pki, db_path, **overrides) -> management Settings``
- ``provisioning_settings(nats_server, pki, **overrides) -> provisioning Settings``
- ``async with running_mgmt(settings) as handle`` → :class:`MgmtHandle`
- ``async with running_provisioning(settings) as info`` → ``ProvisioningInfo``
  (``info.http_url``)
- ``gateway_csr(key=None) -> (private_key, csr_pem_str)`` — RSA-2048 by default
- ``onboard(url, factory_id, factory_key, *, csr=None, send_frequency_ms=1000)
  -> httpx.Response`` — one POST to ``{url}/provision/onboard``.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import rsa

from notip import natsio
from notip import pki as pkimod
from notip.localservers import NatsServer
from notip.platform.management import service as mgmt_service
from notip.platform.management.service import ManagementInfo
from notip.platform.management.settings import Settings as MgmtSettings
from notip.platform.provisioning import service as prov_service
from notip.platform.provisioning.service import ProvisioningInfo
from notip.platform.provisioning.settings import Settings as ProvisioningSettings
from tests.waiting import eventually

FACTORY_KEY = "factory-secret-0001"
HTTP_TIMEOUT_S = 20.0


def _tls(paths: pkimod.PkiPaths, service: str) -> natsio.TlsFiles:
    return natsio.TlsFiles(paths.ca_cert, paths.cert(service), paths.key(service))


def mgmt_settings(
    nats_server: NatsServer, pki_paths: pkimod.PkiPaths, db_path: Path, **overrides: Any
) -> MgmtSettings:
    """Test settings: loopback port 0, unique durable names that the server forgets
    30 s after the instance stops pulling."""
    base = MgmtSettings(
        nats_url=nats_server.url,
        nats_tls=_tls(pki_paths, "management-api"),
        db_path=db_path,
        http_addr="127.0.0.1:0",
        durable_prefix=f"mgmt-test-{uuid.uuid4().hex[:12]}",
        consumer_inactive_threshold_s=30.0,
    )
    return dataclasses.replace(base, **overrides)


def provisioning_settings(
    nats_server: NatsServer, pki_paths: pkimod.PkiPaths, **overrides: Any
) -> ProvisioningSettings:
    base = ProvisioningSettings(
        nats_url=nats_server.url,
        nats_tls=_tls(pki_paths, "provisioning"),
        ca_certs_path=pki_paths.root,
        ca_key_path=pki_paths.ca_key,
        http_addr="127.0.0.1:0",
    )
    return dataclasses.replace(base, **overrides)


@dataclass(frozen=True)
class SeededGateway:
    gateway_id: str
    tenant_id: str
    factory_id: str
    factory_key: str
    model: str


def _expect(resp: httpx.Response, status: int) -> httpx.Response:
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text}"
    )
    return resp


@dataclass
class MgmtHandle:
    url: str
    info: ManagementInfo
    settings: MgmtSettings
    http: httpx.AsyncClient

    async def new_gateway(
        self,
        tenant_id: str | None = None,
        factory_id: str | None = None,
        factory_key: str = FACTORY_KEY,
        model: str = "sim-1",
    ) -> SeededGateway:
        tenant_id = tenant_id or str(uuid.uuid4())
        factory_id = factory_id or f"factory-{uuid.uuid4().hex[:16]}"
        resp = await self.http.post(
            "/admin/gateways",
            json={
                "factory_id": factory_id,
                "factory_key": factory_key,
                "tenant_id": tenant_id,
                "model": model,
            },
        )
        gateway_id = _expect(resp, 201).json()["id"]
        return SeededGateway(gateway_id, tenant_id, factory_id, factory_key, model)

    async def create_gateway(
        self,
        tenant_id: str | None = None,
        factory_id: str | None = None,
        factory_key: str = FACTORY_KEY,
        model: str = "sim-1",
    ) -> str:
        return (await self.new_gateway(tenant_id, factory_id, factory_key, model)).gateway_id

    async def get_gateway(self, gateway_id: str) -> dict[str, Any]:
        return _expect(await self.http.get(f"/gateways/{gateway_id}"), 200).json()

    async def get_key(self, gateway_id: str) -> bytes:
        import base64

        keys = _expect(await self.http.get("/keys", params={"gateway_id": gateway_id}), 200).json()
        assert keys, f"gateway {gateway_id} has no key (not provisioned)"
        return base64.b64decode(keys[0]["key_material"])

    async def pause(self, gateway_id: str) -> None:
        _expect(await self.http.post(f"/gateways/{gateway_id}/pause"), 204)

    async def resume(self, gateway_id: str) -> None:
        _expect(await self.http.post(f"/gateways/{gateway_id}/resume"), 204)

    async def decommission(self, gateway_id: str) -> None:
        _expect(await self.http.delete(f"/gateways/{gateway_id}"), 204)

    async def set_tenant_timeout(self, tenant_id: str, timeout_ms: int) -> None:
        body = {"tenant_id": tenant_id, "tenant_unreachable_timeout_ms": timeout_ms}
        _expect(await self.http.put("/alerts/config/default", json=body), 200)

    async def set_gateway_timeout(self, gateway_id: str, timeout_ms: int) -> None:
        body = {"gateway_unreachable_timeout_ms": timeout_ms}
        _expect(await self.http.put(f"/alerts/config/gateway/{gateway_id}", json=body), 200)

    async def clear_gateway_timeout(self, gateway_id: str) -> None:
        _expect(await self.http.delete(f"/alerts/config/gateway/{gateway_id}"), 204)

    async def send_config(
        self, gateway_id: str, *, send_frequency_ms: int | None = None, status: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if send_frequency_ms is not None:
            body["send_frequency_ms"] = send_frequency_ms
        if status is not None:
            body["status"] = status
        return _expect(await self.http.post(f"/cmd/{gateway_id}/config", json=body), 201).json()

    async def send_firmware(
        self, gateway_id: str, firmware_version: str, download_url: str
    ) -> dict[str, Any]:
        body = {"firmware_version": firmware_version, "download_url": download_url}
        return _expect(await self.http.post(f"/cmd/{gateway_id}/firmware", json=body), 201).json()

    async def command_status(self, gateway_id: str, command_id: str) -> dict[str, Any]:
        resp = await self.http.get(f"/cmd/{gateway_id}/status/{command_id}")
        return _expect(resp, 200).json()

    async def wait_command_status(
        self, gateway_id: str, command_id: str, *statuses: str, timeout: float = 15.0
    ) -> dict[str, Any]:
        async def settled() -> dict[str, Any] | None:
            status = await self.command_status(gateway_id, command_id)
            done = (status["status"] in statuses) if statuses else status["status"] != "queued"
            return status if done else None

        return await eventually(
            settled,
            timeout=timeout,
            what=f"command {command_id} to be {' or '.join(statuses) or 'no longer queued'}",
        )

    async def alerts(
        self, tenant_id: str | None = None, gateway_id: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("tenant_id", tenant_id), ("gateway_id", gateway_id)) if v}
        return _expect(await self.http.get("/alerts", params=params), 200).json()

    async def wait_alerts(
        self,
        tenant_id: str | None = None,
        gateway_id: str | None = None,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]]:
            found = await self.alerts(tenant_id, gateway_id)
            return found if len(found) >= count else []

        return await eventually(enough, timeout=timeout, what=f"{count} alert(s)")


@asynccontextmanager
async def running_mgmt(settings: MgmtSettings, **serve_kwargs: Any) -> AsyncIterator[MgmtHandle]:
    """Run `notip mgmt` in-process (needs the trio-asyncio loop: `aio_loop`)."""
    async with trio.open_nursery() as nursery:
        info: ManagementInfo = await nursery.start(
            functools.partial(mgmt_service.serve, settings, **serve_kwargs)
        )
        async with httpx.AsyncClient(base_url=info.http_url, timeout=HTTP_TIMEOUT_S) as http:
            yield MgmtHandle(info.http_url, info, settings, http)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_provisioning(settings: ProvisioningSettings) -> AsyncIterator[ProvisioningInfo]:
    """Run `notip provisioning` in-process (needs the trio-asyncio loop: `aio_loop`)."""
    async with trio.open_nursery() as nursery:
        info: ProvisioningInfo = await nursery.start(prov_service.serve, settings)
        yield info
        nursery.cancel_scope.cancel()


def gateway_csr(key: pkimod.PrivateKey | None = None) -> tuple[pkimod.PrivateKey, str]:
    """What a gateway sends: its key (RSA-2048 unless given) and a PEM CSR for it."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, pkimod.make_gateway_csr(key).decode("ascii")


async def onboard(
    url: str,
    factory_id: str,
    factory_key: str,
    *,
    csr: str | None = None,
    send_frequency_ms: int = 1000,
    path: str = "/provision/onboard",
) -> httpx.Response:
    body = {
        "credentials": {"factoryId": factory_id, "factoryKey": factory_key},
        "csr": csr if csr is not None else gateway_csr()[1],
        "sendFrequencyMs": send_frequency_ms,
    }
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        return await client.post(url + path, json=body)


@pytest.fixture
async def mgmt(
    aio_loop: None, nats_server: NatsServer, pki: pkimod.PkiPaths, tmp_path: Path
) -> AsyncIterator[MgmtHandle]:
    settings = mgmt_settings(nats_server, pki, tmp_path / "mgmt.db")
    async with running_mgmt(settings) as handle:
        yield handle


@pytest.fixture
async def provisioning(
    mgmt: MgmtHandle, nats_server: NatsServer, pki: pkimod.PkiPaths
) -> AsyncIterator[str]:
    async with running_provisioning(provisioning_settings(nats_server, pki)) as info:
        yield info.http_url
