"""Gateway liveness, sans-io: the tracker, the alert-config snapshot, the alert message.

Times are seconds since the epoch, passed in by the caller (`now`). The tracker is fed
only with *committed* messages and their JetStream stored timestamp (clamped to now),
so redeliveries and backlog replays cannot make a dead gateway look alive.

Rules (docs/consumer.md#liveness-rules):

- A sighting is *fresh* when `now - seen <= timeout`. A fresh first sighting reports
  `online`; a stale one (an old message of a backlog) is tracked as `unknown` and
  checked at the next tick like any silent gateway.
- A sighting only counts when it is newer than what the tracker already knows.
- An `offline` (or `unknown`) gateway comes back `online` with the next fresh sighting.
- A gateway is due for a check when it is `online` or `unknown` and
  `now - last_seen > timeout` (gateway override > tenant default > default).
- Decommission removes the gateway and starts a quarantine of
  `DECOMMISSION_QUARANTINE_MS` from the event's stored time: sightings inside it are
  ignored (the rows are still stored).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notip import contracts
from notip.envelope import iso

Key = tuple[str, str]  # (tenant_id, gateway_id)
#: A seed row (store.newest_per_gateway): tenant, gateway, newest row time, and what an
#: owner recorded before alerting the gateway: last_seen, newest row time (or None).
SeedRow = tuple[str, str, float, float | None, float | None]

ONLINE = "online"
OFFLINE = "offline"
UNKNOWN = "unknown"


@dataclass(slots=True)
class Entry:
    last_seen: float
    state: str


@dataclass(frozen=True, slots=True)
class StatusChange:
    key: Key
    status: str  # "online" | "offline"
    last_seen: float


@dataclass(frozen=True, slots=True)
class Candidate:
    key: Key
    last_seen: float
    timeout_ms: int
    unconfirmed: bool  # state was `unknown` (seeded or stale first sighting)


class Tracker:
    def __init__(self, timeout_ms: Callable[[Key], int], *, quarantine_s: float) -> None:
        self.timeout_ms = timeout_ms
        self.quarantine_s = quarantine_s
        self.entries: dict[Key, Entry] = {}
        self.tombstones: dict[Key, float] = {}  # key -> quarantine end

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def state(self, key: Key) -> str | None:
        e = self.entries.get(key)
        return None if e is None else e.state

    def _fresh(self, key: Key, seen: float, now: float) -> bool:
        return (now - seen) * 1000.0 <= self.timeout_ms(key)

    def quarantined(self, key: Key, now: float) -> bool:
        until = self.tombstones.get(key)
        if until is None:
            return False
        if now < until:
            return True
        del self.tombstones[key]
        return False

    def observe(self, key: Key, seen: float, now: float) -> StatusChange | None:
        if self.tombstones and self.quarantined(key, now):
            return None
        if seen > now:
            seen = now
        e = self.entries.get(key)
        if e is None:
            fresh = self._fresh(key, seen, now)
            self.entries[key] = Entry(seen, ONLINE if fresh else UNKNOWN)
            return StatusChange(key, ONLINE, seen) if fresh else None
        if seen <= e.last_seen:
            return None
        e.last_seen = seen
        if e.state != ONLINE and self._fresh(key, seen, now):
            e.state = ONLINE
            return StatusChange(key, ONLINE, seen)
        return None

    def observe_many(self, sightings: Mapping[Key, float], now: float) -> list[StatusChange]:
        changes = []
        for key, seen in sightings.items():
            change = self.observe(key, seen, now)
            if change is not None:
                changes.append(change)
        return changes

    def seed(self, key: Key, seen: float, now: float) -> None:
        """Start-up: the gateway's last sighting as `seed_time` reads it from the
        database. Its state is unknown to this run."""
        if self.tombstones and self.quarantined(key, now):
            return
        seen = min(seen, now)
        e = self.entries.get(key)
        if e is None:
            self.entries[key] = Entry(seen, UNKNOWN)
        elif seen > e.last_seen:
            e.last_seen = seen

    def expired(self, now: float) -> list[Candidate]:
        out = []
        timeout_ms = self.timeout_ms
        for key, e in self.entries.items():
            if e.state == OFFLINE:
                continue
            t = timeout_ms(key)
            if (now - e.last_seen) * 1000.0 > t:
                out.append(Candidate(key, e.last_seen, t, e.state == UNKNOWN))
        return out

    def still_due(self, c: Candidate) -> bool:
        """Nothing happened to the gateway since the candidate was taken."""
        e = self.entries.get(c.key)
        return e is not None and e.state != OFFLINE and e.last_seen == c.last_seen

    def mark_offline(self, c: Candidate, now: float, *, silent: bool = False) -> list[StatusChange]:
        """After the alert (or silently, when management already says offline).
        Returns the status reports to send: `offline`, and `online` right after it
        when a fresh message arrived while the alert was being published."""
        e = self.entries.get(c.key)
        if e is None:
            return []
        changes = []
        if e.state != OFFLINE:
            e.state = OFFLINE
            if not silent:
                changes.append(StatusChange(c.key, OFFLINE, c.last_seen))
        if e.last_seen > c.last_seen and self._fresh(c.key, e.last_seen, now):
            e.state = ONLINE
            changes.append(StatusChange(c.key, ONLINE, e.last_seen))
        return changes

    def decommission(self, key: Key, at: float, now: float) -> bool:
        """Forget the gateway; quarantine it until `at + quarantine`. True if tracked."""
        tracked = self.entries.pop(key, None) is not None
        until = min(at, now) + self.quarantine_s
        if until > now:
            self.tombstones[key] = max(until, self.tombstones.get(key, 0.0))
        return tracked

    def prune(self, now: float) -> None:
        for key in [k for k, until in self.tombstones.items() if until <= now]:
            del self.tombstones[key]


def seed_time(
    newest_row_time: float, recorded_last_seen: float | None, recorded_row_time: float | None
) -> float:
    """The `last_seen` a new owner seeds a gateway with
    (docs/consumer.md#the-alert-id-across-a-handover).

    `newest_row_time`: the gateway's newest telemetry row (the envelope's clock).
    `recorded_*`: what an owner recorded right before alerting it (table
    `consumer_liveness_alerts`): the stored time the alert's `lastSeen` came from, and
    the newest row time at that moment (None: no row in its window). Rows and the
    record's row time share one clock (the gateway's), stored times another, so only
    row times are compared: no row newer than the recorded one means the gateway has
    not spoken since, and the recorded `last_seen` is the same silence, so the same
    `lastSeen` and Nats-Msg-Id as the alert already published. A newer row, or no
    usable record, gives the row time."""
    if (
        recorded_last_seen is None
        or recorded_row_time is None
        or newest_row_time > recorded_row_time
    ):
        return newest_row_time
    return recorded_last_seen


# -- alert configs (docs/contracts.md#management-request-reply alert-configs.list) ----------------------------------------


@dataclass(frozen=True)
class AlertConfigs:
    default_ms: int
    tenant_ms: Mapping[str, int] = field(default_factory=dict)
    gateway_ms: Mapping[Key, int] = field(default_factory=dict)

    def timeout_ms(self, key: Key) -> int:
        """Gateway override > tenant default > ALERT_CONFIG_DEFAULT_TIMEOUT_MS."""
        v = self.gateway_ms.get(key)
        if v is not None:
            return v
        v = self.tenant_ms.get(key[0])
        if v is not None:
            return v
        return self.default_ms

    def largest_ms(self) -> int:
        return max([self.default_ms, *self.tenant_ms.values(), *self.gateway_ms.values()])


class ConfigHolder:
    """The current snapshot; swapped whole by the refresher."""

    def __init__(self, snapshot: AlertConfigs) -> None:
        self.snapshot = snapshot
        self.fetched = False

    def timeout_ms(self, key: Key) -> int:
        return self.snapshot.timeout_ms(key)


def parse_alert_configs(payload: bytes, default_ms: int) -> tuple[AlertConfigs, int]:
    """Returns (snapshot, entries skipped). A non-array answer raises ValueError (a
    failed fetch: the caller keeps the previous snapshot)."""
    data = json.loads(payload)
    if not isinstance(data, list):
        raise ValueError("alert-configs answer is not a JSON array")
    tenant: dict[str, int] = {}
    gateway: dict[Key, int] = {}
    skipped = 0
    for item in data:
        if not isinstance(item, dict):
            skipped += 1
            continue
        tid = item.get("tenant_id")
        gid = item.get("gateway_id")
        t = item.get("timeout_ms")
        if (
            not isinstance(tid, str)
            or not tid
            or type(t) is not int
            or t <= 0
            or not (gid is None or (isinstance(gid, str) and gid))
        ):
            skipped += 1
            continue
        if gid is None:
            tenant[tid] = t
        else:
            gateway[(tid, gid)] = t
    return AlertConfigs(default_ms, tenant, gateway), skipped


# -- the gw_offline alert (docs/contracts.md#alerts-and-decommission-events) ---------------------------------------------------


def alert_message(c: Candidate, now: float) -> tuple[bytes, str]:
    """(body, Nats-Msg-Id). The id depends on (tenant, gateway, lastSeen) only, so a
    retried publish of the same transition is deduplicated by the stream."""
    last_seen = iso_epoch(c.last_seen)
    body = contracts.gw_offline_alert_body(c.key[1], last_seen, c.timeout_ms, iso_epoch(now))
    return body, contracts.gw_offline_msg_id(c.key[0], c.key[1], last_seen)


def iso_epoch(t: float) -> str:
    return iso(dt.datetime.fromtimestamp(t, dt.UTC))


# -- the liveness feed of ingest-only instances ------------------------------------------


def encode_sightings(sightings: Mapping[Key, float]) -> bytes:
    return json.dumps(
        {"seen": [[t, g, round(s * 1000)] for (t, g), s in sightings.items()]},
        separators=(",", ":"),
    ).encode()


def decode_sightings(payload: bytes) -> dict[Key, float]:
    """Malformed digests or items are ignored (returns what is usable)."""
    try:
        data: Any = json.loads(payload)
    except ValueError:
        return {}
    items: Iterable[Any] = data.get("seen", []) if isinstance(data, dict) else []
    out: dict[Key, float] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], str)
            and type(item[2]) is int
        ):
            key = (item[0], item[1])
            s = item[2] / 1000.0
            if out.get(key, -1.0) < s:
                out[key] = s
    return out
