//! The delivery ledger on the metadata store: cursors in `delivery_cursors`, unresolved
//! deliveries in `delivery_entries`, dead letters in `dead_letters`, replays in `replays`.
//! Every method is one transaction.

use async_trait::async_trait;
use sqlx::Row;

use super::dead_letters::{dead_letter_row, insert_dead_letter};
use super::{AnyQuery, MetaStore};
use crate::dispatch::ledger::{
    Changes, Entry, Ledger, LedgerResult, Origin, ReplayRecord, SubKey, SubState, fenced, redriven,
};
use crate::meta::DeadLetter;

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn entry_row(row: &sqlx::any::AnyRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        delivery_id: row.try_get("delivery_id")?,
        offset: u64::try_from(row.try_get::<i64, _>("event_offset")?).unwrap_or(0),
        origin: Origin::from_text(row.try_get::<&str, _>("origin")?),
        event: row.try_get("event")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        last_error: row.try_get("last_error")?,
        generation: u32::try_from(row.try_get::<i64, _>("generation")?).unwrap_or(u32::MAX),
    })
}

/// Writes (or rewrites) an entry.
async fn put_entry<'e, E>(executor: E, bus: &str, sub: &SubKey, e: &Entry) -> LedgerResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let q: AnyQuery<'_> = sqlx::query(
        "INSERT INTO delivery_entries (bus, rule, target, delivery_id, event_offset, origin, event,
             attempts, next_attempt_ms, last_error, generation)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (bus, rule, target, delivery_id) DO UPDATE SET
             event_offset = excluded.event_offset, origin = excluded.origin, event = excluded.event,
             attempts = excluded.attempts, next_attempt_ms = excluded.next_attempt_ms,
             last_error = excluded.last_error, generation = excluded.generation",
    );
    q.bind(bus)
        .bind(&sub.rule)
        .bind(&sub.target)
        .bind(&e.delivery_id)
        .bind(to_i64(e.offset))
        .bind(e.origin.as_text())
        .bind(e.event.clone())
        .bind(i64::from(e.attempts))
        .bind(e.next_attempt_ms)
        .bind(e.last_error.clone())
        .bind(i64::from(e.generation))
        .execute(executor)
        .await
        .map(|_| ())
}

/// What saving a cursor does to one already there.
enum Existing {
    Keep,
    Replace,
}

async fn save_cursor(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    bus: &str,
    sub: &SubKey,
    cursor: u64,
    existing: Existing,
) -> LedgerResult<()> {
    let conflict = match existing {
        Existing::Keep => "DO NOTHING",
        Existing::Replace => "DO UPDATE SET next_offset = excluded.next_offset",
    };
    sqlx::query(&format!(
        "INSERT INTO delivery_cursors (bus, rule, target, next_offset) VALUES ($1, $2, $3, $4)
         ON CONFLICT (bus, rule, target) {conflict}"
    ))
    .bind(bus)
    .bind(&sub.rule)
    .bind(&sub.target)
    .bind(to_i64(cursor))
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// A subscription's cursor and entries, if it has a cursor.
async fn load(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    bus: &str,
    sub: &SubKey,
) -> LedgerResult<Option<SubState>> {
    let cursor = sqlx::query(
        "SELECT next_offset FROM delivery_cursors WHERE bus = $1 AND rule = $2 AND target = $3",
    )
    .bind(bus)
    .bind(&sub.rule)
    .bind(&sub.target)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let cursor: i64 = cursor.try_get("next_offset")?;
    let rows = sqlx::query(
        "SELECT delivery_id, event_offset, origin, event, attempts, next_attempt_ms, last_error,
                generation
         FROM delivery_entries WHERE bus = $1 AND rule = $2 AND target = $3
         ORDER BY event_offset, delivery_id",
    )
    .bind(bus)
    .bind(&sub.rule)
    .bind(&sub.target)
    .fetch_all(&mut **tx)
    .await?;
    Ok(Some(SubState {
        cursor: u64::try_from(cursor).unwrap_or(0),
        entries: rows.iter().map(entry_row).collect::<Result<_, _>>()?,
    }))
}

#[async_trait]
impl Ledger for MetaStore {
    async fn open(&self, bus: &str, sub: &SubKey, cursor: u64) -> LedgerResult<SubState> {
        let mut tx = self.pool.begin().await?;
        save_cursor(&mut tx, bus, sub, cursor, Existing::Keep).await?;
        let state = load(&mut tx, bus, sub).await?;
        tx.commit().await?;
        Ok(state.unwrap_or_default())
    }

    async fn subscriptions(&self, bus: &str) -> LedgerResult<Vec<SubKey>> {
        let rows = sqlx::query("SELECT rule, target FROM delivery_cursors WHERE bus = $1")
            .bind(bus)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(SubKey::new(r.try_get("rule")?, r.try_get("target")?)))
            .collect()
    }

    async fn needed_from(&self, bus: &str) -> LedgerResult<Option<u64>> {
        let row = sqlx::query(
            "SELECT MIN(o) AS needed FROM (
                 SELECT MIN(next_offset) AS o FROM delivery_cursors WHERE bus = $1
                 UNION ALL
                 SELECT MIN(event_offset) AS o FROM delivery_entries WHERE bus = $1 AND origin = 'log'
             ) AS lows",
        )
        .bind(bus)
        .fetch_one(&self.pool)
        .await?;
        let needed: Option<i64> = row.try_get("needed")?;
        Ok(needed.map(|n| u64::try_from(n).unwrap_or(0)))
    }

    async fn commit(&self, bus: &str, sub: &SubKey, changes: &Changes) -> LedgerResult<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(owner) = &changes.fence {
            // Locks the lease row until the commit: a node taking it over waits for it.
            let held = sqlx::query(
                "UPDATE delivery_leases SET owner = owner
                 WHERE bus = $1 AND rule = $2 AND target = $3 AND owner = $4",
            )
            .bind(bus)
            .bind(&sub.rule)
            .bind(&sub.target)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held != 1 {
                return Err(fenced());
            }
        }
        for e in &changes.put {
            put_entry(&mut *tx, bus, sub, e).await?;
        }
        for id in &changes.resolved {
            sqlx::query(
                "DELETE FROM delivery_entries
                 WHERE bus = $1 AND rule = $2 AND target = $3 AND delivery_id = $4",
            )
            .bind(bus)
            .bind(&sub.rule)
            .bind(&sub.target)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for dl in &changes.dead_letters {
            insert_dead_letter(&mut *tx, dl).await?;
        }
        if let Some(cursor) = changes.cursor {
            save_cursor(&mut tx, bus, sub, cursor, Existing::Replace).await?;
        }
        tx.commit().await
    }

    async fn forget(&self, bus: &str, sub: &SubKey) -> LedgerResult<Option<SubState>> {
        let mut tx = self.pool.begin().await?;
        let held = load(&mut tx, bus, sub).await?;
        for table in ["delivery_cursors", "delivery_entries"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE bus = $1 AND rule = $2 AND target = $3"
            ))
            .bind(bus)
            .bind(&sub.rule)
            .bind(&sub.target)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(held)
    }

    async fn redrive(
        &self,
        bus: &str,
        letters: &[DeadLetter],
    ) -> LedgerResult<Vec<(SubKey, Entry)>> {
        let mut tx = self.pool.begin().await?;
        let mut made = Vec::with_capacity(letters.len());
        for letter in letters {
            let row = sqlx::query(
                "DELETE FROM dead_letters WHERE bus = $1 AND id = $2
                 RETURNING id, bus, event_offset, event, rule, target, attempts, last_error, at,
                           delivery_id, origin, generation",
            )
            .bind(bus)
            .bind(letter.id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let (key, entry) = redriven(&dead_letter_row(&row)?);
            put_entry(&mut *tx, bus, &key, &entry).await?;
            made.push((key, entry));
        }
        tx.commit().await?;
        Ok(made)
    }

    async fn replay_step(
        &self,
        bus: &str,
        entries: &[(SubKey, Entry)],
        replay: &ReplayRecord,
    ) -> LedgerResult<()> {
        let mut tx = self.pool.begin().await?;
        for (key, entry) in entries {
            put_entry(&mut *tx, bus, key, entry).await?;
        }
        sqlx::query(
            "INSERT INTO replays (bus, id, position, progress) VALUES ($1, $2, $3, $4)
             ON CONFLICT (bus, id) DO UPDATE SET position = excluded.position,
                 progress = excluded.progress",
        )
        .bind(bus)
        .bind(&replay.id)
        .bind(to_i64(replay.position))
        .bind(&replay.progress)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn replays(&self, bus: &str) -> LedgerResult<Vec<ReplayRecord>> {
        let rows =
            sqlx::query("SELECT id, position, progress FROM replays WHERE bus = $1 ORDER BY id")
                .bind(bus)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(ReplayRecord {
                    id: r.try_get("id")?,
                    position: u64::try_from(r.try_get::<i64, _>("position")?).unwrap_or(0),
                    progress: r.try_get("progress")?,
                })
            })
            .collect()
    }

    async fn forget_replay(&self, bus: &str, id: &str) -> LedgerResult<()> {
        sqlx::query("DELETE FROM replays WHERE bus = $1 AND id = $2")
            .bind(bus)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use crate::dispatch::ledger::{MemoryLedger, suite};

    use super::MetaStore;

    #[tokio::test]
    async fn the_memory_ledger_keeps_the_contract() {
        // A memory ledger has no store to reopen: the same value is what a restart sees.
        suite::run(MemoryLedger::default, MemoryLedger::reopened).await;
    }

    async fn sqlite() -> (MetaStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
        (MetaStore::connect(&url).await.expect("SQLite"), dir)
    }

    /// Leases: one holder at a time, taken over only once expired, renewed and given up
    /// by their holder; and a commit fenced by a lease its node does not hold writes nothing.
    #[tokio::test]
    async fn leases_fence_commits() {
        use crate::dispatch::ledger::{Changes, Ledger as _, SubKey, SubState, is_fenced};
        use crate::dispatch::ownership::SubId;
        let (store, _dir) = sqlite().await;
        let sub = SubId::new("b", "r", "t");
        let key = SubKey::new("r", "t");
        store.open("b", &key, 5).await.expect("opened");
        let commit = |owner: &str, cursor: u64| Changes {
            cursor: Some(cursor),
            fence: Some(owner.to_owned()),
            ..Changes::default()
        };
        // Nobody holds it: a fenced commit writes nothing.
        let refused = store.commit("b", &key, &commit("a", 6)).await;
        assert!(refused.as_ref().is_err_and(is_fenced), "{refused:?}");
        assert!(
            store
                .acquire_lease("a", &sub, 1_000, 2_000)
                .await
                .expect("sql")
        );
        // Held by a: b may not take it before it expires, a may commit, b may not.
        assert!(
            !store
                .acquire_lease("b", &sub, 1_500, 2_500)
                .await
                .expect("sql")
        );
        store
            .commit("b", &key, &commit("a", 7))
            .await
            .expect("a holds it");
        let refused = store.commit("b", &key, &commit("b", 8)).await;
        assert!(refused.as_ref().is_err_and(is_fenced), "{refused:?}");
        assert_eq!(
            store.renew_leases("a", 3_000).await.expect("sql"),
            vec![sub.clone()]
        );
        assert_eq!(
            store.held_leases(2_500).await.expect("sql"),
            vec![sub.clone()]
        );
        // Expired: b takes it, and a's commits are refused from then on.
        assert!(
            store
                .acquire_lease("b", &sub, 3_001, 4_000)
                .await
                .expect("sql")
        );
        let refused = store.commit("b", &key, &commit("a", 9)).await;
        assert!(refused.as_ref().is_err_and(is_fenced), "{refused:?}");
        assert!(
            store
                .renew_leases("a", 5_000)
                .await
                .expect("sql")
                .is_empty()
        );
        store
            .commit("b", &key, &commit("b", 10))
            .await
            .expect("b holds it");
        // Given up: free at once.
        store.release_lease("b", &sub).await.expect("sql");
        assert!(store.held_leases(3_500).await.expect("sql").is_empty());
        assert!(
            store
                .acquire_lease("a", &sub, 3_500, 6_000)
                .await
                .expect("sql")
        );
        let state = store.open("b", &key, 0).await.expect("loaded");
        assert_eq!(
            state,
            SubState {
                cursor: 10,
                entries: vec![]
            }
        );
    }

    #[tokio::test]
    async fn the_sqlite_ledger_keeps_the_contract() {
        let mut dirs = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..6 {
            let (store, dir) = sqlite().await;
            stores.push(store);
            dirs.push(dir);
        }
        let stores = std::sync::Mutex::new(stores);
        suite::run(
            || stores.lock().unwrap().pop().expect("a store per case"),
            // The same pool sees what a new process would: every commit is durable.
            MetaStore::clone,
        )
        .await;
    }

    #[tokio::test]
    async fn the_postgres_ledger_keeps_the_contract() {
        const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(ADMIN)
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 (scripts/test.sh starts it)");
        let mut names = Vec::new();
        let mut stores = Vec::new();
        for case in 0..6 {
            let name = format!("sy_ledger_{}_{case}", std::process::id());
            for sql in [
                format!("DROP DATABASE IF EXISTS {name}"),
                format!("CREATE DATABASE {name}"),
            ] {
                sqlx::query(&sql).execute(&admin).await.expect(&sql);
            }
            let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
            stores.push(MetaStore::connect(&url).await.expect("PostgreSQL"));
            names.push(name);
        }
        let all = stores.clone();
        let stores = std::sync::Mutex::new(stores);
        suite::run(
            || stores.lock().unwrap().pop().expect("a store per case"),
            MetaStore::clone,
        )
        .await;
        for store in all {
            store.close().await;
        }
        for name in names {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sqlx::query(&sql).execute(&admin).await.expect(&sql);
        }
    }
}
