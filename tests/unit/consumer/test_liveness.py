from __future__ import annotations

import json

import pytest

from notip.consumer.liveness import (
    OFFLINE,
    ONLINE,
    UNKNOWN,
    AlertConfigs,
    Candidate,
    StatusChange,
    Tracker,
    alert_message,
    decode_sightings,
    encode_sightings,
    parse_alert_configs,
    seed_time,
)

A = ("t1", "gw-a")
B = ("t1", "gw-b")
T0 = 1_700_000_000.0


def tracker(timeout_ms: int = 1000, quarantine_s: float = 60.0) -> Tracker:
    return Tracker(lambda key: timeout_ms, quarantine_s=quarantine_s)


def test_first_fresh_sighting_reports_online() -> None:
    t = tracker()
    assert t.observe(A, T0, T0 + 0.1) == StatusChange(A, ONLINE, T0)
    assert t.observe(A, T0 + 0.5, T0 + 0.6) is None  # already online
    assert t.state(A) == ONLINE and len(t) == 1


def test_stale_first_sighting_is_unknown_not_online() -> None:
    t = tracker()
    assert t.observe(A, T0, T0 + 5) is None  # a backlog message of a dead gateway
    assert t.state(A) == UNKNOWN
    [c] = t.expired(T0 + 5)
    assert c.unconfirmed and c.last_seen == T0


def test_stored_time_is_clamped_to_now() -> None:
    t = tracker()
    t.observe(A, T0 + 100, T0)  # a clock ahead of ours cannot buy extra life
    assert t.entries[A].last_seen == T0
    assert t.expired(T0 + 1.001)


def test_expiry_uses_the_timeout_strictly() -> None:
    t = tracker(timeout_ms=1000)
    t.observe(A, T0, T0)
    assert t.expired(T0 + 1.0) == []
    assert t.expired(T0 + 1.01) == [Candidate(A, T0, 1000, False)]


def test_offline_then_back_online_only_with_a_newer_fresh_sighting() -> None:
    t = tracker()
    t.observe(A, T0, T0)
    [c] = t.expired(T0 + 2)
    assert t.mark_offline(c, T0 + 2) == [StatusChange(A, OFFLINE, T0)]
    assert t.expired(T0 + 3) == []  # once per transition
    assert t.observe(A, T0, T0 + 3) is None  # a redelivery of the old message
    assert t.observe(A, T0 + 1, T0 + 3) is None  # newer, but still stale
    assert t.state(A) == OFFLINE
    assert t.observe(A, T0 + 2.5, T0 + 3) == StatusChange(A, ONLINE, T0 + 2.5)


def test_message_during_the_check_cancels_or_reverts() -> None:
    t = tracker()
    t.observe(A, T0, T0)
    [c] = t.expired(T0 + 2)
    t.observe(A, T0 + 2, T0 + 2)
    assert not t.still_due(c)  # before the alert: skip it
    # After the alert was published: offline, then straight back online.
    assert t.mark_offline(c, T0 + 2.1) == [
        StatusChange(A, OFFLINE, T0),
        StatusChange(A, ONLINE, T0 + 2),
    ]
    assert t.state(A) == ONLINE


def test_silent_offline_for_unconfirmed() -> None:
    t = tracker()
    t.seed(A, T0, T0 + 5)
    [c] = t.expired(T0 + 5)
    assert t.mark_offline(c, T0 + 5, silent=True) == []
    assert t.state(A) == OFFLINE


def test_seed_keeps_the_newest_and_never_reports() -> None:
    t = tracker()
    t.observe(A, T0 + 1, T0 + 1)
    t.seed(A, T0, T0 + 1)
    assert t.entries[A].last_seen == T0 + 1 and t.state(A) == ONLINE
    t.seed(B, T0, T0 + 0.5)
    assert t.state(B) == UNKNOWN
    assert t.observe(B, T0 + 0.7, T0 + 0.8) == StatusChange(B, ONLINE, T0 + 0.7)


def test_seed_time_prefers_the_alert_record_while_no_newer_row_exists() -> None:
    """Literal inputs: row times are the gateway's clock (here 3 s ahead of JetStream),
    the recorded last_seen a stored time; only row times are compared with each other."""
    row, stored = T0 + 3.0, T0 + 0.004  # the same message: envelope time, stored time
    # No record (never alerted) or a record without a row time: the row.
    assert seed_time(row, None, None) == row
    assert seed_time(row, stored, None) == row
    # The newest row is the one recorded at the alert: the same silence, the record.
    assert seed_time(row, stored, row) == stored
    # An older newest row than recorded (a narrower window): it has not spoken since.
    assert seed_time(row - 1, stored, row) == stored
    # A newer row (even 1 µs): it spoke again after the alert, a new silence.
    assert seed_time(row + 0.000001, stored, row) == row + 0.000001
    # Gateway clock behind JetStream: the same rule, no clock comparison across.
    assert seed_time(T0 - 5, T0, T0 - 5) == T0
    assert seed_time(T0 - 4, T0, T0 - 5) == T0 - 4


def test_decommission_quarantine() -> None:
    t = tracker(quarantine_s=60)
    t.observe(A, T0, T0)
    assert t.decommission(A, T0 + 1, T0 + 1)
    assert A not in t and t.expired(T0 + 30) == []
    assert t.observe(A, T0 + 10, T0 + 10) is None  # a late message
    t.seed(A, T0 + 10, T0 + 10)
    assert A not in t
    # After the quarantine, a sighting counts again.
    assert t.observe(A, T0 + 62, T0 + 62) == StatusChange(A, ONLINE, T0 + 62)


def test_old_decommission_event_does_not_quarantine() -> None:
    t = tracker(quarantine_s=60)
    t.decommission(A, T0, T0 + 3600)  # replayed from the stream, long past
    assert A not in t.tombstones
    t.decommission(B, T0, T0 + 10)
    t.prune(T0 + 61)
    assert B not in t.tombstones


def test_alert_config_precedence() -> None:
    cfg = AlertConfigs(60_000, {"t1": 5_000}, {("t1", "gw-a"): 1_000})
    assert cfg.timeout_ms(("t1", "gw-a")) == 1_000
    assert cfg.timeout_ms(("t1", "gw-b")) == 5_000
    assert cfg.timeout_ms(("t2", "gw-a")) == 60_000  # the override is per tenant
    assert cfg.largest_ms() == 60_000


def test_parse_alert_configs() -> None:
    payload = json.dumps(
        [
            {"tenant_id": "t1", "timeout_ms": 5000},
            {"tenant_id": "t1", "gateway_id": None, "timeout_ms": 6000},
            {"tenant_id": "t1", "gateway_id": "g1", "timeout_ms": 1000},
            {"tenant_id": "t2", "timeout_ms": -1},
            {"tenant_id": "t2", "timeout_ms": True},
            {"timeout_ms": 5},
            "junk",
        ]
    ).encode()
    cfg, skipped = parse_alert_configs(payload, 60_000)
    assert cfg.tenant_ms == {"t1": 6000}
    assert cfg.gateway_ms == {("t1", "g1"): 1000}
    assert skipped == 4
    for bad in (b'{"a": 1}', b"null", b"nope"):
        with pytest.raises(ValueError, match=r"not a JSON array|Expecting value"):
            parse_alert_configs(bad, 60_000)


def test_alert_message_and_its_dedupe_id() -> None:
    c = Candidate(A, T0 + 0.1234, 1000, False)
    body, msg_id = alert_message(c, T0 + 5)
    assert json.loads(body) == {
        "gatewayId": "gw-a",
        "lastSeen": "2023-11-14T22:13:20.123Z",
        "timeoutMs": 1000,
        "timestamp": "2023-11-14T22:13:25.000Z",
    }
    # Same transition, later retry: same id (the stream drops the duplicate).
    assert alert_message(c, T0 + 50)[1] == msg_id == "gw_offline.t1.gw-a.2023-11-14T22:13:20.123Z"


def test_feed_round_trip_and_junk() -> None:
    sightings = {A: T0 + 0.5, B: T0}
    assert decode_sightings(encode_sightings(sightings)) == sightings
    assert decode_sightings(b"nope") == {}
    assert decode_sightings(b'{"seen": [["t", "g"], ["t", "g", "x"], 5]}') == {}
