//! Schema subjects and their versions.

use sqlx::Row;

use super::MetaStore;

/// A version of a (source, type)'s schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersionRow {
    pub source: String,
    pub ty: String,
    pub version: u32,
    pub explicit: bool,
    pub schema: String,
    pub created_at_ms: i64,
}

/// What is known of a (source, type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSubject {
    pub source: String,
    pub ty: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub events: u64,
}

impl MetaStore {
    pub async fn schema_subjects(&self) -> Result<Vec<SchemaSubject>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT source, type, first_seen, last_seen, events FROM schemas ORDER BY source, type",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SchemaSubject {
                    source: r.try_get("source")?,
                    ty: r.try_get("type")?,
                    first_seen_ms: r.try_get("first_seen")?,
                    last_seen_ms: r.try_get("last_seen")?,
                    events: u64::try_from(r.try_get::<i64, _>("events")?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Adds seen events to a (source, type)'s counters, creating it if new.
    pub async fn record_schema_sightings(&self, s: &SchemaSubject) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO schemas (source, type, first_seen, last_seen, events) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (source, type) DO UPDATE SET last_seen = excluded.last_seen,
             events = schemas.events + excluded.events",
        )
        .bind(&s.source)
        .bind(&s.ty)
        .bind(s.first_seen_ms)
        .bind(s.last_seen_ms)
        .bind(i64::try_from(s.events).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn schema_versions(&self) -> Result<Vec<SchemaVersionRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT source, type, version, explicit, schema, created_at FROM schema_versions
             ORDER BY source, type, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SchemaVersionRow {
                    source: r.try_get("source")?,
                    ty: r.try_get("type")?,
                    version: u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(0),
                    explicit: r.try_get::<i64, _>("explicit")? != 0,
                    schema: r.try_get("schema")?,
                    created_at_ms: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Stores a version; `false` if that version number is stored already (by another
    /// node sharing the store).
    pub async fn insert_schema_version(&self, v: &SchemaVersionRow) -> Result<bool, sqlx::Error> {
        sqlx::query(
            "INSERT INTO schema_versions (source, type, version, explicit, schema, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&v.source)
        .bind(&v.ty)
        .bind(i64::from(v.version))
        .bind(i64::from(v.explicit))
        .bind(&v.schema)
        .bind(v.created_at_ms)
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected() == 1)
    }

    /// Removes the declared versions of a (source, type); returns how many there were.
    pub async fn delete_explicit_schemas(
        &self,
        source: &str,
        ty: &str,
    ) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "DELETE FROM schema_versions WHERE source = $1 AND type = $2 AND explicit = 1",
        )
        .bind(source)
        .bind(ty)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
