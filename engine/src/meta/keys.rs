//! API keys, by hash.

use sqlx::Row;

use super::MetaStore;

/// An API key as stored: its hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub name: String,
    pub role: String,
    pub sha256: String,
    pub prefix: String,
    pub created_at_ms: i64,
}

impl MetaStore {
    /// Inserts a key; false if the name or hash is taken.
    pub async fn insert_api_key(&self, k: &ApiKeyRow) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "INSERT INTO api_keys (name, role, sha256, prefix, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(&k.name)
        .bind(&k.role)
        .bind(&k.sha256)
        .bind(&k.prefix)
        .bind(k.created_at_ms)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, role, sha256, prefix, created_at FROM api_keys ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKeyRow {
                    name: row.try_get("name")?,
                    role: row.try_get("role")?,
                    sha256: row.try_get("sha256")?,
                    prefix: row.try_get("prefix")?,
                    created_at_ms: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes a key; returns its hash if it existed.
    pub async fn delete_api_key(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        // One statement: a transaction that read first and wrote second would fail on SQLite
        // (SQLITE_BUSY, no waiting) whenever another write landed in between.
        sqlx::query("DELETE FROM api_keys WHERE name = $1 RETURNING sha256")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get("sha256"))
            .transpose()
    }
}
