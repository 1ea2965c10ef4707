-- Buses: named logs with their settings. Times are milliseconds since the Unix epoch.
CREATE TABLE buses (
    name TEXT PRIMARY KEY,
    description TEXT,
    retention_hours BIGINT NOT NULL,
    schema_validation TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
