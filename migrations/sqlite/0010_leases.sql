-- Several nodes sharing the buses: each node's heartbeat, and which node delivers each
-- (bus, rule, target) — a lease it renews, and another node may take once it has expired.
-- A worker's ledger commit checks its node still holds the lease, in the same transaction.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    heartbeat_ms BIGINT NOT NULL
);
CREATE TABLE delivery_leases (
    bus TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (bus, rule, target)
);
