"""The request-reply responders of docs/contracts.md#management-request-reply over the real mTLS NATS: shapes,
error codes, and exactly one reply per request with two instances in the queue
group."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import trio

from notip import bridge, natsio
from notip.localservers import NatsServer
from notip.pki import PkiPaths
from tests.platform_fixtures import MgmtHandle, mgmt_settings, running_mgmt
from tests.waiting import eventually, stays_true

VALIDATE = "internal.mgmt.factory.validate"
COMPLETE = "internal.mgmt.provisioning.complete"
ALERT_CONFIGS = "internal.mgmt.alert-configs.list"
UPDATE_STATUS = "internal.mgmt.gateway.update-status"
GET_STATUS = "internal.mgmt.gateway.get-status"


async def ask(nc: natsio.NATS, subject: str, body: Any = None) -> Any:
    payload = b"" if body is None else json.dumps(body).encode()
    with trio.fail_after(20):
        return json.loads(await natsio.request(nc, subject, payload, timeout=5, backoff=(0.5,)))


def complete_body(gateway_id: str, key: bytes) -> dict[str, Any]:
    return {
        "gateway_id": gateway_id,
        "key_material": base64.b64encode(key).decode(),
        "key_version": 1,
        "send_frequency_ms": 1500,
        "firmware_version": "3.1.4",
    }


async def test_validate_and_complete(mgmt: MgmtHandle, nc: natsio.NATS) -> None:
    gw = await mgmt.new_gateway()
    creds = {"factory_id": gw.factory_id, "factory_key": gw.factory_key}
    assert await ask(nc, VALIDATE, creds) == {
        "gateway_id": gw.gateway_id,
        "tenant_id": gw.tenant_id,
    }
    assert await ask(nc, VALIDATE, {**creds, "factory_key": "wrong"}) == {"error": "INVALID"}
    assert await ask(nc, VALIDATE, {**creds, "factory_id": "unknown"}) == {"error": "INVALID"}
    assert await ask(nc, VALIDATE, "not an object") == {"error": "INVALID"}

    assert await ask(nc, COMPLETE, complete_body(str(uuid.uuid4()), os.urandom(32))) == {
        "success": False,
        "error": "NOT_FOUND",
    }
    assert await ask(nc, COMPLETE, complete_body(gw.gateway_id, os.urandom(8))) == {
        "success": False,
        "error": "INTERNAL",
    }
    key = os.urandom(32)
    assert await ask(nc, COMPLETE, complete_body(gw.gateway_id, key)) == {"success": True}
    # atomic: key stored, provisioned, status online, factory key forgotten
    assert await mgmt.get_key(gw.gateway_id) == key
    state = await mgmt.get_gateway(gw.gateway_id)
    assert (state["provisioned"], state["status"], state["firmware_version"]) == (
        True,
        "online",
        "3.1.4",
    )
    assert await ask(nc, VALIDATE, creds) == {"error": "ALREADY_PROVISIONED"}
    assert await ask(nc, VALIDATE, {**creds, "factory_key": "wrong"}) == {
        "error": "ALREADY_PROVISIONED"
    }


async def test_alert_configs_list(mgmt: MgmtHandle, nc: natsio.NATS) -> None:
    gw = await mgmt.new_gateway()
    await mgmt.set_tenant_timeout(gw.tenant_id, 45000)
    await mgmt.set_gateway_timeout(gw.gateway_id, 9000)
    answer = await ask(nc, ALERT_CONFIGS)
    assert isinstance(answer, list)
    mine = [c for c in answer if c["tenant_id"] == gw.tenant_id]
    assert mine == [
        {"tenant_id": gw.tenant_id, "gateway_id": None, "timeout_ms": 45000},
        {"tenant_id": gw.tenant_id, "gateway_id": gw.gateway_id, "timeout_ms": 9000},
    ]
    await mgmt.clear_gateway_timeout(gw.gateway_id)
    mine = [c for c in await ask(nc, ALERT_CONFIGS, {}) if c["tenant_id"] == gw.tenant_id]
    assert mine == [{"tenant_id": gw.tenant_id, "gateway_id": None, "timeout_ms": 45000}]


async def test_update_and_get_status(mgmt: MgmtHandle, nc: natsio.NATS) -> None:
    gw = await mgmt.new_gateway()
    req = {"gateway_id": gw.gateway_id, "tenant_id": gw.tenant_id}
    assert await ask(nc, GET_STATUS, req) == {
        "gateway_id": gw.gateway_id,
        "state": "provisioning",
        "provisioned": False,
        "decommissioned": False,
    }
    assert await ask(nc, COMPLETE, complete_body(gw.gateway_id, os.urandom(32))) == {
        "success": True
    }
    assert await ask(nc, GET_STATUS, req) == {
        "gateway_id": gw.gateway_id,
        "state": "online",
        "provisioned": True,
        "decommissioned": False,
    }

    offline = {
        "gateway_id": gw.gateway_id,
        "status": "GATEWAY_OFFLINE",
        "last_seen_at": "2099-01-01T00:00:00.000Z",
    }
    assert await ask(nc, UPDATE_STATUS, offline) == {"success": True}
    assert (await ask(nc, GET_STATUS, req))["state"] == "offline"
    assert (await mgmt.get_gateway(gw.gateway_id))["last_seen_at"] == "2099-01-01T00:00:00.000000Z"

    await mgmt.pause(gw.gateway_id)
    online = {**offline, "status": "online", "last_seen_at": "2099-01-01T00:01:00Z"}
    assert await ask(nc, UPDATE_STATUS, online) == {"success": True}
    assert (await ask(nc, GET_STATUS, req))["state"] == "paused"
    await mgmt.resume(gw.gateway_id)
    assert (await ask(nc, GET_STATUS, req))["state"] == "online"

    bad = {"success": False, "error": "INVALID_PAYLOAD"}
    assert await ask(nc, UPDATE_STATUS, {**online, "status": "asleep"}) == bad
    assert await ask(nc, UPDATE_STATUS, {**online, "last_seen_at": "noon"}) == bad
    assert await ask(nc, UPDATE_STATUS, {"status": "online"}) == bad
    missing = {**online, "gateway_id": str(uuid.uuid4())}
    assert await ask(nc, UPDATE_STATUS, missing) == {"success": False, "error": "NOT_FOUND"}
    unknown = {"gateway_id": missing["gateway_id"], "tenant_id": gw.tenant_id}
    assert await ask(nc, GET_STATUS, unknown) == {
        "gateway_id": unknown["gateway_id"],
        "error": "NOT_FOUND",
        "decommissioned": False,
    }
    await mgmt.decommission(gw.gateway_id)
    assert await ask(nc, GET_STATUS, req) == {
        "gateway_id": gw.gateway_id,
        "error": "NOT_FOUND",
        "decommissioned": True,
    }


def _answered(metrics: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^notip_mgmt_requests_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


async def test_two_instances_give_exactly_one_reply_per_request(
    mgmt: MgmtHandle, nats_server: NatsServer, pki: PkiPaths, nc: natsio.NATS, tmp_path: Path
) -> None:
    # A second instance on the same database, in the same queue group.
    second_settings = mgmt_settings(nats_server, pki, mgmt.settings.db_path)
    gw = await mgmt.new_gateway()
    n = 40
    inbox = f"_INBOX.twoinstances.{uuid.uuid4().hex}"
    replies: list[tuple[str, Any]] = []
    token = trio.lowlevel.current_trio_token()

    async def on_reply(msg: Any) -> None:
        token.run_sync_soon(replies.append, (msg.subject, json.loads(msg.data)))

    async with running_mgmt(second_settings) as second:
        sub = await bridge.call(nc.subscribe, f"{inbox}.*", cb=on_reply)
        await bridge.call(nc.flush)
        req = json.dumps({"gateway_id": gw.gateway_id, "tenant_id": gw.tenant_id}).encode()

        async def send_all() -> None:
            for i in range(n):
                await nc.publish(GET_STATUS, req, reply=f"{inbox}.{i}")
            await nc.flush()

        await bridge.call(send_all)
        async with httpx.AsyncClient(timeout=10) as http:

            async def answered() -> tuple[float, float]:
                a = _answered((await http.get(mgmt.url + "/metrics")).text)
                b = _answered((await http.get(second.url + "/metrics")).text)
                return a, b

            async def all_answered() -> bool:
                return len(replies) >= n and sum(await answered()) >= n

            async def nothing_more() -> bool:
                return len(replies) == n and sum(await answered()) == n

            await eventually(all_answered, every=0.02)
            # Everything asked for has arrived. Silence: no duplicate answer or reply
            # shows up within a further half second (proving it takes the window).
            await stays_true(nothing_more, for_s=0.5, every=0.1)
            first_count, second_count = await answered()
        await bridge.call(sub.unsubscribe)

    assert len(replies) == n
    assert sorted(subject for subject, _ in replies) == sorted(f"{inbox}.{i}" for i in range(n))
    assert all(
        body
        == {
            "gateway_id": gw.gateway_id,
            "state": "provisioning",
            "provisioned": False,
            "decommissioned": False,
        }
        for _, body in replies
    )
    assert first_count + second_count == n
    assert first_count > 0 and second_count > 0, "both members of the queue group answered"
