"""Decommission events, restore after restart (RECOVERY_MODE), the per-gateway
certificate path, publish failures and bulk creation."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from typing import Any

import trio

from notip import bridge
from notip.natsio import TlsFiles
from notip.simulator.settings import Settings
from tests.platform_fixtures import MgmtHandle
from tests.waiting import eventually, stays_true

from .conftest import SimHandle, capture, running_simulator


async def test_decommission_event_forgets_the_gateway(sim: SimHandle, nc: Any) -> None:
    assert sim.info.decommission_listener
    gw, _seeded = await sim.create(send_frequency_ms=200)
    await sim.add_sensor(gw["id"])
    other, _ = await sim.create(send_frequency_ms=200)
    # events for gateways this simulator does not have are acked and ignored
    js = nc.jetstream()
    await bridge.call(js.publish, f"gateway.decommissioned.{uuid.uuid4()}.{uuid.uuid4()}", b"{}")
    # the right gateway id under another tenant is not ours either
    await bridge.call(js.publish, f"gateway.decommissioned.{uuid.uuid4()}.{other['id']}", b"{}")

    await sim.mgmt.decommission(gw["id"])  # type: ignore[union-attr]
    await eventually(lambda: sim.sim.registry._gateways.get(gw["id"]) is None)
    assert (await sim.http.get(f"/sim/gateways/{gw['id']}")).status_code == 404
    assert gw["id"] not in {g["id"] for g in sim.sim.store.gateways()}
    assert all(s["gateway_id"] != gw["id"] for s in sim.sim.store.sensors())
    assert sim.sample("notip_sim_gateways_running") == 1
    assert (await sim.gateway(other["id"]))["desiredState"] == "running"

    async def drained() -> bool:
        info = await bridge.call(js.consumer_info, "DECOMMISSION", "simulator-decommission")
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(drained)


async def test_restore_after_restart(
    sim_settings: Settings, mgmt: MgmtHandle, nc: Any, nats_server: Any
) -> None:
    settings = dataclasses.replace(sim_settings, recovery_mode=True)
    async with running_simulator(settings, mgmt) as sim:
        running, seeded_running = await sim.create(send_frequency_ms=100)
        paused, seeded_paused = await sim.create(send_frequency_ms=100)
        stopped, _ = await sim.create(send_frequency_ms=100)
        broken, _ = await sim.create(send_frequency_ms=100)
        for g in (running, paused, stopped, broken):
            await sim.add_sensor(g["id"])
        cmd = await mgmt.send_config(paused["id"], status="paused")
        assert (await mgmt.wait_command_status(paused["id"], cmd["command_id"]))["status"] == "ack"
        assert (await sim.http.post(f"/sim/gateways/{stopped['id']}/stop")).status_code == 204
    # make one stored gateway unusable
    with sqlite3.connect(settings.sqlite_path) as db:
        db.execute("UPDATE gateways SET aes_key = x'00' WHERE id = ?", (broken["id"],))

    cap_running = await capture(nc, f"telemetry.data.{seeded_running.tenant_id}.{running['id']}")
    cap_paused = await capture(nc, f"telemetry.data.{seeded_paused.tenant_id}.{paused['id']}")
    async with running_simulator(settings, mgmt) as sim:
        listed = {g["id"]: g for g in (await sim.http.get("/sim/gateways")).json()}
        assert set(listed) == {running["id"], paused["id"], stopped["id"], broken["id"]}
        assert (listed[running["id"]]["desiredState"], listed[running["id"]]["status"]) == (
            "running",
            "online",
        )
        assert (listed[paused["id"]]["desiredState"], listed[paused["id"]]["status"]) == (
            "running",
            "paused",
        )
        assert (listed[stopped["id"]]["desiredState"], listed[stopped["id"]]["status"]) == (
            "stopped",
            "offline",
        )
        assert "cannot restore" in listed[broken["id"]]["lastError"]  # visible, not a 404
        r = await sim.http.post(f"/sim/gateways/{broken['id']}/start")
        assert r.status_code == 409 and "cannot restore" in r.json()["error"]
        assert sim.sim.registry.running(running["id"]) and sim.sim.registry.running(paused["id"])
        assert not sim.sim.registry.running(stopped["id"])
        assert sim.sample("notip_sim_gateways_running") == 2
        await eventually(lambda: len(cap_running) >= 3)  # publishing again, same key
        key = await mgmt.get_key(running["id"])
        from notip import envelope

        assert envelope.open_envelope(key, cap_running.bodies()[-1])["unit"] == "°C"
        # sensors came back with their gateways
        sensors = (await sim.http.get(f"/sim/gateways/{running['id']}/sensors")).json()
        assert len(sensors) == 1
        # the paused one is connected (it takes commands) but silent
        await eventually(lambda: sim.sim.registry.get(paused["id"]).connected)
        # Silence: no reading from the paused gateway (proving it takes the whole window).
        await stays_true(lambda: len(cap_paused) == 0, for_s=0.5, what="the paused one silent")

    # without RECOVERY_MODE stored gateways are listed but not started
    plain = dataclasses.replace(settings, recovery_mode=False)
    async with running_simulator(plain, mgmt) as sim:
        listed = {g["id"]: g for g in (await sim.http.get("/sim/gateways")).json()}
        assert len(listed) == 4
        assert sim.sample("notip_sim_gateways_running") == 0
        assert all(g["desiredState"] == "stopped" for g in listed.values())


async def test_provisioned_certificate_path(sim_settings: Settings, mgmt: MgmtHandle) -> None:
    """With GATEWAY_IDENTITY=own (the default) each gateway connects with its own
    provisioned certificate, while the simulator's own connection keeps the service
    certificate. The test server maps no gateway identity, so it must reject the
    gateway: it reports the failure and keeps retrying, the control plane stays fine."""
    settings = dataclasses.replace(sim_settings, gateway_identity="own")
    async with running_simulator(settings, mgmt) as sim:
        assert sim.info.decommission_listener  # the service identity, not a gateway's
        gw, _ = await sim.create(send_frequency_ms=100)
        # "Authorization Violation" (not a TLS handshake failure, which is what a
        # client without a certificate gets under `verify: true`): the gateway's own
        # CA-signed certificate was presented and verified, and maps to no user.
        await eventually(
            lambda: "Authorization Violation" in sim.sim.registry.get(gw["id"]).last_error
        )
        got = await sim.gateway(gw["id"])
        assert got["connected"] is False and got["desiredState"] == "running"
        assert "Authorization Violation" in got["lastError"]
        assert (await sim.http.post(f"/sim/gateways/{gw['id']}/stop")).status_code == 204

    # Without NATS_TLS_CERT/KEY the simulator has no identity of its own: gateways
    # still connect with theirs, the decommission listener is off.
    no_service = dataclasses.replace(settings, nats_tls=TlsFiles(settings.nats_tls.ca))
    async with running_simulator(no_service, mgmt) as sim:
        assert not sim.info.decommission_listener


async def test_publish_failures_are_counted_and_kept(
    sim_settings: Settings, mgmt: MgmtHandle
) -> None:
    """Publishing to a subject no stream captures fails (no responders): counted per
    gateway, envelopes kept in the buffer, the oldest dropped when it is full."""
    settings = dataclasses.replace(sim_settings, gateway_buffer_size=4, publish_timeout_s=1.0)
    async with running_simulator(settings, mgmt) as sim:
        sim.sim.registry.deps.telemetry_subject = lambda t, g: f"nostream.{t}.{g}"
        gw, _ = await sim.create(send_frequency_ms=100)
        await sim.add_sensor(gw["id"])
        await sim.add_sensor(gw["id"], "humidity", 10, 90)
        labels = {"gateway_id": gw["id"]}
        await eventually(lambda: sim.sample("notip_sim_publish_errors_total", **labels) >= 4)
        await eventually(lambda: sim.sample("notip_sim_buffer_dropped_total", **labels) >= 2)
        # Between a round taking the envelopes (in flight) and their failures coming
        # back they are out of the buffer; requeued, they fill it again.
        await eventually(lambda: sim.sample("notip_sim_buffer_fill_level", **labels) == 4)
        assert sim.sample("notip_sim_envelopes_published_total", **labels) == 0


async def test_lost_pubacks_never_stall_the_ticks(
    sim_settings: Settings, mgmt: MgmtHandle, nc: Any
) -> None:
    """Envelopes reach a subscriber but no stream, so no PubAck ever comes back: every
    publish waits out its deadline, yet the gateway keeps ticking on time."""
    settings = dataclasses.replace(sim_settings, publish_timeout_s=0.5)
    async with running_simulator(settings, mgmt) as sim:
        sim.sim.registry.deps.telemetry_subject = lambda t, g: f"lostack.{t}.{g}"
        gw, seeded = await sim.create(send_frequency_ms=100)
        sink = await capture(nc, f"lostack.{seeded.tenant_id}.{gw['id']}")
        await sim.add_sensor(gw["id"])
        watch = sim.sim.registry.watch(gw["id"])
        await eventually(lambda: len(sink) >= 1)  # publishes do go out
        readings = 0
        with trio.move_on_after(1.5):
            async for ev in watch:
                readings += ev.HasField("reading")
        assert readings >= 10  # ~15 ticks in 1.5 s although each PubAck wait is 0.5 s
        labels = {"gateway_id": gw["id"]}
        assert sim.sample("notip_sim_publish_errors_total", **labels) >= 2
        assert sim.sample("notip_sim_envelopes_published_total", **labels) == 0


async def test_bulk_create_201_and_207(sim: SimHandle) -> None:
    seeded = [await sim.seed() for _ in range(3)]
    body = {
        "factoryIds": [s.factory_id for s in seeded],
        "factoryKey": seeded[0].factory_key,
        "model": "bulk-1",
        "firmwareVersion": "1.0.0",
        "sendFrequencyMs": 1000,
    }
    r = await sim.http.post("/sim/gateways/bulk", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert set(out) == {"gateways", "errors"} and out["errors"] == ["", "", ""]
    assert [g["factoryId"] for g in out["gateways"]] == body["factoryIds"]
    assert {g["id"] for g in out["gateways"]} == {s.gateway_id for s in seeded}

    good = await sim.seed()
    wrong_key = await sim.seed(factory_key="another-key-000")
    ids = [
        good.factory_id,
        "no-such-factory",
        wrong_key.factory_id,
        seeded[0].factory_id,
        good.factory_id,
    ]
    r = await sim.http.post(
        "/sim/gateways/bulk", json={"factory_ids": ids, "factory_key": good.factory_key}
    )
    assert r.status_code == 207, r.text
    out = r.json()
    assert [g["factoryId"] for g in out["gateways"]] == [good.factory_id]
    errors = out["errors"]
    assert errors[0] == ""
    assert errors[1] == "INVALID_CREDENTIALS" and errors[2] == "INVALID_CREDENTIALS"
    assert errors[3] == "ALREADY_PROVISIONED"
    assert errors[4].startswith("duplicate")
    assert sim.sample("notip_sim_provisioning_success_total") == 4
    assert sim.sample("notip_sim_provisioning_errors_total") == 2
    r = await sim.http.post("/sim/gateways/bulk", json={"factoryIds": [], "factoryKey": "k"})
    assert r.status_code == 400
