-- API keys besides the admin key: a role each; only the SHA-256 of the key is kept.
CREATE TABLE api_keys (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
