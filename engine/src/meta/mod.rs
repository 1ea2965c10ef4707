//! Metadata in SQL (SQLite by default, PostgreSQL for clusters) through one `sqlx::Any`
//! pool, so every query is written once. Queries use `$N` placeholders, which both accept.

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

mod buses;
mod changes;
mod dead_letters;
mod functions;
mod keys;
mod leases;
mod ledger;
mod rules;
mod schemas;
mod webhooks;

pub use buses::{BusSettings, SchemaValidation};
pub use changes::ChangeFeed;
pub use dead_letters::DeadLetter;
pub use functions::FunctionRow;
pub use keys::ApiKeyRow;
pub use rules::StoredRule;
pub use schemas::{SchemaSubject, SchemaVersionRow};
pub use webhooks::WebhookRow;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct MetaStore {
    pool: AnyPool,
    /// Set for PostgreSQL: where change notifications are listened for.
    postgres_url: Option<String>,
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
        Ok(MetaStore {
            pool,
            postgres_url: (!is_sqlite).then(|| url.to_owned()),
        })
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
}
