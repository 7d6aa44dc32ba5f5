-- Decommissioned gateways (from DECOMMISSION events), so that the liveness quarantine
-- survives a restart: a late message for a gateway decommissioned less than
-- DECOMMISSION_QUARANTINE_MS ago is stored but does not bring it back to life.
CREATE TABLE IF NOT EXISTS consumer_gateway_decommissions (
    tenant_id         text        NOT NULL,
    gateway_id        text        NOT NULL,
    decommissioned_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, gateway_id)
);
