"""Every REST route of docs/contracts.md#simulator-rest-api against the running daemon: exact codes and JSON
shapes, bad input → 400 (never 500)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import httpx

from notip.localservers import free_port
from notip.simulator.settings import Settings

from .conftest import SimHandle, running_simulator

SENSOR_KEYS = {"id", "gatewayId", "type", "minRange", "maxRange", "algorithm", "createdAt"}


async def test_gateway_routes(sim: SimHandle) -> None:
    http = sim.http
    seeded = await sim.seed()
    base = {"factoryKey": seeded.factory_key, "model": "m", "firmwareVersion": "1.0.0"}

    # bad input
    for body in (
        {"factoryId": seeded.factory_id},
        {"factoryKey": "k"},
        {"factoryId": "x", "factoryKey": "k", "sendFrequencyMs": -1},
    ):
        r = await http.post("/sim/gateways", json=body)
        assert r.status_code == 400 and r.json()["error"], body
    r = await http.post(
        "/sim/gateways", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    # 401 passed through from provisioning
    r = await http.post(
        "/sim/gateways", json={**base, "factoryId": seeded.factory_id, "factoryKey": "wrong-key"}
    )
    assert (r.status_code, r.json()) == (401, {"error": "INVALID_CREDENTIALS"})

    # snake_case accepted; provisioning's sendFrequencyMs honoured when none was given
    r = await http.post(
        "/sim/gateways",
        json={
            "factory_id": seeded.factory_id,
            "factory_key": seeded.factory_key,
            "model": "m2",
            "firmware_version": "2.0",
        },
    )
    assert r.status_code == 201, r.text
    gw = r.json()
    assert gw["model"] == "m2" and gw["firmwareVersion"] == "2.0"
    assert gw["sendFrequencyMs"] == sim.settings.default_send_frequency_ms
    gid = gw["id"]

    # 409: locally known, and (after a local delete) provisioning's ALREADY_PROVISIONED
    r = await http.post("/sim/gateways", json={**base, "factoryId": seeded.factory_id})
    assert r.status_code == 409

    r = await http.get("/sim/gateways")
    assert r.status_code == 200 and [g["id"] for g in r.json()] == [gid]
    r = await http.get(f"/sim/gateways/{gid}")
    assert r.status_code == 200 and r.json()["id"] == gid
    assert (await http.get(f"/sim/gateways/{uuid.uuid4()}")).status_code == 404
    assert (await http.get("/sim/gateways/nope")).status_code == 400
    for action in ("stop", "start"):
        r = await http.post(f"/sim/gateways/{gid}/{action}")
        assert (r.status_code, r.content) == (204, b"")
        assert (await http.post(f"/sim/gateways/{uuid.uuid4()}/{action}")).status_code == 404
    r = await http.delete(f"/sim/gateways/{gid}")
    assert (r.status_code, r.content) == (204, b"")
    assert (await http.get(f"/sim/gateways/{gid}")).status_code == 404
    assert (await http.delete(f"/sim/gateways/{gid}")).status_code == 404
    assert sim.sample("notip_sim_gateways_running") == 0
    r = await http.post("/sim/gateways", json={**base, "factoryId": seeded.factory_id})
    assert (r.status_code, r.json()) == (409, {"error": "ALREADY_PROVISIONED"})

    r = await http.get("/health")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = await http.get("/openapi.json")
    assert r.status_code == 200 and "/sim/gateways/bulk" in r.json()["paths"]


async def test_sensor_routes(sim: SimHandle) -> None:
    http = sim.http
    gw, _ = await sim.create(send_frequency_ms=1000)
    gid = gw["id"]
    r = await http.post(
        f"/sim/gateways/{gid}/sensors",
        json={"type": "pressure", "min_range": 950, "max_range": 1050, "algorithm": "spike"},
    )
    assert r.status_code == 201, r.text
    sensor = r.json()
    assert set(sensor) == SENSOR_KEYS
    assert (
        sensor["gatewayId"],
        sensor["type"],
        sensor["minRange"],
        sensor["maxRange"],
        sensor["algorithm"],
    ) == (
        gid,
        "pressure",
        950,
        1050,
        "spike",
    )
    bad: list[dict[str, Any]] = [
        {"type": "lava", "minRange": 0, "maxRange": 1},
        {"type": "humidity", "minRange": 5, "maxRange": 5},
        {"type": "humidity", "minRange": 6, "maxRange": 5},
        {"type": "humidity", "minRange": 0, "maxRange": 1, "algorithm": "chaos"},
        {"type": "humidity", "minRange": "low", "maxRange": 1},
        {},
    ]
    for body in bad:
        r = await http.post(f"/sim/gateways/{gid}/sensors", json=body)
        assert r.status_code == 400 and r.json()["error"], body
    r = await http.post(
        f"/sim/gateways/{uuid.uuid4()}/sensors",
        json={"type": "humidity", "minRange": 0, "maxRange": 1},
    )
    assert r.status_code == 404
    r = await http.get(f"/sim/gateways/{gid}/sensors")
    assert r.status_code == 200 and [s["id"] for s in r.json()] == [sensor["id"]]
    assert (await http.get(f"/sim/gateways/{uuid.uuid4()}/sensors")).status_code == 404
    r = await http.delete(f"/sim/sensors/{sensor['id']}")
    assert (r.status_code, r.content) == (204, b"")
    assert (await http.delete(f"/sim/sensors/{sensor['id']}")).status_code == 404
    assert (await http.delete("/sim/sensors/123")).status_code == 400
    assert (await http.get(f"/sim/gateways/{gid}/sensors")).json() == []


async def test_provisioning_unreachable_is_503(sim_settings: Settings) -> None:
    settings = dataclasses.replace(
        sim_settings,
        provisioning_url=f"http://127.0.0.1:{free_port()}",
        provisioning_backoff_s=(0.05,),
    )
    async with running_simulator(settings) as sim:
        r = await sim.http.post("/sim/gateways", json={"factoryId": "f", "factoryKey": "k"})
        assert r.status_code == 503 and "unreachable" in r.json()["error"]
        r = await sim.http.post(
            "/sim/gateways/bulk", json={"factoryIds": ["a", "b"], "factoryKey": "k"}
        )
        assert r.status_code == 207
        assert r.json()["gateways"] == [] and all("unreachable" in e for e in r.json()["errors"])
        assert sim.sample("notip_sim_provisioning_errors_total") == 3
        async with httpx.AsyncClient() as client:
            metrics = await client.get(sim.metrics_url)
        assert "notip_sim_provisioning_errors_total 3.0" in metrics.text
