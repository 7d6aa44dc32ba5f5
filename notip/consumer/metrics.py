"""The consumer's Prometheus metrics: the 17 names of docs/contracts.md#metrics (no labels) plus a
few new series. One registry per service instance (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from notip.consumer.ingest import REASONS

P = "notip_consumer_"

WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 750, 1000, 2500, 5000, 10000)
TICK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        # -- docs/contracts.md#metrics (names fixed, no labels) --------------------------------------
        self.messages_received = Counter(
            P + "messages_received_total",
            "Telemetry messages delivered to this instance",
            registry=r,
        )
        self.parsing_errors = Counter(
            P + "message_parsing_errors_total",
            "Messages rejected on their own and terminated (any reason)",
            registry=r,
        )
        self.messages_written = Counter(
            P + "messages_written_total",
            "Messages whose row is committed (inserted now, or already present) and acked",
            registry=r,
        )
        self.write_errors = Counter(
            P + "write_errors_total",
            "Failed INSERT statements (database down or data refused)",
            registry=r,
        )
        self.write_duration = Histogram(
            P + "write_duration_seconds",
            "Duration of one batch INSERT",
            buckets=WRITE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            P + "batch_size", "Messages per pulled batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.alerts_published = Counter(
            P + "alerts_published_total",
            "gw_offline alerts published (acknowledged by the stream)",
            registry=r,
        )
        self.alert_publish_errors = Counter(
            P + "alert_publish_errors_total", "gw_offline alert publishes that failed", registry=r
        )
        self.heartbeat_map_size = Gauge(
            P + "heartbeat_map_size", "Gateways tracked by the liveness tracker", registry=r
        )
        self.tick_duration = Histogram(
            P + "heartbeat_tick_duration_seconds",
            "Duration of one liveness tick (checks, alerts)",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self.status_update_errors = Counter(
            P + "status_update_errors_total", "Failed gateway.update-status attempts", registry=r
        )
        self.status_update_dropped = Counter(
            P + "status_update_dropped_total",
            "Status updates given up (buffer full: oldest dropped; permanent error; attempts exhausted)",
            registry=r,
        )
        self.dispatch_queue_length = Gauge(
            P + "dispatch_queue_length",
            "Status updates waiting to be sent (coalesced per gateway)",
            registry=r,
        )
        self.alert_cache_refresh_errors = Counter(
            P + "alert_cache_refresh_errors_total", "Failed alert-config fetches", registry=r
        )
        self.alert_cache_last_success = Gauge(
            P + "alert_cache_last_success_timestamp",
            "Unix time of the last successful alert-config fetch",
            registry=r,
        )
        self.nats_reconnects = Counter(
            P + "nats_reconnects_total", "NATS reconnections", registry=r
        )
        self.lifecycle_query_errors = Counter(
            P + "lifecycle_query_errors_total",
            "gateway.get-status queries that failed or answered nonsense (alert sent anyway)",
            registry=r,
        )
        # -- new series -------------------------------------------------------------------
        self.consumer_lag = Gauge(
            P + "consumer_lag_messages",
            "Messages in the stream not yet delivered to the durable (JetStream num_pending)",
            registry=r,
        )
        self.rows_inserted = Counter(P + "rows_inserted_total", "New rows written", registry=r)
        self.duplicates_skipped = Counter(
            P + "duplicates_skipped_total",
            "Messages whose row already existed (redelivered or republished): ON CONFLICT DO NOTHING",
            registry=r,
        )
        self.redelivered = Counter(
            P + "redelivered_messages_total",
            "Messages delivered more than once by JetStream",
            registry=r,
        )
        self.poison = Counter(
            P + "poison_messages_total", "Rejected messages by reason", ["reason"], registry=r
        )
        for reason in REASONS:
            self.poison.labels(reason=reason)
        self.status_updates_sent = Counter(
            P + "status_updates_sent_total", "Status updates accepted by management", registry=r
        )
        self.status_updates_coalesced = Counter(
            P + "status_updates_coalesced_total",
            "Status updates superseded by a newer one for the same gateway before being sent",
            registry=r,
        )
        self.database_up = Gauge(P + "database_up", "1 when the database answers", registry=r)
        self.alerts_suppressed = Counter(
            P + "alerts_suppressed_total",
            "Offline alerts not sent because the gateway is paused",
            registry=r,
        )
        # -- the liveness lease (docs/consumer.md#scale-out-and-ownership) ----------------
        self.liveness_owner = Gauge(
            P + "liveness_owner",
            "1 while this instance holds the liveness lease (runs ticks, alerts, status reports)",
            registry=r,
        )
        self.lease_acquired = Counter(
            P + "liveness_lease_acquired_total",
            "Times this instance took the liveness lease",
            registry=r,
        )
        self.lease_lost = Counter(
            P + "liveness_lease_lost_total",
            "Times this instance lost the liveness lease while running (not released at shutdown)",
            registry=r,
        )
