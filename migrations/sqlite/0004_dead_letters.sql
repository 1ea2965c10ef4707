-- Deliveries that were given up on, with the event as it was published.
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bus TEXT NOT NULL,
    event_offset BIGINT NOT NULL,
    event TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX dead_letters_by_bus ON dead_letters (bus, id);
