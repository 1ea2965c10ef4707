//! Nodes and delivery leases (`nodes`, `delivery_leases`): which node delivers each (bus,
//! rule, target) when several share the metadata store. See `crate::cluster`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use switchyard_core::time::now_ms;

use super::MetaStore;
use crate::dispatch::ownership::{Claims, SubId};

#[async_trait]
impl Claims for MetaStore {
    async fn claim(&self, node: &str, what: &SubId, lease: Duration) -> bool {
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        match self.acquire_lease(node, what, now, until).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "claiming {what:?} failed");
                false
            }
        }
    }

    async fn unclaim(&self, node: &str, what: &SubId) {
        if let Err(e) = self.release_lease(node, what).await {
            tracing::warn!(error = %e, "giving up {what:?} failed; it expires instead");
        }
    }
}

impl MetaStore {
    /// Records that `node` is alive at `now_ms`.
    pub async fn heartbeat(&self, node: &str, now_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO nodes (id, heartbeat_ms) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
        )
        .bind(node)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Nodes heard from since `since_ms`; forgets those not heard from for long.
    pub async fn live_nodes(&self, since_ms: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query("DELETE FROM nodes WHERE heartbeat_ms < $1")
            .bind(since_ms.saturating_sub(3_600_000))
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query("SELECT id FROM nodes WHERE heartbeat_ms >= $1 ORDER BY id")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// A node stopping: gone from the live nodes at once.
    pub async fn leave(&self, node: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(node)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Extends every lease `node` holds to `until_ms`; returns them.
    pub async fn renew_leases(&self, node: &str, until_ms: i64) -> Result<Vec<SubId>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE delivery_leases SET expires_ms = $2 WHERE owner = $1")
            .bind(node)
            .bind(until_ms)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query("SELECT bus, rule, target FROM delivery_leases WHERE owner = $1")
            .bind(node)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(sub_id).collect()
    }

    /// The subscriptions whose lease some node holds at `now_ms`.
    pub async fn held_leases(&self, now_ms: i64) -> Result<Vec<SubId>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT bus, rule, target FROM delivery_leases WHERE expires_ms >= $1")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(sub_id).collect()
    }

    /// Takes the lease of `sub` for `node` until `until_ms` if no node holds it at `now_ms`;
    /// returns whether it did.
    pub async fn acquire_lease(
        &self,
        node: &str,
        sub: &SubId,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO delivery_leases (bus, rule, target, owner, expires_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (bus, rule, target) DO UPDATE
                 SET owner = excluded.owner, expires_ms = excluded.expires_ms
                 WHERE delivery_leases.expires_ms < $6 OR delivery_leases.owner = excluded.owner",
        )
        .bind(&sub.bus)
        .bind(&sub.rule)
        .bind(&sub.target)
        .bind(node)
        .bind(until_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up every lease `node` holds.
    pub async fn release_all_leases(&self, node: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM delivery_leases WHERE owner = $1")
            .bind(node)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Gives up `node`'s lease of `sub` (its worker has written everything it held).
    pub async fn release_lease(&self, node: &str, sub: &SubId) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM delivery_leases WHERE bus = $1 AND rule = $2 AND target = $3 AND owner = $4",
        )
        .bind(&sub.bus)
        .bind(&sub.rule)
        .bind(&sub.target)
        .bind(node)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

fn sub_id(row: &sqlx::any::AnyRow) -> Result<SubId, sqlx::Error> {
    Ok(SubId {
        bus: row.try_get("bus")?,
        rule: row.try_get("rule")?,
        target: row.try_get("target")?,
    })
}
