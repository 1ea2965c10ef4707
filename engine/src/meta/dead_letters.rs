//! Dead letters: deliveries given up on, until redriven or deleted.

use sqlx::Row;

use super::MetaStore;

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
    /// The delivery this ends: a redrive resends under the same id.
    pub delivery_id: String,
    /// `log`, `redrive` or `replay:<id>` (see [`crate::dispatch::ledger::Origin`]).
    pub origin: String,
    /// How many times this delivery was redriven before it was given up on again.
    pub generation: u32,
}

pub(super) fn dead_letter_row(row: &sqlx::any::AnyRow) -> Result<DeadLetter, sqlx::Error> {
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
        delivery_id: row.try_get("delivery_id")?,
        origin: row.try_get("origin")?,
        generation: u32::try_from(row.try_get::<i64, _>("generation")?).unwrap_or(u32::MAX),
    })
}

impl MetaStore {
    pub async fn insert_dead_letter(&self, dl: &DeadLetter) -> Result<(), sqlx::Error> {
        insert_dead_letter(&self.pool, dl).await
    }

    /// Dead letters of a bus, newest first, with ids below `before`.
    pub async fn list_dead_letters(
        &self,
        bus: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, bus, event_offset, event, rule, target, attempts, last_error, at, delivery_id, origin, generation FROM dead_letters
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
                "SELECT id, bus, event_offset, event, rule, target, attempts, last_error, at, delivery_id, origin, generation FROM dead_letters
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
}

/// Writes a dead letter with `executor` (the pool, or a transaction resolving its delivery).
pub(super) async fn insert_dead_letter<'e, E>(
    executor: E,
    dl: &DeadLetter,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO dead_letters (bus, event_offset, event, rule, target, attempts, last_error, at, delivery_id, origin, generation)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&dl.bus)
    .bind(i64::try_from(dl.event_offset).unwrap_or(i64::MAX))
    .bind(&dl.event)
    .bind(&dl.rule)
    .bind(&dl.target)
    .bind(i64::from(dl.attempts))
    .bind(&dl.last_error)
    .bind(dl.at_ms)
    .bind(&dl.delivery_id)
    .bind(&dl.origin)
    .bind(i64::from(dl.generation))
    .execute(executor)
    .await
    .map(|_| ())
}
