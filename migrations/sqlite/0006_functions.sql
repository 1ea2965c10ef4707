-- Deployed WebAssembly functions: the module as uploaded (binary or WAT text) and the
-- limits every invocation runs within.
CREATE TABLE functions (
    name TEXT PRIMARY KEY,
    module BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    fuel BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
