//! Rules, as stored.

use sqlx::Row;

use super::MetaStore;
use crate::target::TargetSpec;

/// A rule as stored: its pattern as JSON text (what the matcher compiles), its targets as
/// written; both were checked before they were stored.
#[derive(Debug, Clone)]
pub struct StoredRule {
    pub bus: String,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub pattern: String,
    pub targets: Vec<TargetSpec>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl MetaStore {
    /// Creates or replaces a rule; returns whether it was created.
    pub async fn put_rule(&self, rule: &StoredRule, now_ms: i64) -> Result<bool, sqlx::Error> {
        let targets =
            serde_json::to_string(&rule.targets).map_err(|e| sqlx::Error::Encode(e.into()))?;
        self.upsert(
            "INSERT INTO rules (bus, name, description, enabled, pattern, targets, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (bus, name) DO NOTHING",
            "UPDATE rules SET description = $3, enabled = $4, pattern = $5, targets = $6, updated_at = $7
             WHERE bus = $1 AND name = $2",
            |q| {
                q.bind(rule.bus.clone())
                    .bind(rule.name.clone())
                    .bind(rule.description.clone())
                    .bind(i64::from(rule.enabled))
                    .bind(rule.pattern.clone())
                    .bind(targets.clone())
                    .bind(now_ms)
            },
        )
        .await
    }

    /// Every rule of every bus, each with why its stored targets cannot be read, if they
    /// cannot (the rule then has none, and must not run).
    pub async fn list_rules(&self) -> Result<Vec<(StoredRule, Option<String>)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT bus, name, description, enabled, pattern, targets, created_at, updated_at
             FROM rules ORDER BY bus, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("targets")?;
                let (targets, unreadable) = match serde_json::from_str(&text) {
                    Ok(targets) => (targets, None),
                    Err(e) => (Vec::new(), Some(format!("targets: {e}"))),
                };
                let rule = StoredRule {
                    bus: row.try_get("bus")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    enabled: row.try_get::<i64, _>("enabled")? != 0,
                    pattern: row.try_get("pattern")?,
                    targets,
                    created_at_ms: row.try_get("created_at")?,
                    updated_at_ms: row.try_get("updated_at")?,
                };
                Ok((rule, unreadable))
            })
            .collect()
    }

    /// Deletes a rule; returns whether it existed.
    pub async fn delete_rule(&self, bus: &str, name: &str) -> Result<bool, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM rules WHERE bus = $1 AND name = $2")
                .bind(bus)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }
}
