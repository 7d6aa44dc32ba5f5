"""Commands on durable gw-{id}: ack, nack, expired, status aliases, redelivery not
re-executed, commands queued during an anomaly (docs/contracts.md#commands-and-acks)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import nats.js.errors
import trio

from notip import bridge, envelope
from tests.waiting import eventually, stays_true

from .conftest import SimHandle, capture


async def publish_command(nc: Any, tenant: str, gateway: str, body: dict[str, Any]) -> None:
    js = nc.jetstream()
    await bridge.call(js.publish, f"command.gw.{tenant}.{gateway}", json.dumps(body).encode())


def command(
    type_: str,
    payload: Any,
    *,
    issued_at: dt.datetime | None = None,
    camel: bool = False,
    command_id: str | None = None,
) -> dict[str, Any]:
    issued = envelope.iso(issued_at or dt.datetime.now(dt.UTC))
    cid = command_id or str(uuid.uuid4())
    if camel:
        return {"commandId": cid, "type": type_, "payload": payload, "issuedAt": issued}
    return {"command_id": cid, "type": type_, "payload": payload, "issued_at": issued}


async def test_config_update_and_firmware_through_management(sim: SimHandle, nc: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=5000)
    await sim.add_sensor(gw["id"])
    mgmt = sim.mgmt
    assert mgmt is not None
    cap = await capture(nc, f"telemetry.data.{seeded.tenant_id}.{gw['id']}")

    cmd = await mgmt.send_config(gw["id"], send_frequency_ms=100)
    status = await mgmt.wait_command_status(gw["id"], cmd["command_id"])
    assert status["status"] == "ack"
    assert (await sim.gateway(gw["id"]))["sendFrequencyMs"] == 100
    # applied at once: the 5 s wait is cut short, readings now come every 100 ms
    mark = len(cap)
    with trio.fail_after(5):
        await eventually(lambda: len(cap) >= mark + 5)

    cmd = await mgmt.send_firmware(gw["id"], "3.1.4", "https://example.invalid/fw.bin")
    status = await mgmt.wait_command_status(gw["id"], cmd["command_id"])
    assert status["status"] == "ack"
    # the ack is sent after the command was executed and recorded
    assert (await sim.gateway(gw["id"]))["firmwareVersion"] == "3.1.4"
    stored = {g["id"]: g for g in sim.sim.store.gateways()}[gw["id"]]
    assert stored["firmware_version"] == "3.1.4" and stored["send_frequency_ms"] == 100


async def test_status_aliases_pause_and_resume(sim: SimHandle, nc: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=100)
    await sim.add_sensor(gw["id"])
    tenant, gid = seeded.tenant_id, gw["id"]
    cap = await capture(nc, f"telemetry.data.{tenant}.{gid}")
    acks = await capture(nc, f"command.ack.{tenant}.{gid}")
    await eventually(lambda: len(cap) >= 2)

    paused = command("config_update", {"status": "Gateway-Suspended"}, camel=True)
    await publish_command(nc, tenant, gid, paused)
    await eventually(lambda: any(a["command_id"] == paused["commandId"] for a in acks.bodies()))
    assert (await sim.gateway(gid))["status"] == "paused"
    mark = len(cap)
    # Silence: eight periods while paused (proving it takes the whole window); at most
    # the tick in flight when the ack went out.
    await stays_true(lambda: len(cap) <= mark + 1, for_s=0.8, what="no reading while paused")

    offline = command("config_update", {"status": "gateway offline"})
    await publish_command(nc, tenant, gid, offline)
    await eventually(lambda: any(a["command_id"] == offline["command_id"] for a in acks.bodies()))
    assert (await sim.gateway(gid))["status"] == "offline"

    online = command("config_update", {"status": "GATEWAY_ONLINE"})
    await publish_command(nc, tenant, gid, online)
    await eventually(lambda: any(a["command_id"] == online["command_id"] for a in acks.bodies()))
    assert (await sim.gateway(gid))["status"] == "online"
    mark = len(cap)
    await eventually(lambda: len(cap) >= mark + 3)
    assert all(a["status"] == "ack" for a in acks.bodies())
    for a in acks.bodies():
        assert set(a) == {"command_id", "status", "timestamp"} and a["timestamp"].endswith("Z")


async def test_nack_expired_and_redelivery(sim: SimHandle, nc: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=1000)
    tenant, gid = seeded.tenant_id, gw["id"]
    acks = await capture(nc, f"command.ack.{tenant}.{gid}")
    watch = sim.sim.registry.watch(gid)

    unknown = command("reboot", {})
    bad = command("config_update", {"send_frequency_ms": -5})
    old = command(
        "firmware_push",
        {"firmware_version": "9", "download_url": "x"},
        issued_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120),
    )
    fw = command("firmware_push", {"firmware_version": "4.0.0", "download_url": "x"})
    js = nc.jetstream()  # not a command at all: terminated, counted, nothing to ack
    await bridge.call(js.publish, f"command.gw.{tenant}.{gid}", b"\x00garbage")
    for c in (unknown, bad, old, fw, fw):  # fw twice: a redelivery of the same command_id
        await publish_command(nc, tenant, gid, c)
    await eventually(lambda: len(acks) >= 5)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for a in acks.bodies():
        by_id.setdefault(a["command_id"], []).append(a)
    assert by_id[unknown["command_id"]][0]["status"] == "nack"
    assert "unknown command type" in by_id[unknown["command_id"]][0]["message"]
    assert by_id[bad["command_id"]][0]["status"] == "nack"
    assert "> 0" in by_id[bad["command_id"]][0]["message"]
    assert by_id[old["command_id"]][0]["status"] == "expired"
    assert [a["status"] for a in by_id[fw["command_id"]]] == ["ack", "ack"]  # acked again
    assert (await sim.gateway(gid))["firmwareVersion"] == "4.0.0"  # not the expired "9"

    outcomes: list[tuple[str, str]] = []
    while True:
        try:
            ev = watch.receive_nowait()
        except trio.WouldBlock:
            break
        if ev.HasField("command"):
            outcomes.append((ev.command.command_id, ev.command.outcome))
    fw_outcomes = [o for cid, o in outcomes if cid == fw["command_id"]]
    assert fw_outcomes == ["executed", "duplicate"]  # never executed twice
    assert sim.sample("notip_sim_commands_total", outcome="duplicate") == 1
    assert sim.sample("notip_sim_commands_total", outcome="executed") == 1
    assert sim.sample("notip_sim_commands_total", outcome="expired") == 1
    assert sim.sample("notip_sim_commands_total", outcome="nack") == 2
    assert sim.sample("notip_sim_commands_total", outcome="rejected") == 1


async def test_commands_wait_for_an_anomaly_to_end(sim: SimHandle, nc: Any) -> None:
    gw, seeded = await sim.create(send_frequency_ms=1000)
    tenant, gid = seeded.tenant_id, gw["id"]
    acks = await capture(nc, f"command.ack.{tenant}.{gid}")
    await eventually(
        lambda: (runtime := sim.sim.registry.runtime(gid)) is not None and runtime.connected
    )

    r = await sim.http.post(
        f"/sim/gateways/{gid}/anomaly/network-degradation",
        json={"duration_seconds": 2.5, "packet_loss_pct": 0},
    )
    assert r.status_code == 204
    started = trio.current_time()
    fw = command("firmware_push", {"firmware_version": "5.0.0", "download_url": "x"})
    await publish_command(nc, tenant, gid, fw)
    # queued: persisted, not executed, no ack while the anomaly lasts
    await eventually(lambda: sim.sim.store.is_pending(gid, fw["command_id"]))
    assert len(acks) == 0 and (await sim.gateway(gid))["firmwareVersion"] == "1.0.0"
    assert sim.sample("notip_sim_commands_total", outcome="queued") == 1

    await eventually(lambda: len(acks) >= 1, timeout=15)
    assert trio.current_time() - started >= 2.4  # only once the anomaly ended
    assert acks.bodies()[0] == {**acks.bodies()[0], "command_id": fw["command_id"], "status": "ack"}
    assert (await sim.gateway(gid))["firmwareVersion"] == "5.0.0"
    assert not sim.sim.store.is_pending(gid, fw["command_id"])
    assert sim.sim.store.executed(gid, fw["command_id"]) is not None


async def test_a_command_after_a_reconnect_does_not_wait_for_the_pull_to_expire(
    sim_settings: Any, mgmt: Any, nc: Any
) -> None:
    """The command pull request is long-lived (server-side expiry, here 120 s): a
    command sent after nats-py re-established a broken gateway connection still
    arrives at once, not when the outstanding request expires. (The gateway also
    re-issues its pull request on every reconnect, for the case where the server
    lost it, e.g. a nats-server restart; this test cannot tell that part apart.)"""
    import dataclasses

    from notip import contracts

    from .conftest import running_simulator

    settings = dataclasses.replace(sim_settings, command_fetch_timeout_s=120.0)
    async with running_simulator(settings, mgmt) as sim:
        gw, seeded = await sim.create(send_frequency_ms=5000)
        await eventually(
            lambda: (runtime := sim.sim.registry.runtime(gw["id"])) and runtime.connected
        )
        runtime = sim.sim.registry.runtime(gw["id"])
        assert runtime is not None and runtime._nc is not None
        reconnects = sim.sample("notip_sim_nats_reconnects_total", gateway_id=gw["id"])

        async def pull_request_waiting() -> bool:
            try:
                info = await bridge.call(
                    nc.jetstream().consumer_info,
                    contracts.COMMANDS.name,
                    contracts.command_durable(gw["id"]),
                )
            except nats.js.errors.NotFoundError:
                return False  # connected, but the gateway has not created its durable yet
            return bool(info.num_waiting)

        # The first pull request has reached the server: breaking the connection now
        # leaves it outstanding there.
        await eventually(pull_request_waiting)
        conn = runtime._nc

        async def abort() -> None:
            # a broken connection, under nats-py's private transport wrapper
            conn._transport._io_writer.transport.abort()  # type: ignore[union-attr]

        await bridge.call(abort)
        await eventually(
            lambda: (
                sim.sample("notip_sim_nats_reconnects_total", gateway_id=gw["id"]) > reconnects
                and runtime.connected
            )
        )
        acks = await capture(nc, contracts.command_ack_subject(seeded.tenant_id, gw["id"]))
        body = command("config_update", {"send_frequency_ms": 1000})
        await publish_command(nc, seeded.tenant_id, gw["id"], body)
        with trio.fail_after(20):  # far less than the 120 s pull request
            await eventually(lambda: len(acks) >= 1, timeout=20)
        assert (await sim.gateway(gw["id"]))["sendFrequencyMs"] == 1000
