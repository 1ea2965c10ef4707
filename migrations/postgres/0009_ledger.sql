-- The delivery ledger: per (bus, rule, target), the cursor in delivery_cursors (every event
-- offset below it is resolved or has a row here) and one row per unresolved delivery kept
-- durably: its attempts, its next attempt and last error when a retry is scheduled. A
-- delivery not read from the bus log (a replay's, a redrive's) carries its event.
CREATE TABLE delivery_entries (
    bus TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    event_offset BIGINT NOT NULL,
    origin TEXT NOT NULL,
    event TEXT,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT,
    last_error TEXT,
    generation BIGINT NOT NULL,
    PRIMARY KEY (bus, rule, target, delivery_id)
);
-- A dead letter remembers the delivery it ends, so a redrive resends under the same id.
ALTER TABLE dead_letters ADD COLUMN delivery_id TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN origin TEXT NOT NULL DEFAULT 'log';
ALTER TABLE dead_letters ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
-- Replays, so a restart resumes a running one: where it got to, and its progress as JSON.
CREATE TABLE replays (
    bus TEXT NOT NULL,
    id TEXT NOT NULL,
    position BIGINT NOT NULL,
    progress TEXT NOT NULL,
    PRIMARY KEY (bus, id)
);
