from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notip.envelope import iso
from notip.simulator import commands
from notip.simulator.commands import ConfigUpdate, FirmwarePush, Rejected, Unparseable

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def raw(**obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_both_spellings_of_every_key() -> None:
    snake = commands.parse(
        raw(
            command_id="c1",
            type="config_update",
            payload={"send_frequency_ms": 500},
            issued_at="2025-01-01T11:59:30Z",
        )
    )
    camel = commands.parse(
        raw(
            commandId="c1",
            type="config_update",
            payload={"sendFrequencyMs": 500},
            issuedAt="2025-01-01T11:59:30Z",
        )
    )
    for cmd in (snake, camel):
        assert cmd.command_id == "c1"
        assert not commands.expired(cmd, NOW)
        assert commands.interpret(cmd) == ConfigUpdate(send_frequency_ms=500, status=None)
    fw = commands.parse(
        raw(
            commandId="c2",
            type="firmware_push",
            payload={"firmwareVersion": "2.0", "downloadUrl": "http://x"},
        )
    )
    assert commands.interpret(fw) == FirmwarePush("2.0", "http://x")


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1,2]",
        raw(type="config_update"),
        raw(command_id=""),
        b'{"command_id": "c\\ud800", "type": "config_update", "payload": {"status": "online"}}',
    ],
)
def test_unparseable(data: bytes) -> None:
    with pytest.raises(Unparseable):
        commands.parse(data)


def test_ttl_is_60_seconds() -> None:
    def at(seconds_ago: float) -> commands.Command:
        issued = iso(NOW - dt.timedelta(seconds=seconds_ago))
        return commands.parse(
            raw(command_id="c", type="config_update", payload={}, issued_at=issued)
        )

    assert not commands.expired(at(59.9), NOW)
    assert commands.expired(at(60.1), NOW)
    assert not commands.expired(commands.parse(raw(command_id="c", type="x")), NOW)  # no issued_at
    with pytest.raises(Rejected):
        commands.expired(commands.parse(raw(command_id="c", issued_at="yesterday")), NOW)
    with pytest.raises(Rejected):
        commands.expired(commands.parse(raw(command_id="c", issued_at="2025-01-01T11:59:30")), NOW)


def test_status_aliases_are_the_contracts() -> None:
    # The alias table itself is tested in tests/unit/test_contracts.py.
    assert commands.normalise_status("Gateway-Offline") == "offline"
    with pytest.raises(Rejected, match="unknown status"):
        commands.normalise_status("gateway_paused_x")
    with pytest.raises(Rejected, match="must be a string"):
        commands.normalise_status(1)


@given(st.text())
def test_unknown_statuses_are_rejected_never_crash(text: str) -> None:
    with contextlib.suppress(Rejected):
        assert commands.normalise_status(text) in ("online", "paused", "offline")


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"command_id": "c", "type": "reboot", "payload": {}}, "unknown command type"),
        (
            {"command_id": "c", "type": "config_update", "payload": "x"},
            "payload must be a JSON object",
        ),
        (
            {"command_id": "c", "type": "config_update", "payload": {}},
            "needs send_frequency_ms or status",
        ),
        ({"command_id": "c", "type": "config_update", "payload": {"send_frequency_ms": 0}}, "> 0"),
        ({"command_id": "c", "type": "config_update", "payload": {"send_frequency_ms": -5}}, "> 0"),
        (
            {"command_id": "c", "type": "config_update", "payload": {"send_frequency_ms": 1.5}},
            "integer",
        ),
        (
            {"command_id": "c", "type": "config_update", "payload": {"send_frequency_ms": True}},
            "integer",
        ),
        (
            {"command_id": "c", "type": "config_update", "payload": {"status": "dancing"}},
            "unknown status",
        ),
        ({"command_id": "c", "type": "firmware_push", "payload": {}}, "firmware_version"),
        (
            {
                "command_id": "c",
                "type": "firmware_push",
                "payload": {"firmware_version": "1", "download_url": 3},
            },
            "download_url",
        ),
        (
            # an unpaired surrogate escape: the gateway's store cannot hold it (nack,
            # never a crash of the gateway)
            {
                "command_id": "c",
                "type": "firmware_push",
                "payload": {"firmware_version": "2\ud800", "download_url": "http://x"},
            },
            "firmware_version",
        ),
    ],
)
def test_bad_commands_are_rejected_with_a_message(obj: dict[str, object], fragment: str) -> None:
    with pytest.raises(Rejected) as info:
        commands.interpret(commands.parse(json.dumps(obj).encode()))
    assert fragment in str(info.value)


def test_unencodable_type_is_rejected_and_can_be_reported() -> None:
    """`"\\ud800"` as a type: nacked as unknown, and the type stays encodable (it goes
    into the gateway's event stream and logs)."""
    cmd = commands.parse(b'{"command_id": "c", "type": "x\\ud800", "payload": {}}')
    assert isinstance(cmd.type, str)
    cmd.type.encode("utf-8")
    with pytest.raises(Rejected, match="unknown command type"):
        commands.interpret(cmd)


def test_ack_payload_shape() -> None:
    ack = json.loads(commands.ack_payload("c1", "ack", None, NOW))
    assert ack == {"command_id": "c1", "status": "ack", "timestamp": "2025-01-01T12:00:00.000Z"}
    nack = json.loads(commands.ack_payload("c2", "nack", "unknown command type 'x'", NOW))
    assert nack["status"] == "nack" and nack["message"] == "unknown command type 'x'"
