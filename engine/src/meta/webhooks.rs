//! Inbound webhooks.

use sqlx::Row;

use super::MetaStore;

/// An inbound webhook as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub name: String,
    pub bus: String,
    pub source: String,
    pub description: Option<String>,
    /// A header name, or a JSONPath (starting with `$`) into the body.
    pub type_from: Option<String>,
    pub verify_scheme: Option<String>,
    pub secret: Option<String>,
    /// The `hmac-sha256` scheme's signature header.
    pub verify_header: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl MetaStore {
    /// Creates or replaces a webhook; returns whether it was created.
    pub async fn put_webhook(&self, w: &WebhookRow) -> Result<bool, sqlx::Error> {
        self.upsert(
            "INSERT INTO webhooks (name, bus, source, description, type_from, verify_scheme, secret, verify_header, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (name) DO NOTHING",
            "UPDATE webhooks SET bus = $2, source = $3, description = $4, type_from = $5, verify_scheme = $6,
             secret = $7, verify_header = $8, updated_at = $9 WHERE name = $1",
            |q| {
                q.bind(w.name.clone())
                    .bind(w.bus.clone())
                    .bind(w.source.clone())
                    .bind(w.description.clone())
                    .bind(w.type_from.clone())
                    .bind(w.verify_scheme.clone())
                    .bind(w.secret.clone())
                    .bind(w.verify_header.clone())
                    .bind(w.updated_at_ms)
            },
        )
        .await
    }

    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, bus, source, description, type_from, verify_scheme, secret, verify_header, created_at, updated_at
             FROM webhooks ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WebhookRow {
                    name: row.try_get("name")?,
                    bus: row.try_get("bus")?,
                    source: row.try_get("source")?,
                    description: row.try_get("description")?,
                    type_from: row.try_get("type_from")?,
                    verify_scheme: row.try_get("verify_scheme")?,
                    secret: row.try_get("secret")?,
                    verify_header: row.try_get("verify_header")?,
                    created_at_ms: row.try_get("created_at")?,
                    updated_at_ms: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Deletes a webhook; returns whether it existed.
    pub async fn delete_webhook(&self, name: &str) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM webhooks WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }
}
