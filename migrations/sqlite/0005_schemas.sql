-- Schemas of event data per (source, type): discovered from traffic or declared.
CREATE TABLE schemas (
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (source, type)
);

-- Every version, discovered (explicit = 0) or declared (explicit = 1), numbered per
-- (source, type) in one sequence.
CREATE TABLE schema_versions (
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    version BIGINT NOT NULL,
    explicit BIGINT NOT NULL,
    schema TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (source, type, version)
);
