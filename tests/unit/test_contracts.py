"""The wire contract (notip.contracts) with literal inputs: subjects and their
parsers, the stream table, status aliases and the JSON shapes both sides use."""

from __future__ import annotations

import json

import pytest

from notip import contracts, natsio
from notip.consumer import ingest
from notip.envelope import Envelope

T = "acme"
G = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def test_subject_builders() -> None:
    assert contracts.telemetry_subject(T, G) == f"telemetry.data.acme.{G}"
    assert contracts.telemetry_gateway_filter(G) == f"telemetry.data.*.{G}"
    assert contracts.command_subject(T, G) == f"command.gw.acme.{G}"
    assert contracts.command_ack_subject(T, G) == f"command.ack.acme.{G}"
    assert contracts.decommissioned_subject(T, G) == f"gateway.decommissioned.acme.{G}"
    assert contracts.audit_subject(T) == "log.audit.acme"
    assert contracts.command_durable(G) == f"gw-{G}"
    assert contracts.GW_OFFLINE_ALERT_TEMPLATE.format(tenant_id=T) == "alert.gw_offline.acme"
    assert contracts.LIVENESS_FEED_SUBJECT == "internal.consumer.liveness.seen"
    assert contracts.MGMT_SUBJECTS == (
        "internal.mgmt.factory.validate",
        "internal.mgmt.provisioning.complete",
        "internal.mgmt.alert-configs.list",
        "internal.mgmt.gateway.update-status",
        "internal.mgmt.gateway.get-status",
    )


def test_parsers_round_trip_the_builders() -> None:
    assert contracts.parse_telemetry(contracts.telemetry_subject(T, G)) == (T, G)
    assert contracts.parse_command_ack(contracts.command_ack_subject(T, G)) == (T, G)
    assert contracts.parse_decommissioned(contracts.decommissioned_subject(T, G)) == (T, G)
    assert contracts.parse_gw_offline_alert("alert.gw_offline.acme") == "acme"
    assert contracts.parse_gw_offline_alert("alert.acme.gw_offline") == "acme"


@pytest.mark.parametrize(
    "subject",
    [
        "gateway.decommissioned",
        "gateway.decommissioned.acme",
        f"gateway.decommissioned.acme.{G}.extra",
        f"gateway.decommissioned..{G}",
        "gateway.decommissioned.acme.",
        f"gateway.commissioned.acme.{G}",
        f"gateway.decommissionedX.acme.{G}",
        f"decommissioned.gateway.acme.{G}",
        f"command.ack.acme.{G}",
        "",
    ],
)
def test_the_one_decommission_parser_rejects(subject: str) -> None:
    assert contracts.parse_decommissioned(subject) is None


@pytest.mark.parametrize(
    "subject",
    [
        "alert.gw_offline",
        "alert.gw_offline.",
        "alert..gw_offline",
        "alert.gw_offline.acme.x",
        "alert.other.acme",
        "alerts.gw_offline.acme",
    ],
)
def test_alert_subject_rejects(subject: str) -> None:
    assert contracts.parse_gw_offline_alert(subject) is None


def test_telemetry_shape_rejects() -> None:
    assert contracts.parse_telemetry("telemetry.data.acme") is None
    assert contracts.parse_telemetry(f"telemetry.data.acme.{G}.x") is None
    assert contracts.parse_telemetry(f"telemetry.other.acme.{G}") is None
    assert contracts.parse_telemetry("telemetry.data." + "x." * 10_000) is None


def test_stream_table() -> None:
    assert [(s.name, s.subjects, s.max_age_s) for s in contracts.STREAMS] == [
        ("TELEMETRY", ("telemetry.data.>",), 30 * 86400.0),
        ("COMMANDS", ("command.gw.>",), 75.0),
        ("COMMAND_ACKS", ("command.ack.>",), 300.0),
        ("ALERTS", ("alert.>",), 0.0),
        ("DECOMMISSION", ("gateway.decommissioned.>",), 86400.0),
        ("AUDIT_LOG", ("log.audit.>",), 90 * 86400.0),
    ]
    # natsio's specs (which build the server configs) are the contract's table
    assert [(s.name, s.subjects, s.max_age_s) for s in natsio.STREAMS] == [
        tuple(s) for s in contracts.STREAMS
    ]


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("online", "online"),
        ("GATEWAY_ONLINE", "online"),
        ("gateway-online", "online"),
        ("paused", "paused"),
        ("Suspended", "paused"),
        ("gateway suspended", "paused"),
        ("gateway_suspended", "paused"),
        ("gateway\tsuspended", "paused"),
        ("offline", "offline"),
        ("Gateway-Offline", "offline"),
        (" offline ", "offline"),
    ],
)
def test_status_aliases(alias: str, canonical: str) -> None:
    assert contracts.canonical_status(alias) == canonical


@pytest.mark.parametrize("bad", ["", "on", "gateway_paused_x", None, 1, "provisioning"])
def test_unknown_statuses(bad: object) -> None:
    assert contracts.canonical_status(bad) is None


def test_command_body_is_snake_case_and_read_in_both_spellings() -> None:
    body = contracts.command_body(
        "c1", "config_update", {"send_frequency_ms": 5}, "2026-01-01T00:00:00.000000Z"
    )
    assert json.loads(body) == {
        "command_id": "c1",
        "type": "config_update",
        "payload": {"send_frequency_ms": 5},
        "issued_at": "2026-01-01T00:00:00.000000Z",
    }
    assert contracts.read_command(body) == contracts.CommandFields(
        "c1", "config_update", {"send_frequency_ms": 5}, "2026-01-01T00:00:00.000000Z"
    )
    camel = b'{"commandId":"c2","type":"firmware_push","payload":{},"issuedAt":"x"}'
    assert contracts.read_command(camel) == contracts.CommandFields("c2", "firmware_push", {}, "x")


def test_ack_body_round_trip() -> None:
    ack = contracts.ack_body("c1", "ack", None, "2025-01-01T12:00:00.000Z")
    assert ack == b'{"command_id":"c1","status":"ack","timestamp":"2025-01-01T12:00:00.000Z"}'
    assert contracts.read_ack(ack) == contracts.AckFields(
        "c1", "ack", None, "2025-01-01T12:00:00.000Z"
    )
    nack = contracts.ack_body("c2", "nack", "unknown type 'é'", "2025-01-01T12:00:00.000Z")
    assert "é" in nack.decode()  # not escaped
    assert contracts.read_ack(nack).message == "unknown type 'é'"
    assert contracts.read_ack(b'{"commandId":"c3","status":"expired"}').command_id == "c3"


@pytest.mark.parametrize(("data", "error"), [(b"nope", "not JSON"), (b"[1]", "not a JSON object")])
def test_readers_reject_non_objects(data: bytes, error: str) -> None:
    for read in (contracts.read_command, contracts.read_ack, contracts.read_gw_offline_alert):
        with pytest.raises(ValueError, match=error):
            read(data)


def test_gw_offline_alert_round_trip() -> None:
    body = contracts.gw_offline_alert_body(
        G, "2026-01-01T00:00:00.000Z", 60000, "2026-01-01T00:01Z"
    )
    assert json.loads(body) == {
        "gatewayId": G,
        "lastSeen": "2026-01-01T00:00:00.000Z",
        "timeoutMs": 60000,
        "timestamp": "2026-01-01T00:01Z",
    }
    assert contracts.read_gw_offline_alert(body) == contracts.GwOfflineFields(
        G, "2026-01-01T00:00:00.000Z", 60000, "2026-01-01T00:01Z"
    )
    snake = b'{"gateway_id":"g","last_seen":"s","timeout_ms":1}'
    assert contracts.read_gw_offline_alert(snake) == contracts.GwOfflineFields("g", "s", 1, None)
    msg_id = contracts.gw_offline_msg_id(T, G, "2026-01-01T00:00:00.000Z")
    assert msg_id == f"gw_offline.acme.{G}.2026-01-01T00:00:00.000Z"


def test_decommission_body() -> None:
    assert json.loads(contracts.decommission_body(G, "2026-01-01T00:00:00.000000Z")) == {
        "gatewayId": G,
        "timestamp": "2026-01-01T00:00:00.000000Z",
    }


def test_field_reads_snake_then_camel() -> None:
    assert contracts.camel("send_frequency_ms") == "sendFrequencyMs"
    assert contracts.field({"sendFrequencyMs": 1}, "send_frequency_ms") == 1
    assert contracts.field({"send_frequency_ms": 2, "sendFrequencyMs": 1}, "send_frequency_ms") == 2
    assert contracts.field({}, "send_frequency_ms") is None


def test_ingest_checks_the_envelope_fields_of_the_envelope_module() -> None:
    """The consumer's hot-path check names the envelope's fields as literals: it must
    accept exactly what `notip.envelope` builds, and miss none of its fields."""
    env = Envelope(
        gateway_id=G,
        sensor_id="9b2e28ba-2fa1-11d2-883f-0016d3cca427",
        sensor_type="temperature",
        timestamp="2026-01-01T00:00:00.000Z",
        key_version=1,
        encrypted_data="AAAA",
        iv="AAAAAAAAAAAAAAAA",
        auth_tag="AAAAAAAAAAAAAAAAAAAAAA==",
    )
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    row = ingest.check(contracts.telemetry_subject(T, G), env.encode(), now)
    assert row[1:3] == (T, G)
    for name in env.to_json():
        partial = {k: v for k, v in env.to_json().items() if k != name}
        with pytest.raises(ingest.Rejected):
            ingest.check(contracts.telemetry_subject(T, G), json.dumps(partial).encode(), now)
