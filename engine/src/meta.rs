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

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
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

    /// Inserts a row, or updates it when its key exists; returns whether it inserted. Both
    /// statements take the same parameters, bound by `bind`. (Two statements, because
    /// "was it created?" has no portable answer from a single upsert.)
    async fn upsert<F>(&self, insert: &str, update: &str, bind: F) -> Result<bool, sqlx::Error>
    where
        F: for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
    {
        let inserted = bind(sqlx::query(insert))
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1;
        if !inserted {
            bind(sqlx::query(update)).execute(&self.pool).await?;
        }
        Ok(inserted)
    }

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
        for table in ["rules", "delivery_cursors", "dead_letters"] {
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

    /// Creates or replaces a rule; returns whether it was created.
    pub async fn put_rule(&self, rule: &StoredRule, now_ms: i64) -> Result<bool, sqlx::Error> {
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
                    .bind(rule.targets.clone())
                    .bind(now_ms)
            },
        )
        .await
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

    /// Delivery cursors of one bus: `(rule, target) → next_offset`.
    pub async fn load_cursors(&self, bus: &str) -> Result<Vec<(String, String, u64)>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT rule, target, next_offset FROM delivery_cursors WHERE bus = $1")
                .bind(bus)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("rule")?,
                    r.try_get("target")?,
                    u64::try_from(r.try_get::<i64, _>("next_offset")?).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Stores cursors in one transaction.
    pub async fn save_cursors(
        &self,
        bus: &str,
        cursors: &[(String, String, u64)],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for (rule, target, next) in cursors {
            sqlx::query(
                "INSERT INTO delivery_cursors (bus, rule, target, next_offset) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (bus, rule, target) DO UPDATE SET next_offset = excluded.next_offset",
            )
            .bind(bus)
            .bind(rule)
            .bind(target)
            .bind(i64::try_from(*next).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Forgets the cursors of a rule's targets that are gone (all of them when `keep` is empty).
    pub async fn delete_cursors(
        &self,
        bus: &str,
        rule: &str,
        keep: &[String],
    ) -> Result<(), sqlx::Error> {
        let existing = self.load_cursors(bus).await?;
        for (r, target, _) in existing {
            if r == rule && !keep.contains(&target) {
                sqlx::query(
                    "DELETE FROM delivery_cursors WHERE bus = $1 AND rule = $2 AND target = $3",
                )
                .bind(bus)
                .bind(rule)
                .bind(&target)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    pub async fn insert_dead_letter(&self, dl: &DeadLetter) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO dead_letters (bus, event_offset, event, rule, target, attempts, last_error, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&dl.bus)
        .bind(i64::try_from(dl.event_offset).unwrap_or(i64::MAX))
        .bind(&dl.event)
        .bind(&dl.rule)
        .bind(&dl.target)
        .bind(i64::from(dl.attempts))
        .bind(&dl.last_error)
        .bind(dl.at_ms)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Dead letters of a bus, newest first, with ids below `before`.
    pub async fn list_dead_letters(
        &self,
        bus: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, bus, event_offset, event, rule, target, attempts, last_error, at FROM dead_letters
             WHERE bus = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(bus)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dead_letter_row).collect()
    }

    /// How many dead letters each (rule, target) of a bus has, and the highest id among
    /// them (a snapshot to page below).
    pub async fn dead_letter_counts(
        &self,
        bus: &str,
    ) -> Result<(i64, Vec<(String, String, i64)>), sqlx::Error> {
        let rows = sqlx::query(
            "SELECT rule, target, COUNT(*) AS n, MAX(id) AS top FROM dead_letters
             WHERE bus = $1 GROUP BY rule, target",
        )
        .bind(bus)
        .fetch_all(&self.pool)
        .await?;
        let mut top = 0;
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            top = top.max(row.try_get::<i64, _>("top")?);
            counts.push((
                row.try_get("rule")?,
                row.try_get("target")?,
                row.try_get("n")?,
            ));
        }
        Ok((top, counts))
    }

    pub async fn get_dead_letters(
        &self,
        bus: &str,
        ids: &[i64],
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT id, bus, event_offset, event, rule, target, attempts, last_error, at FROM dead_letters
                 WHERE bus = $1 AND id = $2",
            )
            .bind(bus)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                out.push(dead_letter_row(&row)?);
            }
        }
        Ok(out)
    }

    pub async fn delete_dead_letter(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

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

    pub async fn insert_schema_version(&self, v: &SchemaVersionRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO schema_versions (source, type, version, explicit, schema, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&v.source)
        .bind(&v.ty)
        .bind(i64::from(v.version))
        .bind(i64::from(v.explicit))
        .bind(&v.schema)
        .bind(v.created_at_ms)
        .execute(&self.pool)
        .await
        .map(|_| ())
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

    /// Creates or replaces a function; returns whether it was created. `created_at_ms` is
    /// kept on replace.
    pub async fn put_function(&self, f: &FunctionRow) -> Result<bool, sqlx::Error> {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.upsert(
            "INSERT INTO functions (name, module, sha256, timeout_ms, memory_mb, fuel, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (name) DO NOTHING",
            "UPDATE functions SET module = $2, sha256 = $3, timeout_ms = $4, memory_mb = $5, fuel = $6, updated_at = $7
             WHERE name = $1",
            |q| {
                q.bind(f.name.clone())
                    .bind(f.module.clone())
                    .bind(f.sha256.clone())
                    .bind(as_i64(f.timeout_ms))
                    .bind(as_i64(f.memory_mb))
                    .bind(as_i64(f.fuel))
                    .bind(f.updated_at_ms)
            },
        )
        .await
    }

    /// Every function, modules included.
    pub async fn list_functions(&self) -> Result<Vec<FunctionRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, module, sha256, timeout_ms, memory_mb, fuel, created_at, updated_at
             FROM functions ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let as_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
        rows.iter()
            .map(|row| {
                Ok(FunctionRow {
                    name: row.try_get("name")?,
                    module: row.try_get("module")?,
                    sha256: row.try_get("sha256")?,
                    timeout_ms: as_u64(row.try_get("timeout_ms")?),
                    memory_mb: as_u64(row.try_get("memory_mb")?),
                    fuel: as_u64(row.try_get("fuel")?),
                    created_at_ms: row.try_get("created_at")?,
                    updated_at_ms: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Deletes a function; returns whether it existed.
    pub async fn delete_function(&self, name: &str) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

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

/// An API key as stored: its hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub name: String,
    pub role: String,
    pub sha256: String,
    pub prefix: String,
    pub created_at_ms: i64,
}

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

/// A deployed function as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRow {
    pub name: String,
    /// The module as uploaded: binary, or WAT text.
    pub module: Vec<u8>,
    pub sha256: String,
    pub timeout_ms: u64,
    pub memory_mb: u64,
    pub fuel: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

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

/// A delivery that was given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub bus: String,
    pub event_offset: u64,
    /// The CloudEvent JSON as published.
    pub event: String,
    pub rule: String,
    pub target: String,
    pub attempts: u32,
    pub last_error: String,
    pub at_ms: i64,
}

fn dead_letter_row(row: &sqlx::any::AnyRow) -> Result<DeadLetter, sqlx::Error> {
    Ok(DeadLetter {
        id: row.try_get("id")?,
        bus: row.try_get("bus")?,
        event_offset: u64::try_from(row.try_get::<i64, _>("event_offset")?).unwrap_or(0),
        event: row.try_get("event")?,
        rule: row.try_get("rule")?,
        target: row.try_get("target")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        last_error: row.try_get("last_error")?,
        at_ms: row.try_get("at")?,
    })
}
