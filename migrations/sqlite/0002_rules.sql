-- Rules of a bus: an EventBridge pattern and its targets, both stored as JSON text.
CREATE TABLE rules (
    bus TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    enabled BIGINT NOT NULL,
    pattern TEXT NOT NULL,
    targets TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (bus, name)
);
