"""The management core over an in-memory store, a recording publisher and a settable
clock: responder answers (docs/contracts.md#management-request-reply), admin operations (docs/contracts.md#management-admin-http), ack and alert
recording."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from notip import contracts
from notip.platform.management import responders
from notip.platform.management.core import Forbidden, Management, NotFound, Unavailable
from notip.platform.management.keys import KeySealer
from notip.platform.management.store import Conflict, Store
from notip.platform.validation import BadInput

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []
        self.fail = False

    async def __call__(self, subject: str, body: bytes, *, msg_id: str) -> None:
        if self.fail:
            raise ConnectionError("nats down")
        self.sent.append((subject, json.loads(body), msg_id))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pub() -> Publisher:
    return Publisher()


@pytest.fixture
def mgmt(clock: Clock, pub: Publisher) -> Iterator[Management]:
    store = Store(":memory:")
    yield Management(store, KeySealer(os.urandom(32)), pub, clock=clock)
    store.close()


async def _gateway(
    mgmt: Management, tenant: str | None = None, key: str = "fk-1"
) -> dict[str, str]:
    tenant = tenant or str(uuid.uuid4())
    factory_id = f"F-{uuid.uuid4().hex[:8]}"
    gid = await mgmt.create_gateway(
        {"factory_id": factory_id, "factory_key": key, "tenant_id": tenant, "model": "m"}
    )
    return {"id": gid, "tenant": tenant, "factory_id": factory_id, "key": key}


async def _complete(mgmt: Management, gid: str, key: bytes | None = None) -> dict[str, Any]:
    return await mgmt.provisioning_complete(
        {
            "gateway_id": gid,
            "key_material": base64.b64encode(key or os.urandom(32)).decode(),
            "key_version": 1,
            "send_frequency_ms": 1000,
            "firmware_version": "1.0.0",
        }
    )


# -- factory.validate -------------------------------------------------------------------


async def test_validate_success_and_invalid(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    ok = await mgmt.factory_validate({"factory_id": gw["factory_id"], "factory_key": gw["key"]})
    assert ok == {"gateway_id": gw["id"], "tenant_id": gw["tenant"]}
    wrong = await mgmt.factory_validate({"factory_id": gw["factory_id"], "factory_key": "nope"})
    assert wrong == {"error": "INVALID"}
    unknown = await mgmt.factory_validate({"factory_id": "no-such", "factory_key": gw["key"]})
    assert unknown == {"error": "INVALID"}
    bads: list[Any] = [None, [], {"factory_id": 1, "factory_key": "x"}, {"factory_id": "x"}]
    for bad in bads:
        assert await mgmt.factory_validate(bad) == {"error": "INVALID"}


async def test_already_provisioned_is_checked_before_the_key(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    assert await _complete(mgmt, gw["id"]) == {"success": True}
    for key in (gw["key"], "wrong"):
        answer = await mgmt.factory_validate({"factory_id": gw["factory_id"], "factory_key": key})
        assert answer == {"error": "ALREADY_PROVISIONED"}


# -- provisioning.complete --------------------------------------------------------------


async def test_complete_is_atomic_and_forgets_the_factory_key(
    mgmt: Management, clock: Clock
) -> None:
    gw = await _gateway(mgmt)
    before = await mgmt.store.run(mgmt.store.get_gateway, gw["id"])
    assert before is not None and before.factory_key_hash is not None
    key = os.urandom(32)
    assert await _complete(mgmt, gw["id"], key) == {"success": True}
    after = await mgmt.store.run(mgmt.store.get_gateway, gw["id"])
    assert after is not None
    assert after.provisioned and after.status == "online"
    assert after.factory_key_hash is None
    assert after.key_material is not None and after.key_material.startswith("aesgcm1:")
    assert (after.send_frequency_ms, after.firmware_version, after.key_version) == (
        1000,
        "1.0.0",
        1,
    )
    assert await mgmt.keys(gw["id"]) == [
        {"gateway_id": gw["id"], "key_material": base64.b64encode(key).decode(), "key_version": 1}
    ]


async def test_complete_retry_with_same_key_is_ok_other_key_is_refused(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    key = os.urandom(32)
    assert await _complete(mgmt, gw["id"], key) == {"success": True}
    assert await _complete(mgmt, gw["id"], key) == {"success": True}
    assert await _complete(mgmt, gw["id"], os.urandom(32)) == {
        "success": False,
        "error": "INTERNAL",
    }
    assert base64.b64decode((await mgmt.keys(gw["id"]))[0]["key_material"]) == key


async def test_complete_not_found_and_malformed(mgmt: Management) -> None:
    assert await _complete(mgmt, str(uuid.uuid4())) == {"success": False, "error": "NOT_FOUND"}
    gw = await _gateway(mgmt)
    good = {
        "gateway_id": gw["id"],
        "key_material": base64.b64encode(os.urandom(32)).decode(),
        "key_version": 1,
        "send_frequency_ms": 1000,
    }
    for change in (
        {"key_material": base64.b64encode(os.urandom(16)).decode()},
        {"key_material": "***"},
        {"key_version": 2},
        {"send_frequency_ms": 0},
        {"gateway_id": "nope"},
    ):
        assert await mgmt.provisioning_complete({**good, **change}) == {
            "success": False,
            "error": "INTERNAL",
        }
    assert not (await mgmt.store.run(mgmt.store.get_gateway, gw["id"])).provisioned  # type: ignore[union-attr]
    assert await mgmt.provisioning_complete(good) == {"success": True}


# -- gateway status ----------------------------------------------------------------------


async def test_update_status_aliases_and_errors(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    await _complete(mgmt, gw["id"])
    upd = {
        "gateway_id": gw["id"],
        "status": "Gateway-Offline",
        "last_seen_at": "2030-01-01T00:00:00Z",
    }
    assert await mgmt.update_status(upd) == {"success": True}
    assert await mgmt.get_status({"gateway_id": gw["id"], "tenant_id": gw["tenant"]}) == {
        "gateway_id": gw["id"],
        "state": "offline",
        "provisioned": True,
        "decommissioned": False,
    }
    invalid = {"success": False, "error": "INVALID_PAYLOAD"}
    assert await mgmt.update_status({**upd, "status": "paused"}) == invalid  # not a runtime status
    assert await mgmt.update_status({**upd, "status": "sleepy"}) == invalid
    assert await mgmt.update_status({**upd, "last_seen_at": "2030-01-01T00:00:00"}) == invalid
    assert await mgmt.update_status({**upd, "gateway_id": "x"}) == invalid
    assert await mgmt.update_status("nope") == invalid
    assert await mgmt.update_status({**upd, "gateway_id": str(uuid.uuid4())}) == {
        "success": False,
        "error": "NOT_FOUND",
    }


async def test_runtime_status_never_clears_a_pause(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    await _complete(mgmt, gw["id"])
    await mgmt.set_paused(gw["id"], True)
    upd = {"gateway_id": gw["id"], "status": "online", "last_seen_at": "2030-01-01T00:00:00Z"}
    assert await mgmt.update_status(upd) == {"success": True}
    req = {"gateway_id": gw["id"], "tenant_id": gw["tenant"]}
    assert (await mgmt.get_status(req))["state"] == "paused"
    assert (await mgmt.gateway(gw["id"]))["status"] == "online"
    await mgmt.set_paused(gw["id"], False)
    assert (await mgmt.get_status(req))["state"] == "online"


async def test_stale_status_update_is_ignored(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    await _complete(mgmt, gw["id"])
    new = {"gateway_id": gw["id"], "status": "online", "last_seen_at": "2030-01-01T00:00:10Z"}
    old = {"gateway_id": gw["id"], "status": "offline", "last_seen_at": "2030-01-01T00:00:05Z"}
    assert await mgmt.update_status(new) == {"success": True}
    assert await mgmt.update_status(old) == {"success": True}
    assert (await mgmt.gateway(gw["id"]))["status"] == "online"


async def test_get_status_states_and_unknowns(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    req = {"gateway_id": gw["id"], "tenant_id": gw["tenant"]}
    assert await mgmt.get_status(req) == {
        "gateway_id": gw["id"],
        "state": "provisioning",
        "provisioned": False,
        "decommissioned": False,
    }
    await mgmt.set_paused(gw["id"], True)  # paused wins over provisioning: only the flag says
    assert await mgmt.get_status(req) == {
        "gateway_id": gw["id"],
        "state": "paused",
        "provisioned": False,
        "decommissioned": False,
    }
    await mgmt.set_paused(gw["id"], False)
    await _complete(mgmt, gw["id"])
    assert await mgmt.get_status(req) == {
        "gateway_id": gw["id"],
        "state": "online",
        "provisioned": True,
        "decommissioned": False,
    }
    other_tenant = {"gateway_id": gw["id"], "tenant_id": str(uuid.uuid4())}
    not_found = {"gateway_id": gw["id"], "error": "NOT_FOUND", "decommissioned": False}
    assert await mgmt.get_status(other_tenant) == not_found
    missing = str(uuid.uuid4())
    assert await mgmt.get_status({"gateway_id": missing, "tenant_id": gw["tenant"]}) == {
        "gateway_id": missing,
        "error": "NOT_FOUND",
        "decommissioned": False,
    }
    assert await mgmt.get_status({"tenant_id": gw["tenant"]}) == {"error": "INVALID_PAYLOAD"}
    await mgmt.decommission(gw["id"])
    assert await mgmt.get_status(req) == {
        "gateway_id": gw["id"],
        "error": "NOT_FOUND",
        "decommissioned": True,
    }
    # Another tenant's decommissioned gateway reads as unknown.
    assert await mgmt.get_status(other_tenant) == not_found


# -- alert configs -----------------------------------------------------------------------


async def test_alert_configs(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    assert await mgmt.alert_configs_list() == []
    await mgmt.set_tenant_timeout(
        {"tenant_id": gw["tenant"], "tenant_unreachable_timeout_ms": 30000}
    )
    await mgmt.set_gateway_timeout(gw["id"], {"gateway_unreachable_timeout_ms": 5000})
    assert await mgmt.alert_configs_list() == [
        {"tenant_id": gw["tenant"], "gateway_id": None, "timeout_ms": 30000},
        {"tenant_id": gw["tenant"], "gateway_id": gw["id"], "timeout_ms": 5000},
    ]
    await mgmt.clear_gateway_timeout(gw["id"])
    assert await mgmt.alert_configs_list() == [
        {"tenant_id": gw["tenant"], "gateway_id": None, "timeout_ms": 30000}
    ]
    with pytest.raises(NotFound, match="tenant"):
        await mgmt.set_tenant_timeout(
            {"tenant_id": str(uuid.uuid4()), "tenant_unreachable_timeout_ms": 1000}
        )
    with pytest.raises(BadInput):
        await mgmt.set_tenant_timeout(
            {"tenant_id": gw["tenant"], "tenant_unreachable_timeout_ms": -1}
        )
    assert (await mgmt.alert_configs_list())[0]["timeout_ms"] == 30000


# -- admin ---------------------------------------------------------------------------------


async def test_create_gateway_conflicts_and_validation(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    with pytest.raises(Conflict):
        await mgmt.create_gateway(
            {
                "factory_id": gw["factory_id"],
                "factory_key": "k",
                "tenant_id": gw["tenant"],
                "model": "m",
            }
        )
    with pytest.raises(Conflict):
        await mgmt.create_gateway(
            {
                "factory_id": "other",
                "factory_key": "k",
                "tenant_id": gw["tenant"],
                "model": "m",
                "id": gw["id"],
            }
        )
    with pytest.raises(BadInput, match="tenant_id"):
        await mgmt.create_gateway(
            {"factory_id": "z", "factory_key": "k", "tenant_id": "t", "model": "m"}
        )
    assert [g["id"] for g in await mgmt.list_gateways(None)] == [gw["id"]]


async def test_command_publish_failure_leaves_nothing(mgmt: Management, pub: Publisher) -> None:
    gw = await _gateway(mgmt)
    pub.fail = True
    with pytest.raises(Unavailable):
        await mgmt.send_command(gw["id"], "config_update", {"send_frequency_ms": 100})
    assert mgmt.store.db.query("SELECT COUNT(*) FROM commands")[0][0] == 0


async def test_command_published_and_times_out_lazily(
    mgmt: Management, pub: Publisher, clock: Clock
) -> None:
    gw = await _gateway(mgmt)
    out = await mgmt.send_command(
        gw["id"], "firmware_push", {"firmware_version": "2", "download_url": "https://x/fw"}
    )
    assert out["status"] == "queued"
    subject, body, msg_id = pub.sent[0]
    assert subject == f"command.gw.{gw['tenant']}.{gw['id']}"
    assert body == {
        "command_id": out["command_id"],
        "type": "firmware_push",
        "payload": {"firmware_version": "2", "download_url": "https://x/fw"},
        "issued_at": out["issued_at"],
    }
    assert msg_id == out["command_id"]
    clock.now = T0 + dt.timedelta(seconds=74)
    assert (await mgmt.command_status(gw["id"], out["command_id"]))["status"] == "queued"
    clock.now = T0 + dt.timedelta(seconds=75)
    assert await mgmt.command_status(gw["id"], out["command_id"]) == {
        "command_id": out["command_id"],
        "status": "timeout",
        "timestamp": "2026-03-01T12:01:15.000000Z",
    }
    with pytest.raises(NotFound):
        await mgmt.command_status(str(uuid.uuid4()), out["command_id"])


async def test_acks_first_wins_and_wrong_gateway_is_rejected(mgmt: Management) -> None:
    gw = await _gateway(mgmt)
    other = await _gateway(mgmt, tenant=gw["tenant"])
    cmd = await mgmt.send_command(gw["id"], "config_update", {"status": "paused"})
    cid = cmd["command_id"]

    async def ack(gateway: str, status: str, **extra: Any) -> str:
        body = json.dumps({"commandId": cid, "status": status, **extra}).encode()
        return await mgmt.record_ack(f"command.ack.{gw['tenant']}.{gateway}", body)

    assert await ack(other["id"], "ack") == "wrong_gateway"
    assert (await mgmt.command_status(gw["id"], cid))["status"] == "queued"
    assert (
        await ack(gw["id"], "nack", message="unsupported", timestamp="2026-03-01T12:00:01Z")
        == "recorded"
    )
    assert await ack(gw["id"], "ack") == "duplicate"
    assert await mgmt.command_status(gw["id"], cid) == {
        "command_id": cid,
        "status": "nack",
        "message": "unsupported",
        "timestamp": "2026-03-01T12:00:01.000000Z",
    }
    assert await mgmt.record_ack(f"command.ack.{gw['tenant']}.{gw['id']}", b"{") == "malformed"
    unknown = json.dumps({"command_id": str(uuid.uuid4()), "status": "ack"}).encode()
    assert await mgmt.record_ack(f"command.ack.{gw['tenant']}.{gw['id']}", unknown) == "unknown"


async def test_alerts_recorded_once(mgmt: Management) -> None:
    tenant, gid = str(uuid.uuid4()), str(uuid.uuid4())
    body = json.dumps(
        {
            "gatewayId": gid,
            "lastSeen": "2026-03-01T11:59:00Z",
            "timeoutMs": 60000,
            "timestamp": "2026-03-01T12:00:00Z",
        }
    ).encode()
    assert await mgmt.record_alert(f"alert.gw_offline.{tenant}", body) == "recorded"
    assert await mgmt.record_alert(f"alert.gw_offline.{tenant}", body) == "duplicate"
    assert await mgmt.record_alert(f"alert.gw_offline.{tenant}", b"[]") == "malformed"
    assert await mgmt.alerts(tenant, None) == [
        {
            "gateway_id": gid,
            "tenant_id": tenant,
            "type": "gateway_offline",
            "last_seen": "2026-03-01T11:59:00.000000Z",
            "timeout_ms": 60000,
            "timestamp": "2026-03-01T12:00:00.000000Z",
            "received_at": "2026-03-01T12:00:00.000000Z",
        }
    ]
    assert await mgmt.alerts(None, str(uuid.uuid4())) == []


async def test_decommission(mgmt: Management, pub: Publisher) -> None:
    gw = await _gateway(mgmt)
    await _complete(mgmt, gw["id"])
    pub.fail = True
    with pytest.raises(Unavailable):
        await mgmt.decommission(gw["id"])
    assert (await mgmt.gateway(gw["id"]))["lifecycle"] == "active"  # nothing written
    assert await mgmt.keys(gw["id"])
    pub.fail = False
    await mgmt.decommission(gw["id"])
    assert pub.sent == [
        (
            f"gateway.decommissioned.{gw['tenant']}.{gw['id']}",
            {"gatewayId": gw["id"], "timestamp": "2026-03-01T12:00:00.000000Z"},
            f"decommission-{gw['id']}",
        )
    ]
    assert (await mgmt.gateway(gw["id"]))["lifecycle"] == "decommissioned"
    with pytest.raises(Forbidden):
        await mgmt.keys(gw["id"])
    with pytest.raises(Conflict):
        await mgmt.decommission(gw["id"])
    with pytest.raises(Conflict):
        await mgmt.send_command(gw["id"], "config_update", {"status": "online"})
    gone = await mgmt.store.run(mgmt.store.get_gateway, gw["id"])
    assert gone is not None and gone.key_material is None


# -- responders: INTERNAL when the store fails --------------------------------------------


class BrokenStore:
    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("disk on fire")

        return fail


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        (
            contracts.MGMT_FACTORY_VALIDATE,
            {"factory_id": "f", "factory_key": "k"},
            {"error": "INTERNAL"},
        ),
        (
            contracts.MGMT_PROVISIONING_COMPLETE,
            {
                "gateway_id": str(uuid.UUID(int=1)),
                "key_material": base64.b64encode(bytes(32)).decode(),
                "key_version": 1,
                "send_frequency_ms": 5,
            },
            {"success": False, "error": "INTERNAL"},
        ),
        (contracts.MGMT_ALERT_CONFIGS_LIST, None, {"error": "INTERNAL"}),
        (
            contracts.MGMT_GATEWAY_UPDATE_STATUS,
            {
                "gateway_id": str(uuid.UUID(int=1)),
                "status": "online",
                "last_seen_at": "2026-01-01T00:00:00Z",
            },
            {"success": False, "error": "INTERNAL"},
        ),
        (
            contracts.MGMT_GATEWAY_GET_STATUS,
            {"gateway_id": str(uuid.UUID(int=1)), "tenant_id": str(uuid.UUID(int=2))},
            {"gateway_id": str(uuid.UUID(int=1)), "error": "INTERNAL"},
        ),
    ],
)
async def test_responders_answer_internal_on_failure(
    subject: str, body: Any, expected: dict[str, Any], pub: Publisher
) -> None:
    broken = Management(BrokenStore(), KeySealer(None), pub)  # type: ignore[arg-type]
    data = b"" if body is None else json.dumps(body).encode()
    assert await responders.answer(broken, subject, data) == expected
