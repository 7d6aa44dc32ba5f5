"""PubAcks of core publishes, settled in bulk: a sans-io ledger (no I/O, no clock
reads; time is passed in) for the simulator's telemetry hot path
(docs/design.md#the-trio-asyncio-bridge).

A JetStream publish is a core publish with a reply subject; the stream answers on it
with a PubAck. `publish_async` keeps one asyncio future and one timer per message for
that answer. Instead, the telemetry path publishes with the reply subject
`{ackprefix}.{token}` (the prefix under the connection's own inbox), one subscription
on `{ackprefix}.*` per connection feeds every answer into this ledger
(`on_reply`), and the publishing side collects the outcome in bulk (`take`), at most
once per round:

- `register(owner, payloads, deadline)` → one token per payload (unique in the ledger);
- `on_reply(token, ok)`: `ok` only for a real PubAck (`is_pub_ack`): an error PubAck,
  a 503 "no responders" status or anything else is a failure. A reply whose token is
  unknown (late: already expired; or never ours) changes nothing and is counted in
  `unknown`;
- `expire(now)`: everything whose deadline passed without a reply is a failure;
- `take()`: per owner, how many were confirmed and which payloads failed (in the
  order they were registered: they go back to the front of the owner's buffer);
- `forget(owner)`: drop an owner's entries (its gateway stopped), returning its
  outcome so far and how many were still in flight.

Nothing is confirmed unless JetStream said it stored the message; nothing registered
leaves the ledger except as confirmed, failed (to be requeued) or forgotten.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Owner = TypeVar("Owner")

#: A reply with this header is a status (503 = no stream captured the subject).
STATUS_HEADER = "Status"
#: nats-server's PubAck as it writes it: `{"stream":"NAME","seq":N}`, optionally
#: with `"domain"` before the sequence and `"duplicate":true` after it.
PLAIN_ACK = re.compile(
    rb'\{"stream":"[^"\\]+",(?:"domain":"[^"\\]*",)?"seq":\d+(?:,"duplicate":true)?\}'
)


def is_pub_ack(data: bytes, headers: Mapping[str, str] | None) -> bool:
    """Whether a reply is a PubAck saying the stream stored the message:
    `{"stream": ..., "seq": ...}` without `"error"`, and no status header."""
    if headers and STATUS_HEADER in headers:
        return False  # e.g. 503 no responders: nothing stored
    if not data.startswith(b"{"):
        return False
    if PLAIN_ACK.fullmatch(data):
        return True  # the server's usual form, without parsing JSON
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and "error" not in body
        and isinstance(body.get("stream"), str)
        and isinstance(body.get("seq"), int)
    )


@dataclass
class Outcome:
    """An owner's settled publishes: `confirmed` stored by JetStream, `failed` the
    payloads to publish again, oldest first."""

    confirmed: int = 0
    failed: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class _Entry(Generic[Owner]):
    owner: Owner
    payload: bytes
    seq: int


class AckLedger(Generic[Owner]):
    def __init__(self) -> None:
        self._pending: dict[str, _Entry[Owner]] = {}
        # (deadline, tokens) per registered batch, in registration order; deadlines
        # only grow when every batch uses the same timeout, and `expire` copes
        # otherwise (it stops at the first batch not yet due).
        self._batches: deque[tuple[float, list[str]]] = deque()
        self._in_flight: dict[Owner, int] = {}
        self._confirmed: dict[Owner, int] = {}
        self._failed: dict[Owner, list[_Entry[Owner]]] = {}
        self._seq = 0
        #: Replies that matched nothing in flight (late after expiry, or unknown).
        self.unknown = 0

    def __len__(self) -> int:
        return len(self._pending)

    def in_flight(self, owner: Owner) -> int:
        return self._in_flight.get(owner, 0)

    def register(self, owner: Owner, payloads: Sequence[bytes], deadline: float) -> list[str]:
        """Record published payloads; returns one token per payload (its reply
        subject's last token)."""
        tokens: list[str] = []
        pending, seq = self._pending, self._seq
        for payload in payloads:
            seq += 1
            token = format(seq, "x")
            pending[token] = _Entry(owner, payload, seq)
            tokens.append(token)
        self._seq = seq
        if tokens:
            self._batches.append((deadline, tokens))
            self._in_flight[owner] = self._in_flight.get(owner, 0) + len(tokens)
        return tokens

    def on_reply(self, token: str, ok: bool) -> Owner | None:
        """A reply arrived; returns its owner (None when the token is not in flight)."""
        entry = self._pending.pop(token, None)
        if entry is None:
            self.unknown += 1
            return None
        owner = entry.owner
        self._in_flight[owner] -= 1
        if ok:
            self._confirmed[owner] = self._confirmed.get(owner, 0) + 1
        else:
            self._failed.setdefault(owner, []).append(entry)
        return owner

    def next_deadline(self) -> float | None:
        """When `expire` next has something to do (None: nothing in flight)."""
        batches, pending = self._batches, self._pending
        while batches and not any(t in pending for t in batches[0][1]):
            batches.popleft()  # settled entirely
        return batches[0][0] if batches else None

    def expire(self, now: float) -> int:
        """Fail everything whose deadline is <= now; returns how many."""
        batches, pending = self._batches, self._pending
        expired = 0
        while batches and batches[0][0] <= now:
            _, tokens = batches.popleft()
            for token in tokens:
                entry = pending.pop(token, None)
                if entry is not None:
                    self._in_flight[entry.owner] -= 1
                    self._failed.setdefault(entry.owner, []).append(entry)
                    expired += 1
        return expired

    def take(self) -> dict[Owner, Outcome]:
        """Everything settled since the last call, per owner."""
        out: dict[Owner, Outcome] = {}
        for owner, n in self._confirmed.items():
            out[owner] = Outcome(confirmed=n)
        for owner, entries in self._failed.items():
            entries.sort(key=lambda e: e.seq)
            out.setdefault(owner, Outcome()).failed = [e.payload for e in entries]
        self._confirmed = {}
        self._failed = {}
        for owner in out:
            if not self._in_flight.get(owner):
                self._in_flight.pop(owner, None)
        return out

    def forget(self, owner: Owner) -> tuple[Outcome, int]:
        """Drop an owner: its settled outcome not yet taken and how many of its
        publishes were still in flight (their replies will count as unknown)."""
        outcome = Outcome(confirmed=self._confirmed.pop(owner, 0))
        failed = self._failed.pop(owner, [])
        failed.sort(key=lambda e: e.seq)
        outcome.failed = [e.payload for e in failed]
        in_flight = self._in_flight.pop(owner, 0)
        if in_flight:
            for token in [t for t, e in self._pending.items() if e.owner == owner]:
                del self._pending[token]
        return outcome, in_flight
