"""Anomalies against real NATS: network degradation, a real disconnect (the
connection leaves the server), outliers, and their validation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import trio

from notip import envelope
from tests.waiting import eventually

from .conftest import SimHandle, capture


async def connection_names(nats_server: Any) -> set[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        conns = (
            await client.get(f"{nats_server.monitor_url}/connz", params={"limit": 10000})
        ).json()
    return {c.get("name", "") for c in conns.get("connections", [])}


async def test_network_degradation_drops_and_ends(sim: SimHandle, nc: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=100)
    await sim.add_sensor(gw["id"])
    cap = await capture(nc, f"telemetry.data.{seeded.tenant_id}.{gw['id']}")
    await eventually(lambda: len(cap) >= 2)
    r = await sim.http.post(
        f"/sim/gateways/{gw['id']}/anomaly/network-degradation",
        json={"duration_seconds": 1.5, "packet_loss_pct": 100},
    )
    assert r.status_code == 204
    injected = trio.current_time()
    mark = len(cap)

    def lost() -> float:
        labels = {"gateway_id": gw["id"], "reason": "packet_loss"}
        return sim.sample("notip_sim_readings_dropped_total", **labels)

    await eventually(lambda: lost() >= 5)
    assert len(cap) <= mark + 1  # everything dropped meanwhile (but the tick in flight)
    assert sim.sample("notip_sim_anomalies_injected_total", type="network_degradation") == 1
    await eventually(lambda: len(cap) >= mark + 4)  # resumes once it ended
    assert trio.current_time() - injected >= 1.4


async def test_disconnect_really_closes_and_buffers_on_request(
    sim: SimHandle, nc: Any, nats_server: Any
) -> None:
    gw, seeded = await sim.create(send_frequency_ms=100)
    await sim.add_sensor(gw["id"])
    name = f"notip-sim-{gw['id']}"
    cap = await capture(nc, f"telemetry.data.{seeded.tenant_id}.{gw['id']}")
    await eventually(lambda: len(cap) >= 2)
    assert name in await connection_names(nats_server)

    # 1) without buffering: readings taken while offline are lost
    r = await sim.http.post(
        f"/sim/gateways/{gw['id']}/anomaly/disconnect", json={"duration_seconds": 1.5}
    )
    assert r.status_code == 204

    async def gone() -> bool:
        return name not in await connection_names(nats_server)

    async def present() -> bool:
        return name in await connection_names(nats_server)

    await eventually(gone)  # really closed: the server no longer has it
    assert not (await sim.gateway(gw["id"]))["connected"]
    await eventually(lambda: sim.sim.registry.get(gw["id"]).connected, timeout=15)
    await eventually(present)
    assert sim.sample("notip_sim_nats_reconnects_total", gateway_id=gw["id"]) >= 1
    assert (
        sim.sample("notip_sim_readings_dropped_total", gateway_id=gw["id"], reason="offline") >= 5
    )

    # 2) with buffering: what was read offline is published on reconnect
    before = len(cap)
    r = await sim.http.post(
        f"/sim/gateways/{gw['id']}/anomaly/disconnect",
        json={"duration_seconds": 1.0, "buffer_while_offline": True},
    )
    assert r.status_code == 204
    await eventually(lambda: not sim.sim.registry.get(gw["id"]).connected)
    offline_from = envelope.iso_now()
    await eventually(lambda: sim.sim.registry.get(gw["id"]).connected, timeout=15)
    offline_to = envelope.iso_now()
    await eventually(
        lambda: (
            sum(1 for b in cap.bodies()[before:] if offline_from < b["timestamp"] < offline_to) >= 5
        )
    )
    assert sim.sample("notip_sim_anomalies_injected_total", type="disconnect") == 2


async def test_outliers(sim: SimHandle, nc: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=100)
    cold = await sim.add_sensor(gw["id"], "temperature", -40, -10)
    cap = await capture(nc, f"telemetry.data.{seeded.tenant_id}.{gw['id']}")
    key = await sim.mgmt.get_key(gw["id"])  # type: ignore[union-attr]
    await eventually(lambda: len(cap) >= 1)

    def values() -> list[float]:
        return [envelope.open_envelope(key, b)["value"] for b in cap.bodies()]

    r = await sim.http.post(f"/sim/sensors/{cold['id']}/anomaly/outlier", json={"value": 999.5})
    assert r.status_code == 204
    await eventually(lambda: 999.5 in values())
    r = await sim.http.post(f"/sim/sensors/{cold['id']}/anomaly/outlier", json={})
    assert r.status_code == 204
    await eventually(lambda: any(v > -10 and v != 999.5 for v in values()))
    outliers = [v for v in values() if not -40 <= v <= -10]
    assert len(outliers) == 2  # exactly the two requested readings
    assert sim.sample("notip_sim_anomalies_injected_total", type="outlier") == 2


async def test_anomaly_validation(sim: SimHandle) -> None:
    gw, _ = await sim.create(send_frequency_ms=1000)
    s = await sim.add_sensor(gw["id"])
    gid = gw["id"]
    bad = [
        (f"/sim/gateways/{gid}/anomaly/network-degradation", {"duration_seconds": 0}, 400),
        (f"/sim/gateways/{gid}/anomaly/network-degradation", {"duration_seconds": -3}, 400),
        (
            f"/sim/gateways/{gid}/anomaly/network-degradation",
            {"duration_seconds": 1, "packet_loss_pct": 150},
            400,
        ),
        (
            f"/sim/gateways/{gid}/anomaly/network-degradation",
            {"duration_seconds": 1, "packet_loss_pct": -1},
            400,
        ),
        (f"/sim/gateways/{gid}/anomaly/network-degradation", {"duration_seconds": "long"}, 400),
        (f"/sim/gateways/{gid}/anomaly/disconnect", {}, 400),
        (f"/sim/gateways/{gid}/anomaly/disconnect", {"duration_seconds": 0}, 400),
        (f"/sim/gateways/{uuid.uuid4()}/anomaly/disconnect", {"duration_seconds": 1}, 404),
        ("/sim/gateways/not-a-uuid/anomaly/disconnect", {"duration_seconds": 1}, 400),
        (f"/sim/sensors/{uuid.uuid4()}/anomaly/outlier", {}, 404),
        ("/sim/sensors/xyz/anomaly/outlier", {}, 400),
        (f"/sim/sensors/{s['id']}/anomaly/outlier", {"value": "high"}, 400),
    ]
    for path, body, code in bad:
        r = await sim.http.post(path, json=body)
        assert r.status_code == code, (path, body, r.text)
        assert isinstance(r.json()["error"], str) and r.json()["error"]
    # a stopped gateway cannot be degraded or disconnected
    assert (await sim.http.post(f"/sim/gateways/{gid}/stop")).status_code == 204
    r = await sim.http.post(f"/sim/gateways/{gid}/anomaly/disconnect", json={"duration_seconds": 1})
    assert r.status_code == 409 and "not running" in r.json()["error"]
    assert sim.sample("notip_sim_anomalies_injected_total", type="disconnect") == 0
