"""Each service identity under its least-privilege row (docs/nats-auth.md#permissions):
the daemon's own code does its job on the callout server, and one forbidden operation
each is refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import trio
from nats.aio.msg import Msg

from notip import bridge, contracts, natsio
from notip.consumer.service import serve as serve_consumer
from notip.consumer.settings import Settings as ConsumerSettings
from notip.envelope import seal
from notip.jetstream.pull import ACKED, consume
from notip.natsauth import permissions
from notip.simulator import natslink
from tests.conftest import service_tls
from tests.integration.natsauth.conftest import (
    Client,
    Stack,
    connect_client,
    js_publish,
    wait_refused,
)
from tests.waiting import eventually


async def _refuses(client: Client, kind: str, subject: str) -> None:
    try:
        if kind == "publish":
            await bridge.call(client.nc.publish, subject, b"{}")
        else:
            await bridge.call(client.nc.subscribe, subject)
        await wait_refused(client, kind, [subject])
    finally:
        await client.close()


async def test_management_api(stack: Stack) -> None:
    # init-streams (and `notip dev`'s bootstrap) run as management-api: a second run
    # reads every stream and changes nothing.
    tls = service_tls(stack.pki, "management-api")
    result = await natsio.bootstrap_streams(stack.server.url, tls, timeout=20)
    assert result == {s.name: "unchanged" for s in contracts.STREAMS}
    # Its responders, durables and publishes run in `stack.mgmt` for every other test
    # (get-status for the auth service, commands, decommission events, acks, alerts).
    await _refuses(
        await stack.connect_service("management-api"), "publish", "$JS.API.STREAM.DELETE.TELEMETRY"
    )
    await _refuses(
        await stack.connect_service("management-api"),
        "publish",
        contracts.telemetry_subject("t", str(uuid.uuid4())),
    )


async def test_provisioning(stack: Stack) -> None:
    before = (await stack.stream_messages())[contracts.AUDIT_LOG.name]
    await stack.onboard()  # factory.validate, provisioning.complete, the audit event
    assert (await stack.stream_messages())[contracts.AUDIT_LOG.name] == before + 1
    await _refuses(
        await stack.connect_service("provisioning"), "subscription", contracts.TELEMETRY_ALL
    )


async def test_data_api(stack: Stack) -> None:
    gw = await stack.onboard()
    tail = await stack.connect_service("data-api")
    got: list[str] = []
    token = trio.lowlevel.current_trio_token()

    async def on_msg(msg: Msg) -> None:
        token.run_sync_soon(got.append, msg.subject)

    try:
        await bridge.call(
            tail.nc.subscribe, contracts.telemetry_gateway_filter(gw.gateway_id), cb=on_msg
        )
        await tail.flush()
        client = await stack.connect(gw)
        try:
            await js_publish(
                client, contracts.telemetry_subject(gw.tenant_id, gw.gateway_id), b"{}"
            )
        finally:
            await client.close()
        await eventually(lambda: got == [contracts.telemetry_subject(gw.tenant_id, gw.gateway_id)])
        assert tail.errors == []
    finally:
        await tail.close()
    await _refuses(
        await stack.connect_service("data-api"), "publish", contracts.command_subject("t", "g")
    )


async def test_simulator_service_connection(stack: Stack) -> None:
    """The simulator's own identity runs its decommission listener (the shared pull
    loop with the simulator's durable configuration)."""
    assert stack.mgmt is not None
    gw = await stack.onboard()
    tls = natsio.tls_context(service_tls(stack.pki, "simulator"))
    seen: list[tuple[str, str] | None] = []

    async def handle(msg: Msg) -> str:
        seen.append(contracts.parse_decommissioned(msg.subject))
        return ACKED

    nc = await natsio.connect(stack.server.url, tls, name="test-simulator")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: consume(
                    nc,
                    contracts.DECOMMISSION.name,
                    natslink.decommission_consumer_config(
                        permissions.SIMULATOR_DECOMMISSION_DURABLE
                    ),
                    handle,
                    batch=10,
                    task_status=task_status,
                )
            )
            await stack.mgmt.decommission(gw.gateway_id)
            await eventually(lambda: (gw.tenant_id, gw.gateway_id) in seen)
            nursery.cancel_scope.cancel()
    finally:
        await natsio.drain(nc)
    await _refuses(
        await stack.connect_service("simulator"),
        "publish",
        contracts.telemetry_subject(gw.tenant_id, gw.gateway_id),
    )


async def test_nats_auth_identities(stack: Stack) -> None:
    # Its needs run in every test (callout answers, get-status, its durable, CONNZ and
    # KICK through the system user).
    await _refuses(
        await stack.connect_service("nats-auth"), "subscription", contracts.TELEMETRY_ALL
    )
    await _refuses(
        await stack.connect_service("nats-auth"), "publish", contracts.command_subject("t", "g")
    )
    system = await connect_client(
        stack.server.url,
        natsio.tls_context(service_tls(stack.pki, "nats-auth")),
        name="test-system",
        nkeys_seed=stack.pki.system_user_seed,
    )
    await _refuses(system, "publish", "$SYS.REQ.ACCOUNT.PING.CONNZ")


def _consumer_env(stack: Stack, dsn: str, tmp_path: Path) -> dict[str, str]:
    u = urlparse(dsn)
    password = tmp_path / "db-password"
    password.write_text(f"{u.password}\n")
    pki = stack.pki
    return {
        "NATS_URL": stack.server.url,
        "NATS_TLS_CA": str(pki.ca_cert),
        "NATS_TLS_CERT": str(pki.cert("data-consumer")),
        "NATS_TLS_KEY": str(pki.key("data-consumer")),
        "DB_HOST": u.hostname or "127.0.0.1",
        "DB_PORT": str(u.port or 5432),
        "DB_NAME": u.path.lstrip("/"),
        "DB_USER": u.username or "notip",
        "DB_PASSWORD_FILE": str(password),
        "DB_SSL_MODE": "require",
        "DB_MIN_CONNS": "1",
        "DB_MAX_CONNS": "5",
        "METRICS_ADDR": "127.0.0.1:0",
        # The default durable names and feed subject: the only ones its row allows.
        "INGEST_DELIVER_POLICY": "new",
        "INGEST_WRITERS": "2",
        "INGEST_BATCH_SIZE": "50",
        "INGEST_FLUSH_MS": "20",
        "INGEST_MAX_ACK_PENDING": "5000",
        "HEARTBEAT_TICK_MS": "100",
        "HEARTBEAT_GRACE_PERIOD_MS": "0",
        "MGMT_REQUEST_TIMEOUT_MS": "2000",
        "SHUTDOWN_TIMEOUT_MS": "5000",
    }


async def _rows(dsn: str, tenant: str) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(dsn, ssl="require")
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM telemetry WHERE tenant_id = $1", tenant)
            )
        finally:
            await conn.close()

    return await bridge.call(run)


async def test_data_consumer(stack: Stack, pg_database: str, tmp_path: Path) -> None:
    """The whole consumer: ingest durable, alert-configs, get-status, update-status,
    the gw_offline alert (recorded by management's alerts durable), its decommission
    durable (bound before it reports ready), the liveness feed."""
    assert stack.mgmt is not None
    gw = await stack.onboard()
    await stack.mgmt.set_tenant_timeout(gw.tenant_id, 1000)
    settings = ConsumerSettings.from_env(_consumer_env(stack, pg_database, tmp_path))
    assert settings.durable_name == permissions.CONSUMER_TELEMETRY_DURABLE
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            info: Any = await nursery.start(serve_consumer, settings)
        assert info.ready
        client = await stack.connect(gw)
        try:
            envelope = seal(
                gw.aes_key,
                gateway_id=gw.gateway_id,
                sensor_id=str(uuid.uuid4()),
                sensor_type="temperature",
                value=21.5,
            )
            subject = contracts.telemetry_subject(gw.tenant_id, gw.gateway_id)
            await js_publish(client, subject, envelope.encode())
        finally:
            await client.close()
        await eventually(lambda: _rows(pg_database, gw.tenant_id), what="the reading's row")
        # Silent past its 1 s timeout: management gets the alert and the status.
        alerts = await stack.mgmt.wait_alerts(gw.tenant_id, gw.gateway_id)
        assert alerts[0]["gateway_id"] == gw.gateway_id
        mgmt = stack.mgmt

        async def offline() -> bool:
            return (await mgmt.get_gateway(gw.gateway_id))["status"] == "offline"

        await eventually(offline, what="the offline status reported to management")
        nursery.cancel_scope.cancel()
    feed = await stack.connect_service("data-consumer")
    try:
        await bridge.call(feed.nc.publish, contracts.LIVENESS_FEED_SUBJECT, json.dumps([]).encode())
        await feed.flush()
        assert feed.errors == []
    finally:
        await feed.close()
    await _refuses(
        await stack.connect_service("data-consumer"),
        "publish",
        contracts.command_subject(gw.tenant_id, gw.gateway_id),
    )
