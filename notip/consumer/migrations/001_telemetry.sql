-- docs/contracts.md#telemetry-table: the telemetry table. Idempotent: safe to run at every start-up.
CREATE TABLE IF NOT EXISTS telemetry (
    time           timestamptz NOT NULL,
    tenant_id      text        NOT NULL,
    gateway_id     text        NOT NULL,
    sensor_id      text        NOT NULL,
    sensor_type    text        NOT NULL,
    encrypted_data text        NOT NULL,
    iv             text        NOT NULL,
    auth_tag       text        NOT NULL,
    key_version    integer     NOT NULL
);

-- Idempotent writes: the IV is unique per message, so a redelivered message hits this
-- index and `ON CONFLICT DO NOTHING` skips it. The index also serves the read pattern
-- (tenant_id, gateway_id, time DESC) by a backward scan.
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_dedupe_idx
    ON telemetry (tenant_id, gateway_id, time, iv);
