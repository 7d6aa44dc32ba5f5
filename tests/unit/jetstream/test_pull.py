from __future__ import annotations

import pytest
from nats.js import api

from notip.jetstream.consumers import drift
from notip.jetstream.pull import Credit, ack_frames, next_subject, status_action


def test_keeps_about_two_batches_of_credit() -> None:
    c = Credit(200, min_request=50, expires_s=30, heartbeat_s=5)
    assert c.want(buffered=0) == 200
    c.requested(200, now=0)
    assert c.want(buffered=0) == 0
    for _ in range(120):
        c.delivered()
    assert c.outstanding == 80
    # 120 delivered and still buffered: no room yet.
    assert c.want(buffered=120) == 0
    # The batch was handed out: top up to the target.
    assert c.want(buffered=0) == 120
    c.requested(120, now=1)
    assert (c.outstanding, c.requests) == (200, 2)
    for _ in range(80):
        c.delivered()
    assert (c.outstanding, c.requests) == (120, 1)  # the first request is filled


def test_small_top_ups_wait_for_min_request() -> None:
    c = Credit(200, min_request=100)
    c.requested(200, now=0)
    for _ in range(60):
        c.delivered()
    assert c.want(buffered=0) == 0  # 60 < min_request
    for _ in range(40):
        c.delivered()
    assert c.want(buffered=0) == 100


def test_status_replies_release_the_right_request() -> None:
    c = Credit(100)
    c.requested(10, now=0)
    c.requested(20, now=1)
    c.ended_oldest()  # 408: the oldest expired
    assert c.outstanding == 20
    c.requested(5, now=2)
    c.ended_newest()  # 409 exceeded: the one just sent was refused
    assert c.outstanding == 20
    c.reset()
    assert c.outstanding == 0 and c.requests == 0


def test_lost_expiry_and_stalls_are_detected() -> None:
    c = Credit(100, expires_s=30, heartbeat_s=5)
    c.requested(100, now=0)
    assert not c.stalled(now=10)
    assert c.stalled(now=11.5)  # > 2 heartbeats + 1 s of silence
    c.touch(now=11)
    assert not c.stalled(now=12)
    assert c.expire(now=34) == 0  # expiry 30 + slack 5
    assert c.expire(now=36) == 1
    assert c.outstanding == 0 and not c.stalled(now=100)


def test_first_request_starts_the_heartbeat_clock() -> None:
    c = Credit(10, heartbeat_s=5)
    c.requested(10, now=1000)
    assert not c.stalled(now=1005)


@pytest.mark.parametrize(
    ("code", "desc", "action"),
    [
        ("100", "Idle Heartbeat", "heartbeat"),
        ("404", "No Messages", "ended_oldest"),
        ("408", "Request Timeout", "ended_oldest"),
        ("409", "Exceeded MaxWaiting", "ended_newest"),
        ("409", "Exceeded MaxRequestBatch of 100", "ended_newest"),
        ("409", "Message Size Exceeds MaxBytes", "ended_newest"),
        ("409", "Consumer Deleted", "unbound"),
        ("409", "Consumer is push based", "unbound"),
        ("409", "Leadership Change", "reset"),
        ("409", "Server Shutdown", "reset"),
        ("400", "Bad Request", "ended_newest"),
        ("503", "No Responders", "unbound"),
        ("500", "Internal", "reset"),
    ],
)
def test_status_actions(code: str, desc: str, action: str) -> None:
    assert status_action(code, desc) == action


def test_without_heartbeats_a_lost_request_is_dropped_at_expiry_never_stalled() -> None:
    c = Credit(2, expires_s=30, heartbeat_s=None)
    c.requested(2, now=0)
    assert not c.stalled(now=1000)  # no heartbeats to miss
    assert c.expire(now=30.5) == 0  # within the slack: its 408 may still come
    assert c.expire(now=31.5) == 1
    assert c.want(buffered=0) == 2  # asked again


def test_drift_lists_only_the_mutable_fields_that_changed() -> None:
    have = api.ConsumerConfig(
        durable_name="d",
        ack_wait=30.0,
        max_deliver=-1,
        max_ack_pending=1000,
        filter_subject="command.gw.t.g",
        deliver_policy=api.DeliverPolicy.ALL,
    )
    same = api.ConsumerConfig(durable_name="d", ack_wait=30.0004, filter_subject="command.gw.t.g")
    assert drift(have, same) == {}  # None fields leave the server's defaults alone
    moved = api.ConsumerConfig(
        durable_name="d",
        ack_wait=10.0,
        filter_subject="command.gw.t2.g",
        deliver_policy=api.DeliverPolicy.NEW,  # creation-only: never "drift"
    )
    assert drift(have, moved) == {"ack_wait": 10.0, "filter_subject": "command.gw.t2.g"}
    backoff = api.ConsumerConfig(durable_name="d", backoff=[30.0, 60.0])
    assert drift(api.ConsumerConfig(backoff=[30.0, 60.0]), backoff) == {}
    assert drift(api.ConsumerConfig(backoff=[30.0]), backoff) == {"backoff": [30.0, 60.0]}


def test_next_subject_is_the_servers_pull_api() -> None:
    assert next_subject("TELEMETRY", "data-consumer-telemetry") == (
        "$JS.API.CONSUMER.MSG.NEXT.TELEMETRY.data-consumer-telemetry"
    )


def test_a_batch_of_acks_is_one_buffer_of_pub_frames() -> None:
    buf, count, unsafe = ack_frames(
        [(["$JS.ACK.S.d.1.1.1.9.2", "", "$JS.ACK.S.d.1.2.2.9.1"], b""), (["r3"], b"+TERM")]
    )
    assert buf == (
        b"PUB $JS.ACK.S.d.1.1.1.9.2 0\r\n\r\n"
        b"PUB $JS.ACK.S.d.1.2.2.9.1 0\r\n\r\n"
        b"PUB r3 5\r\n+TERM\r\n"
    )
    assert (count, unsafe) == (3, [])
    assert ack_frames([([], b""), ([""], b"-NAK")]) == (b"", 0, [])


@pytest.mark.parametrize(
    "bad",
    ["a b", "a\tb", "a\r\nPUB evil 0\r\n", "a\n", "\r"],
)
def test_a_reply_that_could_break_the_protocol_is_never_spliced(bad: str) -> None:
    buf, count, unsafe = ack_frames([(["ok.1", bad, "ok.2"], b"+WPI")])
    assert buf == b"PUB ok.1 4\r\n+WPI\r\nPUB ok.2 4\r\n+WPI\r\n"
    assert (count, unsafe) == (2, [bad])
    assert ack_frames([([bad], b"")]) == (b"", 0, [bad])
