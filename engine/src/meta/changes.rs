//! Telling the other nodes sharing this metadata store that it changed: PostgreSQL's
//! LISTEN/NOTIFY on one channel, `switchyard_changes`. A notification carries nothing: a
//! node receiving one reads the buses, rules and keys again and applies the difference
//! (`Engine::reconcile`), so a lost or merged notification costs nothing but a read. With
//! SQLite (one node) there is nobody to tell.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::MetaStore;

const CHANNEL: &str = "switchyard_changes";

/// Notifications of changes made by any node (this one included).
pub struct ChangeFeed {
    listener: PgListener,
}

impl ChangeFeed {
    /// Waits for the next change. Also returns when the connection was lost and made again
    /// (notifications may have been missed meanwhile): either way, read everything again.
    pub async fn next(&mut self) {
        match self.listener.try_recv().await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "listening for metadata changes failed; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl MetaStore {
    /// Tells the other nodes that metadata changed (after the change is committed). A
    /// failure is logged: the others then see it at their next periodic read.
    pub async fn changed(&self) {
        if self.postgres_url.is_none() {
            return;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
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
