-- Inbound webhooks: a named endpoint that wraps what it receives into CloudEvents on a bus.
CREATE TABLE webhooks (
    name TEXT PRIMARY KEY,
    bus TEXT NOT NULL,
    source TEXT NOT NULL,
    description TEXT,
    type_from TEXT,
    verify_scheme TEXT,
    secret TEXT,
    verify_header TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
