-- Per (bus, rule, target): every event offset below next_offset is resolved (delivered,
-- dead-lettered, or not for this target). Deliveries resume from here after a restart.
CREATE TABLE delivery_cursors (
    bus TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (bus, rule, target)
);
