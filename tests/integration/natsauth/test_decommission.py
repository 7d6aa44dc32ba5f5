"""Decommission takes effect on the wire (docs/nats-auth.md#decommission-on-the-wire):
an open connection is closed within the bound, and every reconnection is refused."""

from __future__ import annotations

import contextlib
import time

import nats.errors

from notip import contracts, natsio
from notip.natsauth.decide import Decider, Status
from notip.natsauth.enforcer import FOLLOW_UP_MARGIN_S, Enforcer
from notip.natsauth.metrics import Metrics
from notip.platform.management.store import Store as MgmtStore
from tests.integration.natsauth.conftest import Client, Stack, js_publish, metric
from tests.waiting import eventually, stays_true

#: docs/nats-auth.md#decommission-on-the-wire: one instance closes the connection
#: within a few seconds of the event (delivery, CONNZ, KICK).
DECOMMISSION_BOUND_S = 5.0


def _refused_again(client: Client) -> bool:
    return any("authorization violation" in e for e in client.errors)


async def test_an_open_connection_is_closed_and_stays_closed(stack: Stack) -> None:
    assert stack.mgmt is not None
    gw = await stack.onboard()
    bystander = await stack.onboard(gw.tenant_id)
    client = await stack.connect(gw, reconnect=True)
    other = await stack.connect(bystander, reconnect=True)
    try:
        assert await js_publish(
            client, contracts.telemetry_subject(gw.tenant_id, gw.gateway_id), b"{}"
        )
        await stack.mgmt.decommission(gw.gateway_id)
        await eventually(lambda: client.disconnects >= 1, timeout=DECOMMISSION_BOUND_S)
        # nats-py reconnects; the callout refuses it every time.
        await eventually(lambda: _refused_again(client), timeout=10)
        await stays_true(lambda: not client.nc.is_connected, for_s=1.0)
        kicks = await eventually(
            lambda: metric(stack.auth[0], "notip_nats_auth_kicks_total", trigger="decommission")
        )
        assert kicks == 1
        # The other gateway of the tenant is untouched.
        assert other.disconnects == 0 and other.nc.is_connected
    finally:
        await client.close()
        await other.close()


async def test_several_instances_follow_up_on_a_kick(stack: Stack) -> None:
    """Each event reaches one instance; another may hold a fresh "provisioned" entry
    and re-admit the kicked gateway until that entry expires: the follow-up kick, one
    TTL later, closes whatever was admitted meanwhile."""
    assert stack.mgmt is not None
    await stack.auth.pop().stop()
    ttl_s = 1.5
    instances = [await stack.start_auth(cache_ttl_ms=round(ttl_s * 1000)) for _ in range(2)]
    gw = await stack.onboard()
    key = (gw.tenant_id, gw.gateway_id)

    async def both_cached() -> bool:
        await (await stack.connect(gw)).close()
        now = time.time()
        return all(
            i.info is not None and i.info.decider.cache.fresh(key, now) is Status.PROVISIONED
            for i in instances
        )

    await eventually(both_cached, timeout=20, every=0)
    client = await stack.connect(gw, reconnect=True)
    await stack.mgmt.decommission(gw.gateway_id)
    late: list[Client] = []
    try:
        for _ in range(6):  # connections right after the event: some may be admitted
            with contextlib.suppress(nats.errors.Error, natsio.NotConfirmed):
                late.append(await stack.connect(gw))
        bound = ttl_s + FOLLOW_UP_MARGIN_S + DECOMMISSION_BOUND_S
        await eventually(
            lambda: not any(c.nc.is_connected for c in (client, *late)),
            timeout=bound,
            what="every connection of the decommissioned gateway closed",
        )
        await stays_true(lambda: not client.nc.is_connected, for_s=1.0)
    finally:
        for c in (client, *late):
            await c.close()


async def test_the_sweep_closes_what_is_no_longer_admissible(stack: Stack) -> None:
    """The backstop for a missed event: open gw:* connections are re-checked. Here
    management's answer is scripted (the real one is used by the running service);
    CONNZ and KICK are the server's."""
    gw = await stack.onboard()
    client = await stack.connect(gw)
    instance = stack.auth[0]
    assert instance.info is not None
    sys_nc = instance.info.enforcer.sys_nc
    answers: dict[tuple[str, str], Status | None] = {}

    async def ask(tenant_id: str, gateway_id: str) -> Status | None:
        return answers.get((tenant_id, gateway_id), Status.PROVISIONED)

    key = (gw.tenant_id, gw.gateway_id)
    try:
        answers[key] = None  # management unavailable: nobody is kicked for that
        assert await Enforcer(sys_nc, Decider(), Metrics(), ask).sweep() == 0
        answers[key] = Status.PROVISIONED
        assert await Enforcer(sys_nc, Decider(), Metrics(), ask).sweep() == 0
        assert client.nc.is_connected
        answers[key] = Status.DECOMMISSIONED
        metrics = Metrics()
        assert await Enforcer(sys_nc, Decider(), metrics, ask).sweep() == 1
        await eventually(lambda: not client.nc.is_connected)
        assert (
            metrics.registry.get_sample_value("notip_nats_auth_kicks_total", {"trigger": "sweep"})
            == 1
        )
    finally:
        await client.close()


async def test_the_running_sweep_catches_a_decommission_without_event(stack: Stack) -> None:
    """A decommission whose event never came (recorded in management's database
    behind its back): the periodic sweep asks management and closes the connection."""
    assert stack.mgmt is not None
    await stack.auth.pop().stop()
    auth = await stack.start_auth(sweep_interval_ms=1000, cache_ttl_ms=500)
    gw = await stack.onboard()
    client = await stack.connect(gw)
    try:
        store = MgmtStore(stack.mgmt.info.db_path)
        try:
            await store.run(store.decommission, gw.gateway_id, "2030-01-01T00:00:00.000000Z")
        finally:
            store.close()
        await eventually(
            lambda: not client.nc.is_connected,
            timeout=10,
            what=f"the sweep to close the connection (errors seen: {client.errors})",
        )
        # The client sees the close before the sweep has the KICK's answer (and counts it).
        sweep_kicks = await eventually(
            lambda: metric(auth, "notip_nats_auth_kicks_total", trigger="sweep")
        )
        assert sweep_kicks == 1
        assert metric(auth, "notip_nats_auth_kicks_total", trigger="decommission") == 0
    finally:
        await client.close()
