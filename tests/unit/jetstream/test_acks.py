"""The PubAck ledger (notip.jetstream.acks) with literal inputs: what counts as a
confirmation, bulk counts per owner, failures and expiry requeued in order, late and
unknown replies ignored and counted."""

from __future__ import annotations

import pytest

from notip.jetstream.acks import AckLedger, is_pub_ack


@pytest.mark.parametrize(
    ("data", "headers", "ok"),
    [
        (b'{"stream":"TELEMETRY","seq":42}', None, True),
        (b'{"stream":"TELEMETRY","seq":43,"duplicate":true}', None, True),
        (b'{"stream":"TELEMETRY","domain":"hub","seq":44}', {}, True),
        # an error PubAck (e.g. a message over the stream's max_msg_size)
        (
            b'{"error":{"code":400,"err_code":10054,"description":"message size exceeds '
            b'maximum allowed"},"stream":"TELEMETRY","seq":0}',
            None,
            False,
        ),
        # 503 no responders: no stream captured the subject (empty body, status header)
        (b"", {"Status": "503"}, False),
        (b'{"stream":"TELEMETRY","seq":1}', {"Status": "503"}, False),
        (b"", None, False),
        (b"+OK", None, False),
        (b"{not json", None, False),
        (b'{"seq":1}', None, False),
        (b'{"stream":"TELEMETRY","seq":"1"}', None, False),
        (b'["stream","seq"]', None, False),
    ],
)
def test_only_a_real_pub_ack_is_a_confirmation(
    data: bytes, headers: dict[str, str] | None, ok: bool
) -> None:
    assert is_pub_ack(data, headers) is ok


def test_confirmed_counts_are_taken_in_bulk_per_owner() -> None:
    ledger: AckLedger[str] = AckLedger()
    a = ledger.register("a", [b"a1", b"a2", b"a3"], deadline=5.0)
    b = ledger.register("b", [b"b1", b"b2"], deadline=5.0)
    assert len(set(a + b)) == 5  # one token per payload, unique across owners
    assert (ledger.in_flight("a"), ledger.in_flight("b"), len(ledger)) == (3, 2, 5)
    for token in [*a, b[0]]:
        assert ledger.on_reply(token, ok=True) in ("a", "b")
    out = ledger.take()
    assert {k: (v.confirmed, v.failed) for k, v in out.items()} == {
        "a": (3, []),
        "b": (1, []),
    }
    assert ledger.take() == {}  # taken once
    assert (ledger.in_flight("a"), ledger.in_flight("b")) == (0, 1)


def test_failed_replies_come_back_in_the_order_they_were_published() -> None:
    ledger: AckLedger[str] = AckLedger()
    first = ledger.register("a", [b"1", b"2"], deadline=5.0)
    second = ledger.register("a", [b"3", b"4"], deadline=6.0)
    ledger.on_reply(second[1], ok=False)  # error PubAck
    ledger.on_reply(first[0], ok=False)  # 503
    ledger.on_reply(first[1], ok=True)
    ledger.on_reply(second[0], ok=False)
    out = ledger.take()["a"]
    assert (out.confirmed, out.failed) == (1, [b"1", b"3", b"4"])
    assert ledger.in_flight("a") == 0 and len(ledger) == 0


def test_expiry_fails_what_got_no_answer_by_its_deadline_in_order() -> None:
    ledger: AckLedger[str] = AckLedger()
    first = ledger.register("a", [b"1", b"2", b"3"], deadline=5.0)
    ledger.register("b", [b"x"], deadline=5.0)
    later = ledger.register("a", [b"4"], deadline=7.0)
    ledger.on_reply(first[1], ok=True)
    assert ledger.next_deadline() == 5.0
    assert ledger.expire(4.999) == 0
    assert ledger.expire(5.0) == 3  # "1", "3" of a and "x" of b
    assert ledger.next_deadline() == 7.0
    out = ledger.take()
    assert (out["a"].confirmed, out["a"].failed) == (1, [b"1", b"3"])
    assert (out["b"].confirmed, out["b"].failed) == (0, [b"x"])
    ledger.on_reply(later[0], ok=True)
    assert ledger.next_deadline() is None  # nothing in flight
    assert ledger.expire(100.0) == 0
    assert ledger.take()["a"].confirmed == 1


def test_late_and_unknown_replies_change_nothing_and_are_counted() -> None:
    ledger: AckLedger[str] = AckLedger()
    tokens = ledger.register("a", [b"1"], deadline=1.0)
    ledger.expire(2.0)
    assert ledger.take()["a"].failed == [b"1"]
    # The PubAck arrives after the deadline: the envelope was requeued already.
    assert ledger.on_reply(tokens[0], ok=True) is None
    assert ledger.on_reply("not-ours", ok=True) is None
    assert ledger.on_reply(tokens[0], ok=False) is None  # a second answer
    assert ledger.unknown == 3
    assert ledger.take() == {}


def test_forget_drops_an_owner_and_reports_what_it_had() -> None:
    ledger: AckLedger[str] = AckLedger()
    a = ledger.register("a", [b"1", b"2", b"3"], deadline=5.0)
    b = ledger.register("b", [b"x"], deadline=5.0)
    ledger.on_reply(a[0], ok=True)
    ledger.on_reply(a[1], ok=False)
    outcome, in_flight = ledger.forget("a")
    assert (outcome.confirmed, outcome.failed, in_flight) == (1, [b"2"], 1)
    assert ledger.on_reply(a[2], ok=True) is None  # its late reply: unknown
    assert ledger.expire(10.0) == 1  # only b's
    assert ledger.take()["b"].failed == [b"x"]
    assert ledger.on_reply(b[0], ok=True) is None
    assert len(ledger) == 0
