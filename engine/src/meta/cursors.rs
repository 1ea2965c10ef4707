//! Delivery cursors: per (bus, rule, target), the first offset not yet resolved.

use sqlx::Row;

use super::MetaStore;

impl MetaStore {
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
}
