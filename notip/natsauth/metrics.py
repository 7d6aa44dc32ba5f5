"""The auth service's Prometheus series (docs/nats-auth.md#metrics), one registry per
instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from notip.natsauth import decide
from notip.natsauth.identity import REJECTION_REASONS

P = "notip_nats_auth_"

DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5)

#: Every (outcome, reason) a decision can have: pre-created at zero.
DECISION_LABELS: tuple[tuple[str, str], ...] = (
    *((decide.ADMITTED, r) for r in decide.ADMIT_REASONS),
    *(
        (decide.REFUSED, r)
        for r in (
            decide.UNKNOWN_GATEWAY,
            decide.NOT_PROVISIONED,
            decide.DECOMMISSIONED,
            decide.MANAGEMENT_UNAVAILABLE,
            decide.UNKNOWN_SERVICE,
            decide.CERTIFICATE_EXPIRED,
            *REJECTION_REASONS,
        )
    ),
)
#: Requests left without an answer (the server refuses the connection at its timeout).
UNANSWERED_REASONS = ("undecodable", "no_xkey", "backlog_full", "reply_failed")
KICK_TRIGGERS = ("decommission", "follow_up", "sweep")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            P + "decisions_total",
            "Authorization decisions taken, by outcome (admitted, refused) and reason",
            ["outcome", "reason"],
            registry=r,
        )
        for outcome, reason in DECISION_LABELS:
            self.decisions.labels(outcome, reason)
        self.decision_seconds = Histogram(
            P + "decision_seconds",
            "From the request's arrival to the answer's publish",
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.unanswered = Counter(
            P + "unanswered_total",
            "Authorization requests not answered (the server refuses them at its timeout)",
            ["reason"],
            registry=r,
        )
        for reason in UNANSWERED_REASONS:
            self.unanswered.labels(reason)
        self.cache_hits = Counter(
            P + "cache_hits_total", "Gateway decisions taken from a fresh cache entry", registry=r
        )
        self.cache_misses = Counter(
            P + "cache_misses_total", "Gateway decisions that asked management", registry=r
        )
        self.cache_entries = Gauge(P + "cache_entries", "Gateways in the status cache", registry=r)
        self.mgmt_unavailable = Counter(
            P + "mgmt_unavailable_total",
            "get-status asks without a usable answer in time",
            registry=r,
        )
        self.kicks = Counter(
            P + "kicks_total",
            "Gateway connections closed, by trigger (decommission, follow_up, sweep)",
            ["trigger"],
            registry=r,
        )
        for trigger in KICK_TRIGGERS:
            self.kicks.labels(trigger)
        self.kick_errors = Counter(
            P + "kick_errors_total",
            "CONNZ or KICK requests that failed (retried by the follow-up and the sweep)",
            registry=r,
        )
        self.sweeps = Counter(
            P + "sweeps_total", "Sweeps of the open gateway connections", registry=r
        )
        self.nats_reconnects = Counter(
            P + "nats_reconnects_total", "NATS reconnections (both connections)", registry=r
        )
