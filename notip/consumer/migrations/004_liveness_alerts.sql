-- docs/contracts.md#telemetry-table: what the liveness owner recorded right before it
-- published a gw_offline alert, so that the next owner derives the same `lastSeen` (and
-- so the same Nats-Msg-Id) for the same silence (docs/consumer.md#scale-out-and-ownership).
-- `last_seen` is the JetStream stored time the alert's `lastSeen` came from;
-- `newest_row_time` the gateway's newest telemetry `time` (envelope clock) then, which a
-- later seed compares with the newest row of its own: a newer row means the gateway
-- spoke again. One row per gateway; the telemetry table is not touched.
CREATE TABLE IF NOT EXISTS consumer_liveness_alerts (
    tenant_id       text        NOT NULL,
    gateway_id      text        NOT NULL,
    last_seen       timestamptz NOT NULL,
    newest_row_time timestamptz,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, gateway_id)
);
