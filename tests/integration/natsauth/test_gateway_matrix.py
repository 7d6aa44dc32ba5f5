"""A gateway connected with its own provisioned certificate: each allowed operation
works, each forbidden one is refused by the server (docs/nats-auth.md#permissions),
and two gateways cannot touch each other's subjects."""

from __future__ import annotations

import json

import nats.errors
import pytest

from notip import bridge, contracts
from notip.envelope import iso_now
from notip.jetstream.consumers import ensure_pull_consumer
from notip.natsauth import decide
from notip.simulator import natslink
from tests.integration.natsauth.conftest import (
    Client,
    GatewayIdentity,
    Stack,
    decisions,
    js_publish,
    new_tenant,
    request,
    wait_refused,
)
from tests.waiting import eventually


async def _pull_and_ack(client: Client, durable: str) -> list[bytes]:
    """What a gateway does with its command durable: bind, pull, ack (all replies
    under its inbox prefix)."""

    async def run() -> list[bytes]:
        js = client.nc.jetstream()
        psub = await js.pull_subscribe_bind(durable=durable, stream=contracts.COMMANDS.name)
        try:
            msgs = await psub.fetch(1, timeout=10)
            for msg in msgs:
                await msg.ack_sync(timeout=5)
            return [bytes(m.data) for m in msgs]
        finally:
            await psub.unsubscribe()

    return await bridge.call(run)


async def test_a_gateway_can_do_what_a_gateway_does(stack: Stack) -> None:
    assert stack.mgmt is not None
    gw = await stack.onboard()
    t, g = gw.tenant_id, gw.gateway_id
    client = await stack.connect(gw)
    try:
        before = await stack.stream_messages()
        # Telemetry and acks: JetStream publishes, PubAck to the gateway's inbox.
        assert await js_publish(client, contracts.telemetry_subject(t, g), b"{}") > 0
        # Its command durable: created through the filtered-create subject only.
        config = natslink.command_consumer_config(t, g)
        outcome, info = await ensure_pull_consumer(client.nc, contracts.COMMANDS.name, config)
        assert outcome == "created" and info.config.filter_subject == f"command.gw.{t}.{g}"
        assert (await ensure_pull_consumer(client.nc, contracts.COMMANDS.name, config))[0] == (
            "unchanged"
        )
        # Management sends a command; the gateway pulls it, acks it, answers it.
        command = await stack.mgmt.send_config(g, send_frequency_ms=2000)
        [data] = await _pull_and_ack(client, contracts.command_durable(g))
        assert json.loads(data)["command_id"] == command["command_id"]
        ack = contracts.ack_body(command["command_id"], contracts.ACK, None, iso_now())
        assert await js_publish(client, contracts.command_ack_subject(t, g), ack) > 0
        status = await stack.mgmt.wait_command_status(g, command["command_id"], "ack")
        assert status["status"] == "ack"
        # Subscriptions under its own inbox prefix.
        await bridge.call(client.nc.subscribe, f"{gw.inbox_prefix}.mine")
        await client.flush()
        after = await stack.stream_messages()
        assert after[contracts.TELEMETRY.name] == before[contracts.TELEMETRY.name] + 1
        assert after[contracts.COMMAND_ACKS.name] == before[contracts.COMMAND_ACKS.name] + 1
        assert client.errors == []
    finally:
        await client.close()
    assert decisions(stack.auth[0], decide.ADMITTED, decide.PROVISIONED) >= 1


def _forbidden_publishes(gw: GatewayIdentity, other: GatewayIdentity, stranger: str) -> list[str]:
    t, g = gw.tenant_id, gw.gateway_id
    t2, g2 = other.tenant_id, other.gateway_id
    return [
        contracts.telemetry_subject(t2, g2),  # another gateway of its tenant
        contracts.telemetry_subject(stranger, g),  # its own id under another tenant
        contracts.command_ack_subject(t2, g2),
        contracts.command_subject(t, g),  # commands are management's
        contracts.MGMT_GATEWAY_GET_STATUS,
        contracts.MGMT_GATEWAY_UPDATE_STATUS,
        contracts.GW_OFFLINE_ALERT_TEMPLATE.format(tenant_id=t),
        contracts.decommissioned_subject(t, g),
        contracts.audit_subject(t),
        contracts.LIVENESS_FEED_SUBJECT,
        # JetStream API beyond its own durable
        contracts.js_stream_api("CREATE", "MINE"),
        contracts.js_stream_api("DELETE", contracts.TELEMETRY.name),
        contracts.js_stream_api("PURGE", contracts.COMMANDS.name),
        contracts.js_stream_api("INFO", contracts.TELEMETRY.name),
        "$JS.API.INFO",
        f"$JS.API.CONSUMER.DURABLE.CREATE.COMMANDS.gw-{g}",  # no filter in the subject
        f"$JS.API.CONSUMER.CREATE.COMMANDS.gw-{g}",
        f"$JS.API.CONSUMER.CREATE.COMMANDS.gw-{g}.command.gw.{t}.*",
        contracts.js_consumer_create("COMMANDS", f"gw-{g2}", contracts.command_subject(t2, g2)),
        contracts.js_consumer_info("COMMANDS", f"gw-{g2}"),
        contracts.js_consumer_next("COMMANDS", f"gw-{g2}"),
        f"$JS.ACK.COMMANDS.gw-{g2}.1.1.1.1.1.1",
        f"$JS.API.CONSUMER.DELETE.COMMANDS.gw-{g}",
        contracts.js_consumer_info(contracts.TELEMETRY.name, "data-consumer-telemetry"),
        contracts.SYS_USER_AUTH,
        f"{gw.inbox_prefix}.reply",  # replies go to others' inboxes, never its own
    ]


async def test_forbidden_publishes_are_refused_and_never_land(stack: Stack) -> None:
    gw = await stack.onboard()
    other = await stack.onboard(gw.tenant_id)
    client = await stack.connect(gw)
    try:
        before = await stack.stream_messages()
        subjects = _forbidden_publishes(gw, other, new_tenant())
        for subject in subjects:
            await bridge.call(client.nc.publish, subject, b'{"forged": true}')
        await wait_refused(client, "publish", subjects)
        # A JetStream publish to another gateway's subject gets no PubAck at all.
        with pytest.raises(nats.errors.TimeoutError):
            await js_publish(
                client,
                contracts.telemetry_subject(other.tenant_id, other.gateway_id),
                b"x",
                timeout=1,
            )
        # Nothing landed in any stream: its own publish right after is the next one.
        seq = await js_publish(
            client, contracts.telemetry_subject(gw.tenant_id, gw.gateway_id), b"{}"
        )
        after = await stack.stream_messages()
        assert after == {**before, contracts.TELEMETRY.name: before[contracts.TELEMETRY.name] + 1}
        assert seq > 0
        # The server refuses a body that widens the filter of the one create subject
        # it allows (the subject is allowed: the refusal is JetStream's).
        durable = contracts.command_durable(gw.gateway_id)
        own = contracts.command_subject(gw.tenant_id, gw.gateway_id)
        body = {
            "stream_name": "COMMANDS",
            "config": {
                "name": durable,
                "durable_name": durable,
                "filter_subject": "command.gw.>",
                "ack_policy": "explicit",
            },
        }
        answer = await request(
            client,
            contracts.js_consumer_create("COMMANDS", durable, own),
            json.dumps(body).encode(),
        )
        assert answer["error"]["code"] == 400, answer
        assert client.nc.is_connected  # refusals do not close the connection
    finally:
        await client.close()


async def test_forbidden_subscriptions_are_refused(stack: Stack) -> None:
    gw = await stack.onboard()
    other = await stack.onboard(gw.tenant_id)
    client = await stack.connect(gw)
    try:
        subjects = [
            ">",
            "telemetry.>",
            contracts.TELEMETRY_ALL,
            contracts.telemetry_subject(gw.tenant_id, gw.gateway_id),  # not even its own
            contracts.COMMANDS_ALL,
            contracts.command_subject(gw.tenant_id, gw.gateway_id),  # JetStream only
            "internal.>",
            contracts.MGMT_GATEWAY_GET_STATUS,
            contracts.ALERTS_ALL,
            contracts.DECOMMISSIONED_ALL,
            "log.>",
            contracts.INBOX_ALL,
            f"{other.inbox_prefix}.>",
            "$JS.API.>",
            contracts.SYS_USER_AUTH,
        ]
        for subject in subjects:
            await bridge.call(client.nc.subscribe, subject)
        await wait_refused(client, "subscription", subjects)
        assert client.nc.is_connected
    finally:
        await client.close()


async def test_gateways_cannot_touch_each_other(stack: Stack) -> None:
    first = await stack.onboard()
    second = await stack.onboard(first.tenant_id)  # same tenant
    third = await stack.onboard()  # another tenant
    clients: list[Client] = []
    try:
        c1 = await stack.connect(first)
        clients.append(c1)
        c2 = await stack.connect(second)
        clients.append(c2)
        c3 = await stack.connect(third)
        clients.append(c3)
        await ensure_pull_consumer(
            c1.nc, "COMMANDS", natslink.command_consumer_config(first.tenant_id, first.gateway_id)
        )
        for intruder in (c2, c3):
            targets = [
                contracts.telemetry_subject(first.tenant_id, first.gateway_id),
                contracts.command_ack_subject(first.tenant_id, first.gateway_id),
                contracts.js_consumer_info("COMMANDS", contracts.command_durable(first.gateway_id)),
                contracts.js_consumer_next("COMMANDS", contracts.command_durable(first.gateway_id)),
            ]
            for subject in targets:
                await bridge.call(intruder.nc.publish, subject, b"{}")
            await wait_refused(intruder, "publish", targets)
            await bridge.call(intruder.nc.subscribe, f"{first.inbox_prefix}.>")
            await wait_refused(intruder, "subscription", [f"{first.inbox_prefix}.>"])
        # Each still does its own.
        for client, gw in ((c2, second), (c3, third)):
            assert (
                await js_publish(
                    client, contracts.telemetry_subject(gw.tenant_id, gw.gateway_id), b"{}"
                )
                > 0
            )
        assert c1.errors == []
    finally:
        for client in clients:
            await client.close()


async def test_a_gateway_without_its_inbox_prefix_gets_no_replies(stack: Stack) -> None:
    """The inbox prefix is part of the gateway contract: the server never sees it,
    only the subscription permission enforces it."""
    gw = await stack.onboard()
    client = await (
        Client().connect(stack.server.url, gw.tls(), name="no-prefix")  # default _INBOX
    )
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await js_publish(
                client, contracts.telemetry_subject(gw.tenant_id, gw.gateway_id), b"{}", timeout=1
            )
        await eventually(lambda: any("subscription" in v for v in client.violations()))
    finally:
        await client.close()
