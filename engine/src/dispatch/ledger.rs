//! The delivery ledger: the durable state of every matched (event, rule, target).
//!
//! Per subscription — a (rule, target) of a bus — the ledger keeps a **cursor** and a set of
//! **entries**. Every offset of the bus log below the cursor is either resolved (delivered,
//! dead-lettered, dropped, or not matched by the rule) or has an entry; an entry is an
//! unresolved delivery with its attempt count and, when a retry is scheduled, the time of the
//! next attempt and the last error. Deliveries that are not read from the log (a replay's, a
//! redrive's) are entries from the start, carrying their event.
//!
//! A worker commits its changes in one step per flush interval: the entries it holds that
//! must outlive a crash (any that waited a whole interval, any with a retry scheduled), the
//! entries it resolved, the dead letters it wrote and its new cursor — atomically, so a dead
//! letter is written exactly when its delivery is resolved. After a crash, deliveries resume
//! from exactly that state: the only repeats are deliveries that were in flight, or resolved
//! within the last interval, when the process died.
//!
//! One implementation per store: [`crate::meta::MetaStore`] (SQLite or PostgreSQL) and
//! [`MemoryLedger`] for tests on a paused clock. Both pass [`suite`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::meta::DeadLetter;

/// How often a worker commits to the ledger. Deliveries resolved within the last interval
/// before a crash are the ones that may be made again.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A subscription of a bus: one target of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubKey {
    pub rule: String,
    pub target: String,
}

impl SubKey {
    pub fn new(rule: &str, target: &str) -> SubKey {
        SubKey {
            rule: rule.to_owned(),
            target: target.to_owned(),
        }
    }
}

/// Where a delivery came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    /// The event as the bus log holds it, matched when it was published.
    Log,
    /// A dead letter tried again (under the id of the delivery it ended).
    Redrive,
    /// A replay of stored events, by replay id.
    Replay(String),
}

impl Origin {
    /// As stored: `log`, `redrive` or `replay:<id>`.
    pub fn as_text(&self) -> String {
        match self {
            Origin::Log => "log".to_owned(),
            Origin::Redrive => "redrive".to_owned(),
            Origin::Replay(id) => format!("replay:{id}"),
        }
    }

    pub fn from_text(text: &str) -> Origin {
        match text {
            "redrive" => Origin::Redrive,
            t => match t.strip_prefix("replay:") {
                Some(id) => Origin::Replay(id.to_owned()),
                None => Origin::Log,
            },
        }
    }

    pub fn replay(&self) -> Option<&str> {
        match self {
            Origin::Replay(id) => Some(id),
            _ => None,
        }
    }
}

/// An unresolved delivery, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unique per delivery; kept by its retries and redrives, new for a replay or a bus
    /// made again. Targets see it (`webhook-id`, `Nats-Msg-Id`, …) to dedup by.
    pub delivery_id: String,
    pub offset: u64,
    pub origin: Origin,
    /// The event as sent (CloudEvents JSON) when it is not read from the log.
    pub event: Option<String>,
    /// Attempts made so far (one in flight counts).
    pub attempts: u32,
    /// When a retry is scheduled: when (Unix ms) and why the last attempt failed.
    pub next_attempt_ms: Option<i64>,
    pub last_error: Option<String>,
    /// How many times this delivery was redriven.
    pub generation: u32,
}

/// Everything durable about one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubState {
    pub cursor: u64,
    pub entries: Vec<Entry>,
}

/// One worker's changes since its last commit, applied atomically.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The new cursor, when it moved.
    pub cursor: Option<u64>,
    /// Entries written or rewritten.
    pub put: Vec<Entry>,
    /// Delivery ids of entries resolved.
    pub resolved: Vec<String>,
    /// Dead letters written by resolving their deliveries (their ids are assigned).
    pub dead_letters: Vec<DeadLetter>,
    /// When nodes share the buses: the node whose lease on the subscription the commit
    /// needs. Without it, nothing is written ([`fenced`]). The memory ledger ignores it.
    pub fence: Option<String>,
}

const FENCED: &str = "the subscription's delivery lease is held by another node";

/// The error of a commit whose node no longer holds the subscription's lease.
pub fn fenced() -> sqlx::Error {
    sqlx::Error::Protocol(FENCED.to_owned())
}

pub fn is_fenced(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Protocol(m) if m == FENCED)
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.cursor.is_none()
            && self.put.is_empty()
            && self.resolved.is_empty()
            && self.dead_letters.is_empty()
    }
}

/// A replay as kept, so a restart resumes it: the next log offset it reads, and its
/// progress (JSON of [`super::replay::Progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRecord {
    pub id: String,
    pub position: u64,
    pub progress: String,
}

pub type LedgerResult<T> = Result<T, sqlx::Error>;

#[async_trait]
pub trait Ledger: Send + Sync {
    /// The subscription's state; a subscription without one starts at `cursor` (durably,
    /// before this returns).
    async fn open(&self, bus: &str, sub: &SubKey, cursor: u64) -> LedgerResult<SubState>;
    /// The subscriptions of a bus that have state.
    async fn subscriptions(&self, bus: &str) -> LedgerResult<Vec<SubKey>>;
    /// The lowest log offset any subscription of the bus still needs (its cursor, or an
    /// entry read from the log): retention keeps it and everything after.
    async fn needed_from(&self, bus: &str) -> LedgerResult<Option<u64>>;
    /// Applies a worker's changes in one transaction.
    async fn commit(&self, bus: &str, sub: &SubKey, changes: &Changes) -> LedgerResult<()>;
    /// Forgets a subscription (its rule or target was deleted); returns what it held.
    async fn forget(&self, bus: &str, sub: &SubKey) -> LedgerResult<Option<SubState>>;
    /// Dead letters become entries of their subscriptions, in one transaction; letters no
    /// longer there (deleted or redriven meanwhile) are skipped. Returns the entries made.
    async fn redrive(
        &self,
        bus: &str,
        letters: &[DeadLetter],
    ) -> LedgerResult<Vec<(SubKey, Entry)>>;
    /// Adds a replay's entries and saves its progress, in one transaction.
    async fn replay_step(
        &self,
        bus: &str,
        entries: &[(SubKey, Entry)],
        replay: &ReplayRecord,
    ) -> LedgerResult<()>;
    /// The replays of a bus as kept.
    async fn replays(&self, bus: &str) -> LedgerResult<Vec<ReplayRecord>>;
    /// Forgets a finished replay's record.
    async fn forget_replay(&self, bus: &str, id: &str) -> LedgerResult<()>;
}

/// The ledger in memory, for tests (a SQL pool times out on a paused clock). Dead letters
/// written through it are kept in order.
#[derive(Default)]
pub struct MemoryLedger {
    state: Mutex<MemoryState>,
}

#[derive(Default, Clone)]
struct MemoryState {
    subs: BTreeMap<(String, SubKey), (u64, BTreeMap<String, Entry>)>,
    dead_letters: Vec<DeadLetter>,
    next_letter: i64,
    replays: BTreeMap<(String, String), ReplayRecord>,
}

impl MemoryLedger {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// Dead letters written so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.with(|s| s.dead_letters.clone())
    }

    /// What a restarted process would find: a copy of everything kept.
    pub fn reopened(&self) -> MemoryLedger {
        MemoryLedger {
            state: Mutex::new(self.with(|s| s.clone())),
        }
    }

    /// A subscription's state, if it has one.
    pub fn state(&self, bus: &str, sub: &SubKey) -> Option<SubState> {
        self.with(|s| {
            s.subs
                .get(&(bus.to_owned(), sub.clone()))
                .map(|(cursor, entries)| SubState {
                    cursor: *cursor,
                    entries: entries.values().cloned().collect(),
                })
        })
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn open(&self, bus: &str, sub: &SubKey, cursor: u64) -> LedgerResult<SubState> {
        self.with(|s| {
            let (cursor, entries) = s
                .subs
                .entry((bus.to_owned(), sub.clone()))
                .or_insert_with(|| (cursor, BTreeMap::new()));
            Ok(SubState {
                cursor: *cursor,
                entries: entries.values().cloned().collect(),
            })
        })
    }

    async fn subscriptions(&self, bus: &str) -> LedgerResult<Vec<SubKey>> {
        self.with(|s| {
            Ok(s.subs
                .keys()
                .filter(|(b, _)| b == bus)
                .map(|(_, k)| k.clone())
                .collect())
        })
    }

    async fn needed_from(&self, bus: &str) -> LedgerResult<Option<u64>> {
        self.with(|s| {
            Ok(s.subs
                .iter()
                .filter(|((b, _), _)| b == bus)
                .flat_map(|(_, (cursor, entries))| {
                    let logged = entries.values().filter(|e| e.origin == Origin::Log);
                    std::iter::once(*cursor).chain(logged.map(|e| e.offset))
                })
                .min())
        })
    }

    async fn commit(&self, bus: &str, sub: &SubKey, changes: &Changes) -> LedgerResult<()> {
        self.with(|s| {
            let (cursor, entries) = s
                .subs
                .entry((bus.to_owned(), sub.clone()))
                .or_insert_with(|| (0, BTreeMap::new()));
            if let Some(c) = changes.cursor {
                *cursor = c;
            }
            for e in &changes.put {
                entries.insert(e.delivery_id.clone(), e.clone());
            }
            for id in &changes.resolved {
                entries.remove(id);
            }
            for dl in &changes.dead_letters {
                s.next_letter += 1;
                s.dead_letters.push(DeadLetter {
                    id: s.next_letter,
                    ..dl.clone()
                });
            }
            Ok(())
        })
    }

    async fn forget(&self, bus: &str, sub: &SubKey) -> LedgerResult<Option<SubState>> {
        self.with(|s| {
            Ok(s.subs
                .remove(&(bus.to_owned(), sub.clone()))
                .map(|(cursor, entries)| SubState {
                    cursor,
                    entries: entries.into_values().collect(),
                }))
        })
    }

    async fn redrive(
        &self,
        bus: &str,
        letters: &[DeadLetter],
    ) -> LedgerResult<Vec<(SubKey, Entry)>> {
        self.with(|s| {
            let mut made = Vec::new();
            for letter in letters {
                let Some(i) = s
                    .dead_letters
                    .iter()
                    .position(|d| d.id == letter.id && d.bus == bus)
                else {
                    continue;
                };
                let letter = s.dead_letters.remove(i);
                let (key, entry) = redriven(&letter);
                s.subs
                    .entry((bus.to_owned(), key.clone()))
                    .or_insert_with(|| (0, BTreeMap::new()))
                    .1
                    .insert(entry.delivery_id.clone(), entry.clone());
                made.push((key, entry));
            }
            Ok(made)
        })
    }

    async fn replay_step(
        &self,
        bus: &str,
        entries: &[(SubKey, Entry)],
        replay: &ReplayRecord,
    ) -> LedgerResult<()> {
        self.with(|s| {
            for (key, entry) in entries {
                s.subs
                    .entry((bus.to_owned(), key.clone()))
                    .or_insert_with(|| (0, BTreeMap::new()))
                    .1
                    .insert(entry.delivery_id.clone(), entry.clone());
            }
            s.replays
                .insert((bus.to_owned(), replay.id.clone()), replay.clone());
            Ok(())
        })
    }

    async fn replays(&self, bus: &str) -> LedgerResult<Vec<ReplayRecord>> {
        self.with(|s| {
            Ok(s.replays
                .iter()
                .filter(|((b, _), _)| b == bus)
                .map(|(_, r)| r.clone())
                .collect())
        })
    }

    async fn forget_replay(&self, bus: &str, id: &str) -> LedgerResult<()> {
        self.with(|s| {
            s.replays.remove(&(bus.to_owned(), id.to_owned()));
            Ok(())
        })
    }
}

/// The entry a redriven dead letter becomes: the same delivery, tried afresh, one
/// generation on.
pub fn redriven(letter: &DeadLetter) -> (SubKey, Entry) {
    (
        SubKey::new(&letter.rule, &letter.target),
        Entry {
            delivery_id: letter.delivery_id.clone(),
            offset: letter.event_offset,
            origin: Origin::Redrive,
            event: Some(letter.event.clone()),
            attempts: 0,
            next_attempt_ms: None,
            last_error: None,
            generation: letter.generation.saturating_add(1),
        },
    )
}

/// The contract every [`Ledger`] keeps, run by each implementation's tests: `make` gives a
/// fresh, empty ledger; `reopen` the same store as a restarted process sees it.
#[cfg(test)]
pub mod suite {
    use super::*;

    fn entry(id: &str, offset: u64, origin: Origin) -> Entry {
        Entry {
            delivery_id: id.to_owned(),
            offset,
            origin,
            event: None,
            attempts: 1,
            next_attempt_ms: None,
            last_error: None,
            generation: 0,
        }
    }

    fn letter(bus: &str, sub: &SubKey, delivery_id: &str, offset: u64) -> DeadLetter {
        DeadLetter {
            id: 0,
            bus: bus.to_owned(),
            event_offset: offset,
            event: r#"{"specversion":"1.0","id":"e","source":"s","type":"t"}"#.to_owned(),
            rule: sub.rule.clone(),
            target: sub.target.clone(),
            attempts: 3,
            last_error: "HTTP 400".to_owned(),
            at_ms: 1,
            delivery_id: delivery_id.to_owned(),
            origin: Origin::Log.as_text(),
            generation: 0,
        }
    }

    fn sorted(mut s: SubState) -> SubState {
        s.entries.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
        s
    }

    /// Runs every case; each store's ids for dead letters start at 1.
    pub async fn run<L, F, R>(make: F, reopen: R)
    where
        L: Ledger,
        F: Fn() -> L,
        R: Fn(&L) -> L,
    {
        opens_at_the_given_cursor_once(make()).await;
        commits_survive_a_reopen(&make(), &reopen).await;
        a_dead_letter_is_written_with_its_resolution(make()).await;
        forget_removes_one_subscription(make()).await;
        redrive_moves_letters_once(make()).await;
        replays_are_kept(make()).await;
    }

    async fn opens_at_the_given_cursor_once(l: impl Ledger) {
        let k = SubKey::new("r", "t");
        assert_eq!(
            l.open("b", &k, 7).await.unwrap(),
            SubState {
                cursor: 7,
                entries: vec![]
            }
        );
        // A second open finds the state, whatever cursor it offers.
        assert_eq!(l.open("b", &k, 99).await.unwrap().cursor, 7);
        // Buses and subscriptions are separate.
        assert_eq!(l.open("b2", &k, 3).await.unwrap().cursor, 3);
        assert_eq!(
            l.open("b", &SubKey::new("r", "t2"), 4)
                .await
                .unwrap()
                .cursor,
            4
        );
    }

    async fn commits_survive_a_reopen<L: Ledger>(l: &L, reopen: &impl Fn(&L) -> L) {
        let k = SubKey::new("r", "t");
        l.open("b", &k, 0).await.unwrap();
        let mut retry = entry("d1", 1, Origin::Log);
        retry.attempts = 3;
        retry.next_attempt_ms = Some(1_700_000_000_000);
        retry.last_error = Some("HTTP 503".to_owned());
        let mut replayed = entry("rp:2", 2, Origin::Replay("rp".to_owned()));
        replayed.event = Some("{}".to_owned());
        let changes = Changes {
            fence: None,
            cursor: Some(10),
            put: vec![retry.clone(), replayed.clone(), entry("d3", 3, Origin::Log)],
            resolved: vec![],
            dead_letters: vec![],
        };
        l.commit("b", &k, &changes).await.unwrap();
        // The log entry at 1 is needed (the replay's carries its event).
        assert_eq!(l.needed_from("b").await.unwrap(), Some(1));
        assert_eq!(l.needed_from("other").await.unwrap(), None);
        // Rewriting an entry replaces it; resolving one removes it; the cursor only moves
        // when given.
        let mut again = retry.clone();
        again.attempts = 4;
        let changes = Changes {
            fence: None,
            cursor: None,
            put: vec![again.clone()],
            resolved: vec!["d3".to_owned(), "never-there".to_owned()],
            dead_letters: vec![],
        };
        l.commit("b", &k, &changes).await.unwrap();
        let after = reopen(l);
        let state = sorted(after.open("b", &k, 0).await.unwrap());
        assert_eq!(
            state,
            SubState {
                cursor: 10,
                entries: vec![again, replayed.clone()]
            }
        );
        // Without the log entry, the cursor is what is needed; another subscription's lower
        // cursor counts too.
        let resolved = Changes {
            fence: None,
            resolved: vec!["d1".to_owned()],
            ..Changes::default()
        };
        after.commit("b", &k, &resolved).await.unwrap();
        assert_eq!(after.needed_from("b").await.unwrap(), Some(10));
        after.open("b", &SubKey::new("r", "t2"), 4).await.unwrap();
        assert_eq!(after.needed_from("b").await.unwrap(), Some(4));
    }

    async fn a_dead_letter_is_written_with_its_resolution(l: impl Ledger) {
        let k = SubKey::new("r", "t");
        l.open("b", &k, 0).await.unwrap();
        l.commit(
            "b",
            &k,
            &Changes {
                fence: None,
                put: vec![entry("d1", 1, Origin::Log)],
                ..Changes::default()
            },
        )
        .await
        .unwrap();
        let changes = Changes {
            fence: None,
            cursor: Some(5),
            put: vec![],
            resolved: vec!["d1".to_owned()],
            dead_letters: vec![letter("b", &k, "d1", 1), letter("b", &k, "d4", 4)],
        };
        l.commit("b", &k, &changes).await.unwrap();
        assert_eq!(
            l.open("b", &k, 0).await.unwrap(),
            SubState {
                cursor: 5,
                entries: vec![]
            }
        );
        // Both letters are there, under ids the store gave.
        let probes: Vec<DeadLetter> = (1..=100)
            .map(|id| DeadLetter {
                id,
                ..letter("b", &k, "", 0)
            })
            .collect();
        assert_eq!(l.redrive("other", &probes).await.unwrap(), vec![]);
        let made = l.redrive("b", &probes).await.unwrap();
        let mut ids: Vec<&str> = made.iter().map(|(_, e)| e.delivery_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["d1", "d4"]);
    }

    async fn forget_removes_one_subscription(l: impl Ledger) {
        let (a, b) = (SubKey::new("r", "a"), SubKey::new("r", "b"));
        for k in [&a, &b] {
            l.open("bus", k, 3).await.unwrap();
            l.commit(
                "bus",
                k,
                &Changes {
                    fence: None,
                    put: vec![entry("d", 1, Origin::Log)],
                    ..Changes::default()
                },
            )
            .await
            .unwrap();
        }
        let mut keys = l.subscriptions("bus").await.unwrap();
        keys.sort();
        assert_eq!(keys, vec![a.clone(), b.clone()]);
        assert_eq!(l.subscriptions("other").await.unwrap(), vec![]);
        let held = l.forget("bus", &a).await.unwrap().unwrap();
        assert_eq!((held.cursor, held.entries.len()), (3, 1));
        assert_eq!(l.forget("bus", &a).await.unwrap(), None);
        assert_eq!(l.subscriptions("bus").await.unwrap(), vec![b.clone()]);
        assert_eq!(
            l.open("bus", &a, 9).await.unwrap(),
            SubState {
                cursor: 9,
                entries: vec![]
            }
        );
        assert_eq!(l.open("bus", &b, 9).await.unwrap().entries.len(), 1);
    }

    async fn redrive_moves_letters_once(l: impl Ledger) {
        let k = SubKey::new("r", "t");
        l.open("b", &k, 0).await.unwrap();
        let mut once = letter("b", &k, "d1", 1);
        once.generation = 2;
        let changes = Changes {
            fence: None,
            dead_letters: vec![once.clone(), letter("b", &k, "d2", 2)],
            ..Changes::default()
        };
        l.commit("b", &k, &changes).await.unwrap();
        let mut stored = l.redrive("b", &[]).await.unwrap();
        assert!(stored.is_empty());
        // Find the ids the store gave: a redrive by id 1..=100 takes what exists, once.
        let probes: Vec<DeadLetter> = (1..=100)
            .map(|id| DeadLetter { id, ..once.clone() })
            .collect();
        stored = l.redrive("b", &probes).await.unwrap();
        assert_eq!(stored.len(), 2);
        let ids: Vec<&str> = stored.iter().map(|(_, e)| e.delivery_id.as_str()).collect();
        assert!(ids.contains(&"d1") && ids.contains(&"d2"), "{ids:?}");
        let d1 = stored.iter().find(|(_, e)| e.delivery_id == "d1").unwrap();
        assert_eq!(d1.0, k);
        assert_eq!(d1.1.origin, Origin::Redrive);
        assert_eq!(d1.1.generation, 3);
        assert_eq!(d1.1.attempts, 0);
        assert!(d1.1.event.is_some());
        assert_eq!(l.redrive("b", &probes).await.unwrap(), vec![]);
        assert_eq!(l.open("b", &k, 0).await.unwrap().entries.len(), 2);
    }

    async fn replays_are_kept(l: impl Ledger) {
        let k = SubKey::new("r", "t");
        let mut e = entry("rp-1:4:r:t", 4, Origin::Replay("rp-1".to_owned()));
        e.event = Some("{}".to_owned());
        let record = ReplayRecord {
            id: "rp-1".to_owned(),
            position: 5,
            progress: "{}".to_owned(),
        };
        l.replay_step("b", &[(k.clone(), e.clone())], &record)
            .await
            .unwrap();
        let moved = ReplayRecord {
            position: 9,
            ..record.clone()
        };
        l.replay_step("b", &[], &moved).await.unwrap();
        assert_eq!(l.replays("b").await.unwrap(), vec![moved]);
        assert_eq!(l.replays("other").await.unwrap(), vec![]);
        assert_eq!(l.open("b", &k, 0).await.unwrap().entries, vec![e]);
        l.forget_replay("b", "rp-1").await.unwrap();
        assert_eq!(l.replays("b").await.unwrap(), vec![]);
    }
}
