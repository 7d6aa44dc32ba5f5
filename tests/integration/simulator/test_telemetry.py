"""Create → envelopes on the right subject that decrypt with the key management
stored; stop → silence → start; sensors added/deleted while running."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any

import pytest

from notip import bridge, envelope
from notip.simulator import tls
from tests.waiting import eventually, stays_true

from .conftest import SimHandle, capture

GATEWAY_KEYS = {
    "id",
    "factoryId",
    "model",
    "firmwareVersion",
    "provisioned",
    "sendFrequencyMs",
    "status",
    "tenantId",
    "createdAt",
    "desiredState",
    "connected",
    "lastError",
}


async def test_envelopes_decrypt_with_the_key_management_stored(
    sim: SimHandle, nc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw, seeded = await sim.create(send_frequency_ms=150)
    assert set(gw) == GATEWAY_KEYS  # no certificate, key, AES key or factory key
    assert gw["id"] == seeded.gateway_id and gw["tenantId"] == seeded.tenant_id
    assert gw["provisioned"] is True and gw["sendFrequencyMs"] == 150
    assert gw["status"] == "online" and gw["desiredState"] == "running"
    assert gw["factoryId"] == seeded.factory_id and gw["model"] == seeded.model
    assert gw["createdAt"].endswith("Z")
    temp = await sim.add_sensor(gw["id"], "temperature", -10, 40, "uniform_random")
    hum = await sim.add_sensor(gw["id"], "humidity", 20, 80, "sine_wave")
    assert set(temp) == {
        "id",
        "gatewayId",
        "type",
        "minRange",
        "maxRange",
        "algorithm",
        "createdAt",
    }

    cap = await capture(nc, f"telemetry.data.{seeded.tenant_id}.{gw['id']}")
    await eventually(lambda: len(cap) >= 6)
    key = await sim.mgmt.get_key(gw["id"])  # type: ignore[union-attr]
    # secrets never reach the logs
    assert (
        seeded.factory_key not in caplog.text and base64.b64encode(key).decode() not in caplog.text
    )
    assert "PRIVATE KEY" not in caplog.text
    assert any(
        getattr(r, "gateway_id", None) == gw["id"] for r in caplog.records
    )  # logs were captured
    ranges = {temp["id"]: (-10, 40, "temperature", "°C"), hum["id"]: (20, 80, "humidity", "%")}
    ivs = set()
    for subject, body in [(s, b) for _, s, b in cap.items]:
        assert subject == f"telemetry.data.{seeded.tenant_id}.{gw['id']}"
        assert set(body) == {
            "gatewayId",
            "sensorId",
            "sensorType",
            "timestamp",
            "keyVersion",
            "encryptedData",
            "iv",
            "authTag",
        }
        lo, hi, type_, unit = ranges[body["sensorId"]]
        assert body["gatewayId"] == gw["id"] and body["sensorType"] == type_
        assert body["keyVersion"] == 1 and body["timestamp"].endswith("Z")
        assert (
            len(base64.b64decode(body["iv"])) == 12 and len(base64.b64decode(body["authTag"])) == 16
        )
        ivs.add(body["iv"])
        plain = envelope.open_envelope(key, body)
        assert set(plain) == {"value", "unit"} and plain["unit"] == unit
        assert lo <= plain["value"] <= hi
    assert len(ivs) == len(cap)  # a fresh IV per message
    await bridge.call(cap.sub.unsubscribe)

    # the gateway has its own connection, with a small TLS read buffer
    runtime = sim.sim.registry.runtime(gw["id"])
    assert runtime is not None and runtime._nc is not None
    assert tls.read_buffer_size(runtime._nc) == sim.settings.nats_read_buffer_bytes

    labels = {"gateway_id": gw["id"]}
    assert sim.sample("notip_sim_envelopes_published_total", **labels) >= 6
    assert sim.sample("notip_sim_provisioning_success_total") == 1
    assert sim.sample("notip_sim_gateways_running") == 1
    text = (await sim.http.get(sim.metrics_url)).text
    for name in (
        "notip_sim_gateways_running",
        "notip_sim_envelopes_published_total",
        "notip_sim_publish_errors_total",
        "notip_sim_buffer_dropped_total",
        "notip_sim_buffer_fill_level",
        "notip_sim_provisioning_success_total",
        "notip_sim_provisioning_errors_total",
        "notip_sim_nats_reconnects_total",
        "notip_sim_anomalies_injected_total",
    ):
        assert name in text, name


async def test_stop_silence_start_again(sim: SimHandle, nc: Any, nats_server: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=100)
    await sim.add_sensor(gw["id"])
    cap = await capture(nc, f"telemetry.data.{seeded.tenant_id}.{gw['id']}")
    await eventually(lambda: len(cap) >= 2)

    r = await sim.http.post(f"/sim/gateways/{gw['id']}/stop")
    assert r.status_code == 204
    got = await sim.gateway(gw["id"])
    assert (got["desiredState"], got["status"], got["connected"]) == ("stopped", "offline", False)
    assert sim.sample("notip_sim_gateways_running") == 0
    assert not await _nats_connection_exists(nats_server, gw["id"])
    seen = len(cap)
    # Silence: ten periods without a reading (proving it takes the whole window).
    await stays_true(lambda: len(cap) == seen, for_s=1.0, what="no reading after stop")

    # start after stop: fresh connection, fresh command subscription
    assert (await sim.http.post(f"/sim/gateways/{gw['id']}/start")).status_code == 204
    await eventually(lambda: len(cap) >= seen + 2)
    assert await _nats_connection_exists(nats_server, gw["id"])
    got = await sim.gateway(gw["id"])
    assert (got["desiredState"], got["status"], got["connected"]) == ("running", "online", True)
    assert sim.sample("notip_sim_gateways_running") == 1
    cmd = await sim.mgmt.send_firmware(gw["id"], "2.0.0", "https://example.invalid/fw")  # type: ignore[union-attr]
    status = await sim.mgmt.wait_command_status(gw["id"], cmd["command_id"])  # type: ignore[union-attr]
    assert status["status"] == "ack"
    # start and stop are idempotent
    assert (await sim.http.post(f"/sim/gateways/{gw['id']}/start")).status_code == 204
    assert sim.sample("notip_sim_gateways_running") == 1


async def test_sensors_added_and_deleted_while_running(sim: SimHandle, nc: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=100)
    a = await sim.add_sensor(gw["id"], "pressure", 990, 1010, "constant")
    cap = await capture(nc, f"telemetry.data.{seeded.tenant_id}.{gw['id']}")
    await eventually(lambda: len(cap) >= 2)
    b = await sim.add_sensor(gw["id"], "biometric", 60, 100)
    await eventually(lambda: any(x["sensorId"] == b["id"] for x in cap.bodies()))

    r = await sim.http.delete(f"/sim/sensors/{a['id']}")
    assert r.status_code == 204
    mark = len(cap)

    def b_after_mark() -> int:
        return sum(1 for x in cap.bodies()[mark:] if x["sensorId"] == b["id"])

    await eventually(lambda: b_after_mark() >= 4)
    # at most the tick in flight during the DELETE may still carry sensor a
    later = cap.bodies()[mark:]
    first_b = next(i for i, x in enumerate(later) if x["sensorId"] == b["id"])
    assert all(x["sensorId"] != a["id"] for x in later[first_b + 1 :])
    listed = (await sim.http.get(f"/sim/gateways/{gw['id']}/sensors")).json()
    assert [s["id"] for s in listed] == [b["id"]]
    assert (await sim.http.delete(f"/sim/sensors/{a['id']}")).status_code == 404


async def _nats_connection_exists(nats_server: Any, gateway_id: str) -> bool:
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        conns = (
            await client.get(f"{nats_server.monitor_url}/connz", params={"limit": 10000})
        ).json()
    return any(c.get("name") == f"notip-sim-{gateway_id}" for c in conns.get("connections", []))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
