"""A simulated gateway's footprint on a real nats-server: exactly what a per-gateway
identity is allowed (issue 12: publish its telemetry and command acks, create its
durable only through the filtered-create subject, read its info, pull from it, ack
its messages; subscribe only under `_INBOX.{gatewayId}`), and what happens when the
server refuses one of its publishes.

The session server has no per-gateway users yet, so the gateways connect in shared
mode here; what they send does not depend on the certificate they present.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from notip import bridge, contracts, envelope, natsio, pki
from notip.localservers import NatsServer
from notip.pki import PkiPaths
from notip.simulator import natslink
from notip.simulator.settings import Settings
from tests.conftest import service_tls
from tests.platform_fixtures import MgmtHandle
from tests.waiting import eventually

from .conftest import SimHandle, running_simulator


@dataclasses.dataclass
class Wire:
    """Every message the server routes, as (subject, reply)."""

    seen: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    async def on_msg(self, msg: Any) -> None:
        self.seen.append((msg.subject, msg.reply))


def allowed_requests(tenant: str, gateway: str) -> set[str]:
    durable = contracts.command_durable(gateway)
    stream = contracts.COMMANDS.name
    return {
        contracts.telemetry_subject(tenant, gateway),
        contracts.command_ack_subject(tenant, gateway),
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.{contracts.command_subject(tenant, gateway)}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
    }


async def gateway_subscriptions(monitor_url: str, gateway: str) -> list[str]:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"{monitor_url}/connz", params={"subs": "detail", "limit": 4096})
    r.raise_for_status()
    conns = [c for c in r.json()["connections"] if c.get("name") == f"notip-sim-{gateway}"]
    assert len(conns) == 1, conns
    return [s["subject"] for s in conns[0].get("subscriptions_list_detail", [])]


async def test_a_gateway_uses_only_its_own_subjects_and_inbox(
    sim: SimHandle, nc: Any, nats_server: NatsServer
) -> None:
    wire = Wire()
    sub = await bridge.call(nc.subscribe, ">", cb=wire.on_msg)
    await bridge.call(nc.flush)
    try:
        gw, seeded = await sim.create(send_frequency_ms=100)
        await sim.add_sensor(gw["id"])
        gid, tenant = gw["id"], seeded.tenant_id
        labels = {"gateway_id": gid}
        await eventually(lambda: sim.sample("notip_sim_envelopes_published_total", **labels) >= 3)
        mgmt = sim.mgmt
        assert mgmt is not None
        cmd = await mgmt.send_config(gid, send_frequency_ms=150)
        assert (await mgmt.wait_command_status(gid, cmd["command_id"]))["status"] == "ack"
        ack_prefix = f"$JS.ACK.{contracts.COMMANDS.name}.{contracts.command_durable(gid)}."
        await eventually(lambda: any(s.startswith(ack_prefix) for s, _ in wire.seen))
        subs = await gateway_subscriptions(nats_server.monitor_url, gid)
    finally:
        await bridge.call(sub.unsubscribe)

    inbox = contracts.gateway_inbox_prefix(gid) + "."
    # Everything the gateway asked for (a reply expected): only its own subjects, and
    # the durable created through the filtered subject (never DURABLE.CREATE).
    requests = {s for s, reply in wire.seen if reply.startswith(inbox)}
    assert requests == allowed_requests(tenant, gid)
    # The answers (PubAcks, API replies, the pulled command) came back to its inbox,
    # and that is all it subscribes to.
    assert any(s.startswith(inbox) for s, _ in wire.seen)
    assert subs and all(s.startswith(inbox) for s in subs), subs
    assert sim.sample("notip_sim_nats_permission_errors_total", **labels) == 0


# -- a server that refuses the simulator's telemetry ---------------------------------------


class RestrictedNats(NatsServer):
    """nats-server as the session's, but the `simulator` identity may not publish
    telemetry: its gateways' telemetry publishes are refused (permissions violation)."""

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        q = json.dumps
        self.config_path.write_text(
            f"""server_name: "restricted"
host: "127.0.0.1"
port: {self.port}
http_port: {self.monitor_port}
jetstream {{ store_dir: {q(str((self.workdir / "js").resolve()))} }}
tls {{
  cert_file: {q(str(self.pki.nats_server_cert))}
  key_file: {q(str(self.pki.nats_server_key))}
  ca_file: {q(str(self.pki.ca_cert))}
  verify: true
  verify_and_map: true
  timeout: 5
}}
authorization {{
  users: [
    {{ user: {q(pki.service_user("management-api"))} }}
    {{ user: {q(pki.service_user("simulator"))},
       permissions: {{ publish: {{ deny: [{q(contracts.TELEMETRY_ALL)}] }} }} }}
  ]
}}
"""
        )


@pytest.fixture
def restricted(workdir: Path, pki: PkiPaths, tmp_path: Path) -> Iterator[NatsServer]:
    with RestrictedNats(tmp_path / "restricted-nats", pki.root) as server:
        bridge.run(lambda: natsio.bootstrap_streams(server.url, service_tls(pki, "management-api")))
        yield server


async def test_refused_publishes_are_counted_logged_once_and_never_restart_the_gateway(
    sim_settings: Settings,
    mgmt: MgmtHandle,
    restricted: NatsServer,
    pki: PkiPaths,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = dataclasses.replace(sim_settings, nats_url=restricted.url, publish_timeout_s=0.5)
    tls = natsio.tls_context(service_tls(pki, "management-api"))
    with trio.fail_after(10):
        probe = await natsio.connect(restricted.url, tls, name="restricted-probe")
    caplog.set_level(logging.WARNING)
    try:
        async with running_simulator(settings, mgmt) as sim:
            gw, seeded = await sim.create(send_frequency_ms=100)
            await sim.add_sensor(gw["id"])
            gid, tenant = gw["id"], seeded.tenant_id
            labels = {"gateway_id": gid}
            await eventually(
                lambda: sim.sample("notip_sim_nats_permission_errors_total", **labels) >= 5
            )
            # Refused publishes get no PubAck: counted as publish errors, kept buffered.
            await eventually(lambda: sim.sample("notip_sim_publish_errors_total", **labels) >= 1)
            assert sim.sample("notip_sim_envelopes_published_total", **labels) == 0
            info = await bridge.call(probe.jetstream().stream_info, contracts.TELEMETRY.name)
            assert info.state.messages == 0

            # The connection stays up and its commands still work.
            assert (await sim.gateway(gid))["connected"] is True
            acks: list[Any] = []

            async def on_ack(msg: Any) -> None:
                acks.append(json.loads(msg.data))

            await bridge.call(
                probe.subscribe, contracts.command_ack_subject(tenant, gid), cb=on_ack
            )
            now = envelope.iso(dt.datetime.now(dt.UTC))
            body = contracts.command_body(
                "c-restricted", "config_update", {"send_frequency_ms": 200}, now
            )
            await bridge.call(
                probe.jetstream().publish, contracts.command_subject(tenant, gid), body
            )
            await eventually(lambda: acks)
            assert acks[0]["status"] == "ack"
            assert sim.sample("notip_sim_nats_permission_errors_total", **labels) >= 5
    finally:
        await bridge.shielded(natslink.close, probe, timeout=5)

    connection = f"notip-sim-{gid}"
    warned = [
        r
        for r in caplog.records
        if r.name == "notip.nats"
        and "permissions violation" in r.getMessage()
        and getattr(r, "connection", None) == connection
    ]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    restarts = [r for r in caplog.records if "gateway failed; restarting" in r.getMessage()]
    assert restarts == []
