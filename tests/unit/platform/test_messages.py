"""Wire formats of the management stand-in (docs/contracts.md#commands-and-acks, docs/contracts.md#alerts-and-decommission-events, docs/contracts.md#management-admin-http): pure."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from notip.platform.management import messages
from notip.platform.validation import BadInput

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
TENANT = str(uuid.uuid4())
GW = str(uuid.uuid4())


def test_config_payload_normalizes_and_requires_one_field() -> None:
    assert messages.config_payload({"send_frequency_ms": 500}) == {"send_frequency_ms": 500}
    assert messages.config_payload({"status": "gateway_suspended"}) == {"status": "paused"}
    assert messages.config_payload({"send_frequency_ms": 1, "status": "ONLINE"}) == {
        "send_frequency_ms": 1,
        "status": "online",
    }
    with pytest.raises(BadInput, match="at least one"):
        messages.config_payload({})
    with pytest.raises(BadInput, match="at least one"):
        messages.config_payload({"status": None, "send_frequency_ms": None})


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"send_frequency_ms": 0}, "send_frequency_ms must be > 0"),
        ({"send_frequency_ms": -5}, "send_frequency_ms must be > 0"),
        ({"send_frequency_ms": True}, "send_frequency_ms must be an integer"),
        ({"send_frequency_ms": 1.5}, "send_frequency_ms must be an integer"),
        ({"send_frequency_ms": "100"}, "send_frequency_ms must be an integer"),
        ({"status": "sleeping"}, "status must be one of"),
        ({"status": "online", "colour": "red"}, "unknown field"),
    ],
)
def test_config_payload_rejects(body: dict[str, object], match: str) -> None:
    with pytest.raises(BadInput, match=match):
        messages.config_payload(body)


def test_firmware_payload() -> None:
    body = {"firmware_version": "2.0.1", "download_url": "https://fw.example/2.0.1.bin"}
    assert messages.firmware_payload(body) == body
    with pytest.raises(BadInput, match="download_url"):
        messages.firmware_payload({"firmware_version": "2", "download_url": "ftp://x/y"})
    with pytest.raises(BadInput, match="firmware_version"):
        messages.firmware_payload({"firmware_version": "", "download_url": "https://x/y"})
    with pytest.raises(BadInput, match="firmware_version"):
        messages.firmware_payload({"download_url": "https://x/y"})


def test_command_status_queued_then_timeout_after_75_s() -> None:
    issued = "2026-01-02T03:04:05.678000Z"

    def at(seconds: float) -> messages.CommandView:
        return messages.resolve_command_status(
            stored_status="queued",
            issued_at=issued,
            acked_at=None,
            message=None,
            now=T0 + dt.timedelta(seconds=seconds),
        )

    assert at(0).status == "queued" and at(0).timestamp == issued
    assert at(74.999).status == "queued"
    assert at(75).status == "timeout"
    late = at(500)
    assert late.status == "timeout"
    assert late.timestamp == "2026-01-02T03:05:20.678000Z"  # issued_at + 75 s


def test_command_status_recorded_ack_wins_and_timeout_is_a_parameter() -> None:
    issued = "2026-01-02T03:04:05.678000Z"
    view = messages.resolve_command_status(
        stored_status="nack",
        issued_at=issued,
        acked_at="2026-01-02T03:04:06.000000Z",
        message="bad payload",
        now=T0 + dt.timedelta(hours=1),
    )
    assert (view.status, view.timestamp, view.message) == (
        "nack",
        "2026-01-02T03:04:06.000000Z",
        "bad payload",
    )
    quick = messages.resolve_command_status(
        stored_status="queued",
        issued_at=issued,
        acked_at=None,
        message=None,
        now=T0 + dt.timedelta(seconds=2),
        timeout_s=1.5,
    )
    assert quick.status == "timeout"


@pytest.mark.parametrize("key", ["command_id", "commandId"])
def test_parse_ack_reads_both_spellings(key: str) -> None:
    cid = str(uuid.uuid4())
    data = json.dumps({key: cid, "status": "ack", "timestamp": "2026-01-02T03:04:05Z"}).encode()
    ack = messages.parse_ack(f"command.ack.{TENANT}.{GW}", data, now=T0)
    assert (ack.tenant_id, ack.gateway_id, ack.command_id, ack.status) == (TENANT, GW, cid, "ack")
    assert ack.timestamp == "2026-01-02T03:04:05.000000Z"


def test_parse_ack_keeps_nack_message_and_defaults_timestamp() -> None:
    cid = str(uuid.uuid4())
    data = json.dumps({"command_id": cid, "status": "nack", "message": "nope"}).encode()
    ack = messages.parse_ack(f"command.ack.{TENANT}.{GW}", data, now=T0)
    assert ack.message == "nope"
    assert ack.timestamp == "2026-01-02T03:04:05.678000Z"


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        (f"command.ack.{TENANT}", {"command_id": str(uuid.uuid4()), "status": "ack"}),
        (f"command.ack.{TENANT}.not-a-uuid", {"command_id": str(uuid.uuid4()), "status": "ack"}),
        (f"command.ack.{TENANT}.{GW}", {"command_id": "x", "status": "ack"}),
        (f"command.ack.{TENANT}.{GW}", {"command_id": str(uuid.uuid4()), "status": "done"}),
        (f"command.ack.{TENANT}.{GW}", [1, 2]),
    ],
)
def test_parse_ack_rejects(subject: str, body: object) -> None:
    with pytest.raises(BadInput):
        messages.parse_ack(subject, json.dumps(body).encode(), now=T0)


@pytest.mark.parametrize("subject", [f"alert.gw_offline.{TENANT}", f"alert.{TENANT}.gw_offline"])
def test_parse_alert_both_subject_forms(subject: str) -> None:
    data = json.dumps(
        {
            "gatewayId": GW,
            "lastSeen": "2026-01-02T03:04:05.123Z",
            "timeoutMs": 60000,
            "timestamp": "2026-01-02T03:05:05.123Z",
        }
    ).encode()
    alert = messages.parse_alert(subject, data)
    assert (alert.tenant_id, alert.gateway_id, alert.timeout_ms) == (TENANT, GW, 60000)
    assert alert.last_seen == "2026-01-02T03:04:05.123000Z"


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        (
            f"alert.gw_online.{TENANT}",
            {"gatewayId": GW, "lastSeen": "2026-01-01T00:00:00Z", "timeoutMs": 1},
        ),
        (f"alert.gw_offline.{TENANT}", {"gatewayId": GW, "lastSeen": "yesterday", "timeoutMs": 1}),
        (
            f"alert.gw_offline.{TENANT}",
            {"gatewayId": GW, "lastSeen": "2026-01-01T00:00:00", "timeoutMs": 1},
        ),
        (
            f"alert.gw_offline.{TENANT}",
            {"gatewayId": GW, "lastSeen": "2026-01-01T00:00:00Z", "timeoutMs": -1},
        ),
        (f"alert.gw_offline.{TENANT}", {"lastSeen": "2026-01-01T00:00:00Z", "timeoutMs": 1}),
    ],
)
def test_parse_alert_rejects(subject: str, body: object) -> None:
    with pytest.raises(BadInput):
        messages.parse_alert(subject, json.dumps(body).encode())
