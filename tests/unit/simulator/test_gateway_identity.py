"""A gateway's NATS identity with literal inputs: its inbox prefix, its command durable
created through the filtered-create API subject only, the certificate each
connection presents (own / shared), and refused operations counted per gateway.

The same footprint is checked on a real server in
tests/integration/simulator/test_gateway_wire.py."""

from __future__ import annotations

import dataclasses
import json
import ssl
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.aio.client import ServerVersion
from nats.js import JetStreamContext

from notip import contracts, natsio, pki
from notip.jetstream.consumers import ensure_pull_consumer
from notip.simulator import natslink
from notip.simulator.gateway import GatewayDeps, GatewayRuntime
from notip.simulator.model import GatewayRecord
from notip.simulator.tls import TlsContexts

from .conftest import make_record, make_settings

T = "acme"
G = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
INFO = f"$JS.API.CONSUMER.INFO.COMMANDS.gw-{G}"
FILTERED_CREATE = f"$JS.API.CONSUMER.CREATE.COMMANDS.gw-{G}.command.gw.{T}.{G}"


def test_inbox_prefix() -> None:
    assert contracts.gateway_inbox_prefix(G) == f"_INBOX.{G}"


def test_command_consumer_is_named_after_its_durable() -> None:
    config = natslink.command_consumer_config(T, G)
    assert config.name == config.durable_name == f"gw-{G}"
    assert config.filter_subject == f"command.gw.{T}.{G}"


# -- the JetStream API subjects ensure_pull_consumer sends, through nats-py itself --------


@dataclasses.dataclass
class FakeMsg:
    data: bytes


class JsApiRecorder:
    """Just enough of a nats-py client for its JetStream manager: records each API
    request and answers from `server_config` (None: the durable does not exist)."""

    def __init__(self, server_config: dict[str, Any] | None) -> None:
        self.server_config = server_config
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.connected_server_version = ServerVersion("2.15.1")

    def jetstream(self) -> JetStreamContext:
        return JetStreamContext(self)  # type: ignore[arg-type]

    def _info(self, config: dict[str, Any]) -> bytes:
        return json.dumps(
            {
                "type": "io.nats.jetstream.api.v1.consumer_info_response",
                "stream_name": "COMMANDS",
                "name": config["durable_name"],
                "created": "2026-01-01T00:00:00Z",
                "config": config,
                "delivered": {"consumer_seq": 0, "stream_seq": 0},
                "ack_floor": {"consumer_seq": 0, "stream_seq": 0},
                "num_ack_pending": 0,
                "num_redelivered": 0,
                "num_waiting": 0,
                "num_pending": 0,
            }
        ).encode()

    async def request(self, subject: str, payload: bytes, timeout: float = 5) -> FakeMsg:
        body = json.loads(payload) if payload else {}
        self.requests.append((subject, body))
        if subject.startswith("$JS.API.CONSUMER.INFO."):
            if self.server_config is None:
                err = {"code": 404, "err_code": 10014, "description": "consumer not found"}
                return FakeMsg(json.dumps({"error": err}).encode())
            return FakeMsg(self._info(self.server_config))
        self.server_config = body["config"]
        return FakeMsg(self._info(body["config"]))


def server_side(config: dict[str, Any]) -> dict[str, Any]:
    """The config as a server reports it: `name` is always filled in for a durable."""
    return {**config, "name": config["durable_name"]}


async def test_a_new_durable_is_created_through_the_filtered_subject(aio_loop: None) -> None:
    nc = JsApiRecorder(None)
    result, info = await ensure_pull_consumer(
        nc,  # type: ignore[arg-type]
        "COMMANDS",
        natslink.command_consumer_config(T, G),
    )
    assert result == "created" and info.name == f"gw-{G}"
    assert [s for s, _ in nc.requests] == [INFO, FILTERED_CREATE]
    body = nc.requests[1][1]
    assert body["stream_name"] == "COMMANDS"
    assert body["config"]["name"] == body["config"]["durable_name"] == f"gw-{G}"
    assert body["config"]["filter_subject"] == f"command.gw.{T}.{G}"


async def test_an_existing_durable_costs_one_info_request(aio_loop: None) -> None:
    want = natslink.command_consumer_config(T, G)
    nc = JsApiRecorder(server_side(want.as_dict()))
    result, _ = await ensure_pull_consumer(nc, "COMMANDS", want)  # type: ignore[arg-type]
    assert result == "unchanged"
    assert [s for s, _ in nc.requests] == [INFO]


async def test_a_drifted_durable_is_updated_through_the_filtered_subject(aio_loop: None) -> None:
    want = natslink.command_consumer_config(T, G)
    drifted = server_side(want.as_dict())
    drifted["ack_wait"] = 5_000_000_000  # ns: 5 s instead of 30 s
    nc = JsApiRecorder(drifted)
    result, _ = await ensure_pull_consumer(nc, "COMMANDS", want)  # type: ignore[arg-type]
    assert result == "updated"
    assert [s for s, _ in nc.requests] == [INFO, FILTERED_CREATE]
    assert nc.requests[1][1]["config"]["ack_wait"] == 30_000_000_000


# -- which certificate each connection presents ---------------------------------------------


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> tuple[pki.PkiPaths, GatewayRecord]:
    paths = pki.PkiPaths(tmp_path_factory.mktemp("pki"))
    pki.init_pki(paths.root)
    ca_key, ca_cert = pki.load_ca(paths)
    key = pki.new_key()
    cert = pki.sign_gateway_csr(
        ca_key,
        ca_cert,
        pki.load_csr(pki.make_gateway_csr(key)),
        gateway_id=G,
        tenant_id=T,
        days=1,
    )
    rec = make_record(
        id=G,
        tenant_id=T,
        cert_pem=pki.cert_pem(cert).decode(),
        key_pem=pki.key_pem(key).decode(),
    )
    return paths, rec


def test_own_identity_loads_each_gateways_certificate(
    tmp_path: Path, issued: tuple[pki.PkiPaths, GatewayRecord]
) -> None:
    paths, rec = issued
    service = natsio.TlsFiles(paths.ca_cert, paths.cert("simulator"), paths.key("simulator"))
    contexts = TlsContexts(make_settings(tmp_path, nats_tls=service))
    own = contexts(rec)
    assert own is not contexts.service()  # the simulator's own connection keeps its own
    assert contexts(rec) is own  # loaded once per gateway
    contexts.forget(rec.id)
    assert contexts(rec) is not own
    broken = dataclasses.replace(rec, id="other", cert_pem="not a certificate")
    with pytest.raises(ssl.SSLError):
        contexts(broken)


def test_shared_identity_gives_every_gateway_the_service_certificate(
    tmp_path: Path, issued: tuple[pki.PkiPaths, GatewayRecord]
) -> None:
    paths, rec = issued
    service = natsio.TlsFiles(paths.ca_cert, paths.cert("simulator"), paths.key("simulator"))
    contexts = TlsContexts(make_settings(tmp_path, nats_tls=service, gateway_identity="shared"))
    other = dataclasses.replace(rec, id="other", cert_pem="", key_pem="")
    assert contexts(rec) is contexts(other) is contexts.service()


def test_no_service_certificate_no_service_context(tmp_path: Path) -> None:
    contexts = TlsContexts(make_settings(tmp_path))
    with pytest.raises(ValueError, match="NATS_TLS_CERT"):
        contexts.service()


# -- refused operations ---------------------------------------------------------------------


def refused(subject: str) -> nats.errors.Error:
    # As nats-py hands the server's -ERR to the error callback: lower-cased.
    return nats.errors.Error(f'nats: permissions violation for publish to "{subject}"')


def test_permission_violations_are_recognised() -> None:
    assert natsio.is_permission_violation(refused("telemetry.data.a.b"))
    assert natsio.is_permission_violation(
        nats.errors.Error('nats: Permissions Violation for Subscription to "_INBOX.>"')
    )
    assert not natsio.is_permission_violation(nats.errors.Error("nats: 'Authorization Violation'"))
    assert not natsio.is_permission_violation(OSError("permissions violation"))


async def test_refused_operations_are_counted_per_gateway(deps: GatewayDeps) -> None:
    rec = make_record()
    runtime = GatewayRuntime(rec, deps)

    def count() -> float:
        value = deps.metrics.registry.get_sample_value(
            "notip_sim_nats_permission_errors_total", {"gateway_id": rec.id}
        )
        return value or 0.0

    runtime._note_error(refused(f"telemetry.data.{T}.other"))
    runtime._note_error(refused(f"telemetry.data.{T}.other"))
    assert (
        rec.last_error
        == f'nats server: nats: permissions violation for publish to "telemetry.data.{T}.other"'
    )
    runtime._note_error(nats.errors.Error("nats: 'Authorization Violation'"))
    assert count() == 2
    deps.metrics.remove_gateway(rec.id)
    assert count() == 0
