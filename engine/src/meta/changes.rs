//! Telling the other nodes sharing this metadata store that it changed: PostgreSQL's
//! LISTEN/NOTIFY on one channel, `switchyard_changes`. A notification says what changed only
//! coarsely: empty — buses, rules or keys (a node receiving one reads them all again and
//! applies the difference, `Engine::reconcile`, so a lost or merged notification costs
//! nothing but a read) — or `entries <bus>`: ledger entries were written for subscriptions
//! of `<bus>` another node delivers (its workers read them). With SQLite (one node) there
//! is nobody to tell.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::MetaStore;

const CHANNEL: &str = "switchyard_changes";

/// Notifications of changes made by any node (this one included).
pub struct ChangeFeed {
    listener: PgListener,
}

impl ChangeFeed {
    /// Waits for the next change and returns what it says; `None` when the connection was
    /// lost and made again (notifications may have been missed: read everything again).
    pub async fn next(&mut self) -> Option<String> {
        match self.listener.try_recv().await {
            Ok(Some(n)) => Some(n.payload().to_owned()),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "listening for metadata changes failed; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                None
            }
        }
    }
}

impl MetaStore {
    /// Tells the other nodes that metadata changed (after the change is committed). A
    /// failure is logged: the others then see it at their next periodic read.
    pub async fn changed(&self) {
        self.changed_about("").await;
    }

    /// Tells the other nodes that ledger entries were written for `bus`'s subscriptions
    /// they may deliver.
    pub async fn entries_written(&self, bus: &str) {
        self.changed_about(&format!("entries {bus}")).await;
    }

    async fn changed_about(&self, what: &str) {
        if self.postgres_url.is_none() {
            return;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(what)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "telling other nodes about a metadata change failed");
        }
    }

    /// Listens for changes; `None` with SQLite.
    pub async fn change_feed(&self) -> Result<Option<ChangeFeed>, sqlx::Error> {
        let Some(url) = &self.postgres_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(ChangeFeed { listener }))
    }
}
