//! Metadata in SQL (SQLite by default, PostgreSQL for clusters) through one `sqlx::Any`
//! pool, so every query is written once. Queries use `$N` placeholders, which both accept.

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

/// How a bus treats events that break their (source, type)'s schema.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SchemaValidation {
    Off,
    Warn,
    Enforce,
}

impl SchemaValidation {
    fn as_str(self) -> &'static str {
        match self {
            SchemaValidation::Off => "off",
            SchemaValidation::Warn => "warn",
            SchemaValidation::Enforce => "enforce",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "warn" => SchemaValidation::Warn,
            "enforce" => SchemaValidation::Enforce,
            _ => SchemaValidation::Off,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSettings {
    pub name: String,
    pub description: Option<String>,
    pub retention_hours: u32,
    pub schema_validation: SchemaValidation,
}

/// A rule as stored: pattern and targets as JSON text, validated before they were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub bus: String,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub pattern: String,
    pub targets: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

pub struct MetaStore {
    pool: AnyPool,
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl MetaStore {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<MetaStore, sqlx::Error> {
        install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 16 })
            .connect(url)
            .await?;
        if is_sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            SQLITE.run(&pool).await?;
        } else {
            POSTGRES.run(&pool).await?;
        }
        Ok(MetaStore { pool })
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Creates or replaces a bus; returns whether it was created.
    pub async fn put_bus(&self, bus: &BusSettings, now_ms: i64) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO buses (name, description, retention_hours, schema_validation, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&bus.name)
        .bind(&bus.description)
        .bind(i64::from(bus.retention_hours))
        .bind(bus.schema_validation.as_str())
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            sqlx::query(
                "UPDATE buses SET description = $2, retention_hours = $3, schema_validation = $4, updated_at = $5
                 WHERE name = $1",
            )
            .bind(&bus.name)
            .bind(&bus.description)
            .bind(i64::from(bus.retention_hours))
            .bind(bus.schema_validation.as_str())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        }
        Ok(inserted)
    }

    pub async fn list_buses(&self) -> Result<Vec<BusSettings>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, description, retention_hours, schema_validation FROM buses ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(BusSettings {
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    retention_hours: u32::try_from(row.try_get::<i64, _>("retention_hours")?)
                        .unwrap_or(u32::MAX),
                    schema_validation: SchemaValidation::parse(
                        row.try_get::<String, _>("schema_validation")?.as_str(),
                    ),
                })
            })
            .collect()
    }

    /// Deletes a bus and its rules; returns whether it existed.
    pub async fn delete_bus(&self, name: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM rules WHERE bus = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let existed = sqlx::query("DELETE FROM buses WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(existed)
    }

    /// Creates or replaces a rule; returns whether it was created.
    pub async fn put_rule(&self, rule: &StoredRule, now_ms: i64) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO rules (bus, name, description, enabled, pattern, targets, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (bus, name) DO NOTHING",
        )
        .bind(&rule.bus)
        .bind(&rule.name)
        .bind(&rule.description)
        .bind(i64::from(rule.enabled))
        .bind(&rule.pattern)
        .bind(&rule.targets)
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            sqlx::query(
                "UPDATE rules SET description = $3, enabled = $4, pattern = $5, targets = $6, updated_at = $7
                 WHERE bus = $1 AND name = $2",
            )
            .bind(&rule.bus)
            .bind(&rule.name)
            .bind(&rule.description)
            .bind(i64::from(rule.enabled))
            .bind(&rule.pattern)
            .bind(&rule.targets)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        }
        Ok(inserted)
    }

    /// Every rule of every bus.
    pub async fn list_rules(&self) -> Result<Vec<StoredRule>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT bus, name, description, enabled, pattern, targets, created_at, updated_at
             FROM rules ORDER BY bus, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredRule {
                    bus: row.try_get("bus")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    enabled: row.try_get::<i64, _>("enabled")? != 0,
                    pattern: row.try_get("pattern")?,
                    targets: row.try_get("targets")?,
                    created_at_ms: row.try_get("created_at")?,
                    updated_at_ms: row.try_get("updated_at")?,
                })
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
