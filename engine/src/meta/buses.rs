//! Buses and their settings.

use sqlx::Row;

use super::MetaStore;

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

impl MetaStore {
    /// Creates or replaces a bus; returns whether it was created.
    pub async fn put_bus(&self, bus: &BusSettings, now_ms: i64) -> Result<bool, sqlx::Error> {
        self.upsert(
            "INSERT INTO buses (name, description, retention_hours, schema_validation, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
            "UPDATE buses SET description = $2, retention_hours = $3, schema_validation = $4, updated_at = $5
             WHERE name = $1",
            |q| {
                q.bind(bus.name.clone())
                    .bind(bus.description.clone())
                    .bind(i64::from(bus.retention_hours))
                    .bind(bus.schema_validation.as_str())
                    .bind(now_ms)
            },
        )
        .await
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

    /// Deletes a bus with its rules, cursors and dead letters; returns whether it existed.
    pub async fn delete_bus(&self, name: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "rules",
            "delivery_cursors",
            "delivery_entries",
            "dead_letters",
            "replays",
            "delivery_leases",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE bus = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let existed = sqlx::query("DELETE FROM buses WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(existed)
    }
}
