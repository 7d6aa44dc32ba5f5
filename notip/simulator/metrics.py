"""The simulator's Prometheus series (docs/contracts.md#metrics), in its own registry per instance.

The nine contract names are kept exactly; the extra series beside them are marked.
Per-gateway series are removed when a gateway is deleted, so a long-running simulator
does not accumulate dead label sets.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ANOMALY_TYPES = ("network_degradation", "disconnect", "outlier")
# Dense around the 100 ms target of the scale benchmark, so that "p99 < 100 ms" is
# decided exactly by the le="0.1" bucket.
TICK_LATENESS_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # -- docs/contracts.md#metrics ---------------------------------------------------------
        self.gateways_running = Gauge(
            "notip_sim_gateways_running", "Gateways whose nursery is running", registry=r
        )
        self.envelopes_published = Counter(
            "notip_sim_envelopes_published_total",
            "Envelopes acknowledged by JetStream",
            ["gateway_id"],
            registry=r,
        )
        self.publish_errors = Counter(
            "notip_sim_publish_errors_total",
            "Envelope publishes that failed or timed out (kept in the buffer for a retry)",
            ["gateway_id"],
            registry=r,
        )
        self.buffer_dropped = Counter(
            "notip_sim_buffer_dropped_total",
            "Envelopes dropped by a full outbound buffer (drop-oldest)",
            ["gateway_id"],
            registry=r,
        )
        self.buffer_fill = Gauge(
            "notip_sim_buffer_fill_level",
            "Envelopes waiting in a gateway's outbound buffer",
            ["gateway_id"],
            registry=r,
        )
        self.provisioning_success = Counter(
            "notip_sim_provisioning_success_total", "Successful onboardings", registry=r
        )
        self.provisioning_errors = Counter(
            "notip_sim_provisioning_errors_total", "Failed onboardings", registry=r
        )
        self.nats_reconnects = Counter(
            "notip_sim_nats_reconnects_total",
            "Reconnections of a gateway's NATS connection (automatic, and after a disconnect anomaly)",
            ["gateway_id"],
            registry=r,
        )
        self.anomalies = Counter(
            "notip_sim_anomalies_injected_total", "Anomalies injected", ["type"], registry=r
        )
        # -- extra series ---------------------------------------------------------
        self.nats_disconnects = Counter(
            "notip_sim_nats_disconnects_total",
            "Losses of a gateway's NATS connection",
            ["gateway_id"],
            registry=r,
        )
        self.readings_dropped = Counter(
            "notip_sim_readings_dropped_total",
            "Readings not sent: packet_loss (network degradation) or offline (disconnect anomaly without buffering)",
            ["gateway_id", "reason"],
            registry=r,
        )
        self.commands = Counter(
            "notip_sim_commands_total",
            "Commands handled, by outcome (executed, nack, expired, duplicate, queued, rejected)",
            ["outcome"],
            registry=r,
        )
        self.permission_errors = Counter(
            "notip_sim_nats_permission_errors_total",
            "Publishes and subscriptions of a gateway's connection the NATS server refused "
            "(permissions violation; the connection stays up)",
            ["gateway_id"],
            registry=r,
        )
        self.tick_lateness = Histogram(
            "notip_sim_tick_lateness_seconds",
            "How late each gateway tick started after it was due (all gateways, no labels)",
            buckets=TICK_LATENESS_BUCKETS,
            registry=r,
        )
        for kind in ANOMALY_TYPES:
            self.anomalies.labels(type=kind)

    def add_gateway(self, gateway_id: str) -> None:
        """Create a gateway's series at zero so that dashboards see it at once."""
        self.envelopes_published.labels(gateway_id=gateway_id)
        self.publish_errors.labels(gateway_id=gateway_id)
        self.buffer_dropped.labels(gateway_id=gateway_id)
        self.buffer_fill.labels(gateway_id=gateway_id)
        self.nats_reconnects.labels(gateway_id=gateway_id)

    def remove_gateway(self, gateway_id: str) -> None:
        for metric in (
            self.envelopes_published,
            self.publish_errors,
            self.buffer_dropped,
            self.buffer_fill,
            self.nats_reconnects,
            self.nats_disconnects,
            self.permission_errors,
        ):
            with contextlib.suppress(KeyError):  # no series for this gateway yet
                metric.remove(gateway_id)
        for reason in ("packet_loss", "offline"):
            with contextlib.suppress(KeyError):
                self.readings_dropped.remove(gateway_id, reason)
