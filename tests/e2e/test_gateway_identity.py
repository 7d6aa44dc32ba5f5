"""`notip dev` on the wire: every demo gateway connects with its own certificate and is
admitted by nats-auth as `gw:{tenantId}:{gatewayId}` (docs/nats-auth.md#identities);
decommissioning a gateway through management cuts its connection off
(docs/nats-auth.md#decommission-on-the-wire) while the others keep publishing."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from notip import bridge, contracts, natsio
from notip import pki as pkimod
from notip.devstack import DevInfo
from tests.platform_fixtures import gateway_csr, onboard
from tests.waiting import eventually

from .conftest import query

SIMULATOR_USER = "CN=simulator,O=notip"
#: docs/nats-auth.md: "the tests assert 5 s" for a single auth service instance.
KICK_BOUND_S = 5.0


def user_of(tenant_id: str, gateway_id: str) -> str:
    return f"gw:{tenant_id}:{gateway_id}"


async def connected_users(http: httpx.AsyncClient, dev: DevInfo) -> list[str]:
    """The authorized user of every open client connection (NATS monitoring)."""
    r = await http.get(f"{dev.nats_monitor_url}/connz", params={"auth": "true", "limit": 4096})
    r.raise_for_status()
    return [c.get("authorized_user", "") for c in r.json().get("connections") or []]


async def auth_metric(http: httpx.AsyncClient, dev: DevInfo, series: str) -> float:
    text = (await http.get(f"{dev.nats_auth_metrics_url}/metrics")).text
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(series + " "))


async def test_every_demo_gateway_connects_as_itself_publishes_and_acks(
    dev: DevInfo, http: httpx.AsyncClient
) -> None:
    expected = {user_of(dev.tenant_id, gw) for gw in dev.gateway_ids}

    async def all_on_their_own() -> list[str] | None:
        users = await connected_users(http, dev)
        return users if expected <= set(users) else None

    users = await eventually(all_on_their_own, timeout=30)
    assert users is not None
    # One connection per gateway, each its own; the simulator's service identity holds
    # only its own decommission listener, not the gateways' traffic.
    assert all(users.count(u) == 1 for u in expected), users
    assert users.count(SIMULATOR_USER) == 1, users
    admitted = 'notip_nats_auth_decisions_total{outcome="admitted",reason="provisioned"}'
    assert await auth_metric(http, dev, admitted) >= 1

    async def rows_from_every_gateway() -> bool:
        rows = await query(
            dev.pg_dsn,
            "SELECT DISTINCT gateway_id FROM telemetry WHERE tenant_id = $1",
            dev.tenant_id,
        )
        return {r["gateway_id"] for r in rows} >= set(dev.gateway_ids)

    await eventually(rows_from_every_gateway, timeout=60)

    # A command reaches the gateway on its own durable and its ack comes back.
    gw = dev.gateway_ids[0]
    r = await http.post(f"{dev.mgmt_url}/cmd/{gw}/config", json={"send_frequency_ms": 400})
    assert r.status_code == 201, r.text
    command_id = r.json()["command_id"]

    async def acked() -> bool:
        s = await http.get(f"{dev.mgmt_url}/cmd/{gw}/status/{command_id}")
        return bool(s.json()["status"] == "ack")

    await eventually(acked, timeout=30)


async def test_decommission_cuts_the_gateway_off_and_the_others_keep_publishing(
    dev: DevInfo, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # A gateway of our own, onboarded through the dev stack's provisioning like any
    # real one, on a plain nats-py connection that reconnects forever: only the
    # server (kick, then refusals) can keep it off, not a simulator that obeys.
    factory_id, factory_key = f"e2e-{uuid.uuid4().hex[:8]}", "e2e-identity-key"
    r = await http.post(
        f"{dev.mgmt_url}/admin/gateways",
        json={
            "factory_id": factory_id,
            "factory_key": factory_key,
            "tenant_id": dev.tenant_id,
            "model": "e2e-gw",
        },
    )
    assert r.status_code == 201, r.text
    gw = r.json()["id"]
    key = ec.generate_private_key(ec.SECP256R1())
    _, csr = gateway_csr(key)
    r = await onboard(dev.provisioning_url, factory_id, factory_key, csr=csr)
    assert r.status_code == 201, r.text
    pki = pkimod.PkiPaths(Path(dev.state_dir) / "pki")
    pkimod.write_public(tmp_path / "gw.crt", r.json()["certPem"].encode())
    pkimod.write_private(tmp_path / "gw.key", pkimod.key_pem(key))
    tls = natsio.tls_context(natsio.TlsFiles(pki.ca_cert, tmp_path / "gw.crt", tmp_path / "gw.key"))
    nc = await natsio.connect(
        dev.nats_url,
        tls,
        name=f"e2e-gw-{gw}",
        inbox_prefix=contracts.gateway_inbox_prefix(gw),
        reconnect_wait=0.2,
    )
    try:
        me = user_of(dev.tenant_id, gw)
        assert me in await connected_users(http, dev)

        refused = 'notip_nats_auth_decisions_total{outcome="refused",reason="decommissioned"}'
        refused_before = await auth_metric(http, dev, refused)
        since = dt.datetime.now(dt.UTC)
        assert (await http.delete(f"{dev.mgmt_url}/gateways/{gw}")).status_code == 204

        async def cut_off() -> bool:
            return me not in await connected_users(http, dev) and not nc.is_connected

        await eventually(cut_off, timeout=KICK_BOUND_S)

        # It tries again at once (nats-py reconnects after a kick) and is refused.
        async def refused_again() -> bool:
            return await auth_metric(http, dev, refused) > refused_before

        await eventually(refused_again, timeout=30)
        assert me not in await connected_users(http, dev)
        assert not nc.is_connected

        # The demo gateways were not touched: each writes rows after the decommission.
        async def others_publish() -> bool:
            rows = await query(
                dev.pg_dsn,
                "SELECT DISTINCT gateway_id FROM telemetry WHERE tenant_id = $1 AND time > $2",
                dev.tenant_id,
                since,
            )
            return {r["gateway_id"] for r in rows} >= set(dev.gateway_ids)

        await eventually(others_publish, timeout=30)
        users = await connected_users(http, dev)
        assert {user_of(dev.tenant_id, g) for g in dev.gateway_ids} <= set(users)
    finally:
        await bridge.shielded(nc.close, timeout=5)
