"""Commands, acks, decommission events and gw_offline alerts on the real NATS
(docs/contracts.md#commands-and-acks, docs/contracts.md#alerts-and-decommission-events, docs/contracts.md#management-admin-http)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import trio

from notip import bridge, natsio
from notip.envelope import parse_iso
from notip.localservers import NatsServer
from notip.pki import PkiPaths
from tests.platform_fixtures import MgmtHandle, mgmt_settings, running_mgmt
from tests.waiting import eventually


class Inbox:
    """A core subscription that collects (subject, body, headers)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, Any, dict[str, str]]] = []
        self.sub: Any = None

    async def start(self, nc: natsio.NATS, subject: str) -> Inbox:
        token = trio.lowlevel.current_trio_token()

        async def cb(msg: Any) -> None:
            token.run_sync_soon(
                self.got.append, (msg.subject, json.loads(msg.data), dict(msg.headers or {}))
            )

        self.sub = await bridge.call(nc.subscribe, subject, cb=cb)
        await bridge.call(nc.flush)
        return self

    async def wait(self, count: int = 1) -> list[tuple[str, Any, dict[str, str]]]:
        await eventually(
            lambda: len(self.got) >= count, timeout=15, every=0.02, what=f"{count} message(s)"
        )
        await bridge.call(self.sub.unsubscribe)
        return self.got


async def js_publish(nc: natsio.NATS, subject: str, body: Any, msg_id: str | None = None) -> None:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await bridge.call(nc.jetstream().publish, subject, json.dumps(body).encode(), headers=headers)


async def test_config_command_lands_on_the_gateways_subject_and_ack_is_recorded(
    mgmt: MgmtHandle, nc: natsio.NATS
) -> None:
    gw = await mgmt.new_gateway()
    subject = f"command.gw.{gw.tenant_id}.{gw.gateway_id}"
    inbox = await Inbox().start(nc, subject)
    cmd = await mgmt.send_config(gw.gateway_id, send_frequency_ms=2000, status="gateway-suspended")
    assert cmd["status"] == "queued"
    [(got_subject, body, headers)] = await inbox.wait()
    assert got_subject == subject
    assert body == {
        "command_id": cmd["command_id"],
        "type": "config_update",
        "payload": {"send_frequency_ms": 2000, "status": "paused"},
        "issued_at": cmd["issued_at"],
    }
    assert parse_iso(body["issued_at"]).tzinfo is not None and body["issued_at"].endswith("Z")
    assert headers.get("Nats-Msg-Id") == cmd["command_id"]

    # The gateway acks (camelCase spelling) through JetStream.
    await js_publish(
        nc,
        f"command.ack.{gw.tenant_id}.{gw.gateway_id}",
        {"commandId": cmd["command_id"], "status": "ack", "timestamp": "2030-05-06T07:08:09.123Z"},
    )
    status = await mgmt.wait_command_status(gw.gateway_id, cmd["command_id"])
    assert status == {
        "command_id": cmd["command_id"],
        "status": "ack",
        "timestamp": "2030-05-06T07:08:09.123000Z",
    }


async def test_firmware_command_nack_and_wrong_gateway_ack(
    mgmt: MgmtHandle, nc: natsio.NATS
) -> None:
    gw = await mgmt.new_gateway()
    intruder = await mgmt.new_gateway(tenant_id=gw.tenant_id)
    inbox = await Inbox().start(nc, f"command.gw.{gw.tenant_id}.{gw.gateway_id}")
    cmd = await mgmt.send_firmware(gw.gateway_id, "4.0.0", "https://firmware.example/4.0.0.bin")
    [(_, body, _)] = await inbox.wait()
    assert body["type"] == "firmware_push"
    assert body["payload"] == {
        "firmware_version": "4.0.0",
        "download_url": "https://firmware.example/4.0.0.bin",
    }

    # An ack published on another gateway's subject is rejected ...
    await js_publish(
        nc,
        f"command.ack.{gw.tenant_id}.{intruder.gateway_id}",
        {"command_id": cmd["command_id"], "status": "ack", "timestamp": "2030-01-01T00:00:00Z"},
    )
    # ... and the gateway's own nack (snake_case), which the durable delivers after
    # it, is what counts.
    await js_publish(
        nc,
        f"command.ack.{gw.tenant_id}.{gw.gateway_id}",
        {
            "command_id": cmd["command_id"],
            "status": "nack",
            "message": "unsigned image",
            "timestamp": "2030-01-01T00:00:01Z",
        },
    )
    status = await mgmt.wait_command_status(gw.gateway_id, cmd["command_id"])
    assert status == {
        "command_id": cmd["command_id"],
        "status": "nack",
        "message": "unsigned image",
        "timestamp": "2030-01-01T00:00:01.000000Z",
    }
    metrics = (await mgmt.http.get("/metrics")).text
    assert 'notip_mgmt_command_acks_total{outcome="wrong_gateway"} 1.0' in metrics


async def test_command_without_ack_becomes_timeout(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    settings = mgmt_settings(nats_server, pki, tmp_path / "m.db", command_timeout_s=0.5)
    async with running_mgmt(settings) as mgmt:
        gw = await mgmt.new_gateway()
        cmd = await mgmt.send_config(gw.gateway_id, send_frequency_ms=100)
        assert (await mgmt.command_status(gw.gateway_id, cmd["command_id"]))["status"] == "queued"
        status = await mgmt.wait_command_status(gw.gateway_id, cmd["command_id"], "timeout")
        issued = parse_iso(cmd["issued_at"])
        assert (parse_iso(status["timestamp"]) - issued).total_seconds() == 0.5


async def test_expired_ack(mgmt: MgmtHandle, nc: natsio.NATS) -> None:
    gw = await mgmt.new_gateway()
    cmd = await mgmt.send_config(gw.gateway_id, status="online")
    await js_publish(
        nc,
        f"command.ack.{gw.tenant_id}.{gw.gateway_id}",
        {"command_id": cmd["command_id"], "status": "expired", "timestamp": "2030-01-01T00:00:00Z"},
    )
    assert (await mgmt.wait_command_status(gw.gateway_id, cmd["command_id"]))["status"] == "expired"


async def test_acks_published_while_down_are_recorded_after_restart(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths, nc: natsio.NATS, tmp_path: Path
) -> None:
    settings = mgmt_settings(nats_server, pki, tmp_path / "m.db")
    async with running_mgmt(settings) as mgmt:
        gw = await mgmt.new_gateway()
        cmd = await mgmt.send_config(gw.gateway_id, send_frequency_ms=100)
    await js_publish(
        nc,
        f"command.ack.{gw.tenant_id}.{gw.gateway_id}",
        {"command_id": cmd["command_id"], "status": "ack", "timestamp": "2030-01-01T00:00:00Z"},
    )
    async with running_mgmt(settings) as again:  # same durables, same database
        status = await again.wait_command_status(gw.gateway_id, cmd["command_id"])
        assert status["status"] == "ack"


async def test_decommission_publishes_the_event(mgmt: MgmtHandle, nc: natsio.NATS) -> None:
    gw = await mgmt.new_gateway()
    subject = f"gateway.decommissioned.{gw.tenant_id}.{gw.gateway_id}"
    inbox = await Inbox().start(nc, subject)
    await mgmt.decommission(gw.gateway_id)
    [(got_subject, body, headers)] = await inbox.wait()
    assert got_subject == subject
    assert set(body) == {"gatewayId", "timestamp"}
    assert body["gatewayId"] == gw.gateway_id
    assert body["timestamp"].endswith("Z") and parse_iso(body["timestamp"])
    assert headers.get("Nats-Msg-Id") == f"decommission-{gw.gateway_id}"

    assert (await mgmt.get_gateway(gw.gateway_id))["lifecycle"] == "decommissioned"
    keys = await mgmt.http.get("/keys", params={"gateway_id": gw.gateway_id})
    assert keys.status_code == 403 and "error" in keys.json()
    cmd = await mgmt.http.post(f"/cmd/{gw.gateway_id}/config", json={"status": "online"})
    assert cmd.status_code == 409 and "error" in cmd.json()
    again = await mgmt.http.delete(f"/gateways/{gw.gateway_id}")
    assert again.status_code == 409


async def test_gw_offline_alerts_are_recorded_once(mgmt: MgmtHandle, nc: natsio.NATS) -> None:
    tenant, gw1, gw2 = (str(uuid.uuid4()) for _ in range(3))

    def alert(gw: str, last_seen: str) -> dict[str, Any]:
        return {
            "gatewayId": gw,
            "lastSeen": last_seen,
            "timeoutMs": 60000,
            "timestamp": "2030-01-01T00:01:00Z",
        }

    await js_publish(
        nc, f"alert.gw_offline.{tenant}", alert(gw1, "2030-01-01T00:00:00Z"), "a-1-" + gw1
    )
    # The same alert again with another Nats-Msg-Id (the stream keeps both) ...
    await js_publish(
        nc, f"alert.gw_offline.{tenant}", alert(gw1, "2030-01-01T00:00:00Z"), "a-2-" + gw1
    )
    # ... and one on the tenant-first subject form, published last.
    await js_publish(
        nc, f"alert.{tenant}.gw_offline", alert(gw2, "2030-01-01T00:00:30Z"), "a-3-" + gw2
    )
    found = await mgmt.wait_alerts(tenant_id=tenant, count=2)
    # The durable delivers in stream order: the duplicate was handled before gw2's.
    assert len(found) == 2
    assert [(a["gateway_id"], a["last_seen"]) for a in found] == [
        (gw1, "2030-01-01T00:00:00.000000Z"),
        (gw2, "2030-01-01T00:00:30.000000Z"),
    ]
    assert all(a["type"] == "gateway_offline" and a["timeout_ms"] == 60000 for a in found)
    assert all(a["tenant_id"] == tenant for a in found)
    only_gw2 = await mgmt.alerts(tenant_id=tenant, gateway_id=gw2)
    assert [a["gateway_id"] for a in only_gw2] == [gw2]
    async with httpx.AsyncClient(base_url=mgmt.url) as http:
        assert (await http.get("/alerts", params={"tenant_id": "nope"})).status_code == 400
