"""Guards around private attributes of libraries that have no public alternative.

Each guard degrades to "skip that step" when an upgrade removes what it relies on;
`missing(guard)` makes that visible instead of silent: one warning log line per guard
per process, and the counter `notip_library_guard_missing_total{guard=...}` on every
daemon's /metrics (httpserve.metrics_endpoint appends this module's registry to the
daemon's own, so each daemon exposes it without registering anything).

The guards (each names the versions it was verified with next to its code):

- `nats_subscription_queue` (notip.natsio.drain): nats-py's per-subscription queue,
  to unsubscribe `fetch()` subscriptions whose queue never joins before `drain()`;
- `trio_asyncio_asyncgen_hooks` (notip.bridge): trio-asyncio's async-generator
  dispatcher and asyncio's loop hooks, for grpc.aio's frame-less generators;
- `asyncio_tls_read_buffer` (notip.simulator.tls): asyncio's TLS protocol
  read buffer under nats-py's transport, shrunk to save memory per connection;
- `nats_send_command` (notip.jetstream.pull): nats-py's pending-buffer write, to send
  a batch's acks (term, nak, progress) as one buffer instead of one publish each;
- `nats_transport_write` (notip.jetstream.publish): nats-py's connection transport,
  to hand a round's telemetry frames of one gateway to it in one write;
- `nats_reply_sink` (notip.jetstream.publish): nats-py's per-subscription queue, to
  handle telemetry PubAcks where the reader delivers them (no task per subscription).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter

NATS_SUBSCRIPTION_QUEUE = "nats_subscription_queue"
TRIO_ASYNCIO_ASYNCGEN_HOOKS = "trio_asyncio_asyncgen_hooks"
ASYNCIO_TLS_READ_BUFFER = "asyncio_tls_read_buffer"
NATS_SEND_COMMAND = "nats_send_command"
NATS_TRANSPORT_WRITE = "nats_transport_write"
NATS_REPLY_SINK = "nats_reply_sink"
GUARDS = (
    NATS_SUBSCRIPTION_QUEUE,
    TRIO_ASYNCIO_ASYNCGEN_HOOKS,
    ASYNCIO_TLS_READ_BUFFER,
    NATS_SEND_COMMAND,
    NATS_TRANSPORT_WRITE,
    NATS_REPLY_SINK,
)

log = logging.getLogger("notip.guards")

#: Process-wide: a library is missing an attribute for every daemon in the process.
REGISTRY = CollectorRegistry()
MISSING = Counter(
    "notip_library_guard_missing_total",
    "Times a guarded private attribute of a library was not found (the step it "
    "enables was skipped); see notip/guards.py",
    ["guard"],
    registry=REGISTRY,
)
for _guard in GUARDS:
    MISSING.labels(guard=_guard)  # present at 0, so an alert can watch the series

_warned: set[str] = set()


def missing(guard: str, detail: str) -> None:
    """Record that `guard` found its attribute missing: counted every time, logged
    once per process."""
    MISSING.labels(guard=guard).inc()
    if guard not in _warned:
        _warned.add(guard)
        log.warning(
            "library guard %s: %s (step skipped; library version changed?)",
            guard,
            detail,
            extra={"guard": guard},
        )
