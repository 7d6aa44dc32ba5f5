"""The admin HTTP surface of docs/contracts.md#management-admin-http: routes, answers, and bad input → 4xx with a
JSON error and nothing half-written."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.platform_fixtures import MgmtHandle


def _err(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    return str(body["error"])


async def test_gateway_routes(mgmt: MgmtHandle) -> None:
    gw = await mgmt.new_gateway(model="edge-9")
    listed = (await mgmt.http.get("/admin/gateways", params={"tenant_id": gw.tenant_id})).json()
    assert len(listed) == 1
    row = listed[0]
    assert {k: row[k] for k in ("id", "tenant_id", "factory_id", "model", "provisioned")} == {
        "id": gw.gateway_id,
        "tenant_id": gw.tenant_id,
        "factory_id": gw.factory_id,
        "model": "edge-9",
        "provisioned": False,
    }
    assert "factory_key" not in str(row) and gw.factory_key not in str(row)
    one = await mgmt.get_gateway(gw.gateway_id)
    for field in (
        "id",
        "tenant_id",
        "status",
        "lifecycle",
        "last_seen_at",
        "provisioned",
        "firmware_version",
        "send_frequency_ms",
    ):
        assert field in one
    assert (one["lifecycle"], one["status"]) == ("active", "provisioning")
    await mgmt.pause(gw.gateway_id)
    assert (await mgmt.get_gateway(gw.gateway_id))["lifecycle"] == "paused"
    await mgmt.resume(gw.gateway_id)
    assert (await mgmt.get_gateway(gw.gateway_id))["lifecycle"] == "active"
    keys = await mgmt.http.get("/keys", params={"id": gw.gateway_id})
    assert (keys.status_code, keys.json()) == (200, [])  # not provisioned yet
    health = await mgmt.http.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    metrics = await mgmt.http.get("/metrics")
    assert metrics.status_code == 200 and "# TYPE notip_mgmt_requests" in metrics.text


async def test_alert_config_routes(mgmt: MgmtHandle) -> None:
    gw = await mgmt.new_gateway()
    resp = await mgmt.http.put(
        "/alerts/config/default",
        json={"tenant_id": gw.tenant_id, "tenant_unreachable_timeout_ms": 120000},
    )
    assert resp.status_code == 200
    resp = await mgmt.http.put(
        f"/alerts/config/gateway/{gw.gateway_id}", json={"gateway_unreachable_timeout_ms": 15000}
    )
    assert resp.status_code == 200
    assert (await mgmt.get_gateway(gw.gateway_id))["timeout_ms"] == 15000
    resp = await mgmt.http.delete(f"/alerts/config/gateway/{gw.gateway_id}")
    assert resp.status_code == 204
    assert (await mgmt.get_gateway(gw.gateway_id))["timeout_ms"] is None


async def test_duplicate_factory_id_is_409_and_writes_nothing(mgmt: MgmtHandle) -> None:
    gw = await mgmt.new_gateway()
    resp = await mgmt.http.post(
        "/admin/gateways",
        json={
            "factory_id": gw.factory_id,
            "factory_key": "k",
            "tenant_id": str(uuid.uuid4()),
            "model": "m",
        },
    )
    assert "factory_id" in _err(resp, 409)
    all_gateways = (await mgmt.http.get("/admin/gateways")).json()
    assert [g["id"] for g in all_gateways] == [gw.gateway_id]


BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"factory_key": "k", "tenant_id": str(uuid.uuid4()), "model": "m"}, "factory_id"),
    ({"factory_id": "F", "tenant_id": str(uuid.uuid4()), "model": "m"}, "factory_key"),
    ({"factory_id": "F", "factory_key": "k", "tenant_id": "tenant-1", "model": "m"}, "tenant_id"),
    ({"factory_id": "F", "factory_key": "k", "tenant_id": str(uuid.uuid4())}, "model"),
    (
        {"factory_id": "", "factory_key": "k", "tenant_id": str(uuid.uuid4()), "model": "m"},
        "factory_id",
    ),
    (
        {"factory_id": 7, "factory_key": "k", "tenant_id": str(uuid.uuid4()), "model": "m"},
        "factory_id",
    ),
    (
        {
            "factory_id": "F",
            "factory_key": "k",
            "tenant_id": str(uuid.uuid4()),
            "model": "m",
            "x": 1,
        },
        "unknown field",
    ),
]


@pytest.mark.parametrize(("body", "mentions"), BAD_CREATES)
async def test_bad_create_is_400_and_writes_nothing(
    mgmt: MgmtHandle, body: dict[str, Any], mentions: str
) -> None:
    resp = await mgmt.http.post("/admin/gateways", json=body)
    assert mentions in _err(resp, 400)
    assert (await mgmt.http.get("/admin/gateways")).json() == []


async def test_malformed_json_bodies(mgmt: MgmtHandle) -> None:
    gw = await mgmt.new_gateway()
    for method, path in (
        ("POST", "/admin/gateways"),
        ("PUT", "/alerts/config/default"),
        ("PUT", f"/alerts/config/gateway/{gw.gateway_id}"),
        ("POST", f"/cmd/{gw.gateway_id}/config"),
        ("POST", f"/cmd/{gw.gateway_id}/firmware"),
    ):
        for raw in (b"{oops", b"", b"[1, 2]"):
            resp = await mgmt.http.request(method, path, content=raw)
            _err(resp, 400)


async def test_unknown_and_malformed_ids(mgmt: MgmtHandle) -> None:
    unknown = str(uuid.uuid4())
    for method, path, status in (
        ("GET", "/gateways/not-a-uuid", 400),
        ("GET", f"/gateways/{unknown}", 404),
        ("POST", "/gateways/123/pause", 400),
        ("POST", f"/gateways/{unknown}/pause", 404),
        ("POST", f"/gateways/{unknown}/resume", 404),
        ("DELETE", f"/gateways/{unknown}", 404),
        ("DELETE", "/gateways/x", 400),
        ("DELETE", f"/alerts/config/gateway/{unknown}", 404),
        ("GET", f"/cmd/{unknown}/status/{uuid.uuid4()}", 404),
        ("GET", f"/cmd/{unknown}/status/nope", 404),
        ("GET", "/keys", 400),
        ("GET", "/keys?gateway_id=nope", 400),
        ("GET", f"/keys?gateway_id={unknown}", 404),
        ("GET", f"/admin/gateways?tenant_id={unknown}", 404),
        ("GET", "/admin/gateways?tenant_id=nope", 400),
        ("GET", "/alerts?gateway_id=nope", 400),
    ):
        _err(await mgmt.http.request(method, path), status)
    gw = await mgmt.new_gateway()
    _err(await mgmt.http.get(f"/cmd/{gw.gateway_id}/status/nope"), 400)
    _err(await mgmt.http.get(f"/cmd/{gw.gateway_id}/status/{uuid.uuid4()}"), 404)
    for body in ({"send_frequency_ms": 5}, {}):
        resp = await mgmt.http.post(f"/cmd/{unknown}/config", json=body)
        assert resp.status_code in (400, 404) and "error" in resp.json()


async def test_unknown_tenant_and_bad_timeouts_write_nothing(mgmt: MgmtHandle) -> None:
    gw = await mgmt.new_gateway()
    before = await mgmt.get_gateway(gw.gateway_id)
    unknown_tenant = {"tenant_id": str(uuid.uuid4()), "tenant_unreachable_timeout_ms": 1000}
    assert "tenant" in _err(await mgmt.http.put("/alerts/config/default", json=unknown_tenant), 404)
    for value in (-1, 0, 1.5, "1000", True, None, 2**40):
        resp = await mgmt.http.put(
            "/alerts/config/default",
            json={"tenant_id": gw.tenant_id, "tenant_unreachable_timeout_ms": value},
        )
        assert "tenant_unreachable_timeout_ms" in _err(resp, 400)
        resp = await mgmt.http.put(
            f"/alerts/config/gateway/{gw.gateway_id}",
            json={"gateway_unreachable_timeout_ms": value},
        )
        assert "gateway_unreachable_timeout_ms" in _err(resp, 400)
    _err(
        await mgmt.http.put(
            "/alerts/config/default", json={"tenant_id": "t", "tenant_unreachable_timeout_ms": 5}
        ),
        400,
    )
    assert await mgmt.get_gateway(gw.gateway_id) == before
    # nothing reached the alert configs either
    resp = await mgmt.http.put(
        f"/alerts/config/gateway/{gw.gateway_id}", json={"gateway_unreachable_timeout_ms": 5}
    )
    assert resp.status_code == 200 and (await mgmt.get_gateway(gw.gateway_id))["timeout_ms"] == 5


async def test_bad_commands_are_400_and_nothing_is_published(mgmt: MgmtHandle) -> None:
    gw = await mgmt.new_gateway()
    for path, body, mentions in (
        ("config", {}, "at least one"),
        ("config", {"send_frequency_ms": -100}, "send_frequency_ms"),
        ("config", {"send_frequency_ms": 0}, "send_frequency_ms"),
        ("config", {"status": "dancing"}, "status"),
        ("config", {"send_frequency_ms": 5, "firmware_version": "x"}, "unknown field"),
        ("firmware", {"firmware_version": "1"}, "download_url"),
        ("firmware", {"firmware_version": "1", "download_url": "not a url"}, "download_url"),
        ("firmware", {"download_url": "https://x/y"}, "firmware_version"),
    ):
        resp = await mgmt.http.post(f"/cmd/{gw.gateway_id}/{path}", json=body)
        assert mentions in _err(resp, 400), (path, body)
    metrics = (await mgmt.http.get("/metrics")).text
    assert "notip_mgmt_commands_published_total{" not in metrics


async def test_unknown_routes_and_methods_answer_json(mgmt: MgmtHandle, provisioning: str) -> None:
    _err(await mgmt.http.get("/no/such/route"), 404)
    _err(await mgmt.http.put("/admin/gateways", json={}), 405)
    async with httpx.AsyncClient() as client:
        _err(await client.get(provisioning + "/provision/onboard"), 405)
        _err(await client.get(provisioning + "/nothing"), 404)


async def test_unpaired_surrogate_escapes_are_400_not_500(mgmt: MgmtHandle) -> None:
    """`"\\ud800"` is valid JSON but no UTF-8 store can hold it: 400, nothing written."""
    gw = await mgmt.new_gateway()
    tenant = str(uuid.uuid4())
    for method, path, raw in (
        (
            "POST",
            "/admin/gateways",
            '{"factory_id": "f\\ud800", "factory_key": "k", "tenant_id": "T", "model": "m"}'.replace(
                '"T"', f'"{tenant}"'
            ),
        ),
        (
            "POST",
            "/admin/gateways",
            '{"factory_id": "f", "factory_key": "k", "tenant_id": "T", "model": "\\udfff"}'.replace(
                '"T"', f'"{tenant}"'
            ),
        ),
        (
            "POST",
            f"/cmd/{gw.gateway_id}/firmware",
            '{"firmware_version": "2\\ud800", "download_url": "https://x/y"}',
        ),
    ):
        resp = await mgmt.http.request(method, path, content=raw.encode())
        _err(resp, 400)
        assert "surrogate" in resp.json()["message"], (path, resp.text)
    listed = (await mgmt.http.get("/admin/gateways", params={"tenant_id": gw.tenant_id})).json()
    assert [g["id"] for g in listed] == [gw.gateway_id]
    metrics = (await mgmt.http.get("/metrics")).text
    assert "notip_mgmt_commands_published_total{" not in metrics
