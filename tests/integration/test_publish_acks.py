"""notip.jetstream.publish's telemetry path on a real nats-server: core publishes with
a reply subject each, handed to the connection in one write, answered on one
`{prefix}.*` subscription whose replies are handled where nats-py's reader delivers
them, classified by acks.is_pub_ack; and the same when the guarded nats-py attributes
are missing (one `publish` each, a callback subscription)."""

from __future__ import annotations

import uuid

import pytest

from notip import bridge, guards, natsio
from notip.jetstream import publish
from notip.jetstream.acks import AckLedger
from tests.waiting import eventually


def test_pub_frames_are_nats_protocol_bytes() -> None:
    batch = publish.CorePublish(None, "t.a.b", "_INBOX.g.x", ["1", "a"], [b"{}", b"xyz"])  # type: ignore[arg-type]
    assert publish.pub_frames(batch) == (
        b"PUB t.a.b _INBOX.g.x.1 2\r\n{}\r\nPUB t.a.b _INBOX.g.x.a 3\r\nxyz\r\n"
    )


@pytest.mark.parametrize("path", ["fast", "guards missing"])
async def test_every_envelope_is_answered_on_the_ack_subscription(
    nc: natsio.NATS, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    def missing(guard: str) -> float:
        labels = {"guard": guard}
        return guards.REGISTRY.get_sample_value("notip_library_guard_missing_total", labels) or 0

    write_before = missing(guards.NATS_TRANSPORT_WRITE)
    sink_before = missing(guards.NATS_REPLY_SINK)
    if path == "guards missing":
        # As if nats-py had moved them: one publish each, a callback subscription.
        monkeypatch.setattr(publish, "_TRANSPORT", "_not_there")
        monkeypatch.setattr(publish, "_PENDING_QUEUE", "_not_there")
    name = f"T{uuid.uuid4().hex[:10]}"
    subject = f"acktest{uuid.uuid4().hex[:8]}"
    js = nc.jetstream()
    await bridge.call(js.add_stream, name=name, subjects=[f"{subject}.stored"])
    try:
        ledger: AckLedger[str] = AckLedger()
        prefix = await bridge.call(publish.subscribe_acks, nc, ledger.on_reply)
        payloads = [f'{{"n":{i}}}'.encode() for i in range(50)]
        stored = publish.CorePublish(
            nc, f"{subject}.stored", prefix, ledger.register("s", payloads, 1e9), payloads
        )
        # No stream captures this one: the server answers 503 (no responders).
        nowhere = publish.CorePublish(
            nc, f"{subject}.nowhere", prefix, ledger.register("n", payloads[:3], 1e9), payloads[:3]
        )
        sent = await bridge.call(publish.publish_expecting_acks, [stored, nowhere])
        assert sent == [50, 3]
        await eventually(lambda: len(ledger) == 0)
        out = ledger.take()
        assert (out["s"].confirmed, out["s"].failed) == (50, [])
        assert (out["n"].confirmed, out["n"].failed) == (0, payloads[:3])
        info = await bridge.call(js.stream_info, name)
        assert info.state.messages == 50
        # Counted each time the slow path was taken (per batch, per subscription).
        slow = path == "guards missing"
        assert missing(guards.NATS_TRANSPORT_WRITE) == write_before + (2 if slow else 0)
        assert missing(guards.NATS_REPLY_SINK) == sink_before + (1 if slow else 0)
    finally:
        await bridge.call(js.delete_stream, name)
