//! Delivery, at least once: from a bus log to the targets of the rules its events matched.
//!
//! Per bus, one scanner reads the log once, in order, and offers each event to the
//! subscriptions — one per (rule, target) — of the rules the event matched when it was
//! published. A subscription's worker holds a bounded window of deliveries and retries them
//! under the target's policy. When a window is full (a slow or failing target), the scanner
//! stops offering to that subscription and moves on — no target delays another — and the
//! subscription later catches up by reading the log itself from where it fell behind, until
//! it reaches the scanner and attaches again. So the log is read once per bus in the common
//! case, memory is bounded by the windows, and the backlog stays on disk.
//!
//! What must survive a crash is in the [`ledger`]: per subscription a cursor and an entry
//! per unresolved delivery that lasted a flush interval or has a retry scheduled, committed
//! by each worker every [`ledger::FLUSH_INTERVAL`]. After a crash, delivery resumes from
//! exactly that state; deliveries in flight, or resolved within the last two intervals, may
//! be made again: at least once, not exactly once. Replays and redrives are ledger entries
//! from the start. A subscription stopped (its rule disabled, edited, or the server
//! stopping) writes everything it holds first; the one that takes over starts from that.

mod bus_target;
#[cfg(test)]
mod crash_tests;
pub mod journal;
pub mod ledger;
pub mod ownership;
pub mod ports;
pub mod replay;
mod retry_queue;
mod subscription;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use switchyard_event_store::{Appended, LogStore, Record};
use tokio::sync::Notify;

use crate::ruleset::RuleSet;
pub use journal::Journal;
use journal::{Stage, TraceStep};
use ledger::{Entry, Origin, ReplayRecord, SubKey};
pub use ports::{Ports, Publisher};
use subscription::Sub;
pub use subscription::SubSpec;

/// Resolves once the flag is set (the guard `wait_for` returns is not held across awaits).
pub(crate) async fn until_set(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await.map(|_| ());
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    for f in futures {
        f.await;
    }
}

/// An event on its way to targets, parsed once and shared by every subscription.
pub struct Event {
    pub record: Record,
    pub value: Value,
}

impl Event {
    /// An event known only by its offset and JSON (a dead letter, a replay).
    pub fn from_json(offset: u64, payload: Vec<u8>) -> Event {
        let value: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        let text = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Event {
            record: Record {
                offset,
                received_at_ms: switchyard_core::time::now_ms(),
                source: text("source"),
                id: text("id"),
                payload,
                matched_rules: Vec::new(),
            },
            value,
        }
    }
}

/// The subscriptions a rule set asks for, and which (rule, target) pairs it still has
/// (enabled or not) and which rules.
pub struct SubSpecs {
    wanted: Vec<SubSpec>,
    known: HashSet<(String, String)>,
    rules: HashSet<String>,
    /// Wanted, but delivered by another node (see [`ownership`]).
    elsewhere: HashSet<(String, String)>,
}

impl SubSpecs {
    /// Exactly these subscriptions (their rules and targets the only ones known).
    #[cfg(test)]
    pub fn of(wanted: Vec<SubSpec>) -> SubSpecs {
        SubSpecs {
            known: wanted.iter().map(SubSpec::key).collect(),
            rules: wanted.iter().map(|s| s.rule.clone()).collect(),
            wanted,
            elsewhere: HashSet::new(),
        }
    }
}

/// Per rule, how many events that matched it were appended to the log and how many the
/// scanner has passed, both counted from `base` (the log's end when delivery started). A
/// subscription knows the ordinal of the next matching event it has not taken, so its
/// backlog past what it holds is `appended - ordinal`, exactly, without reading the log.
#[derive(Default)]
pub struct Counts {
    base: AtomicU64,
    appended: RwLock<HashMap<String, Arc<AtomicI64>>>,
}

impl Counts {
    fn appended(&self, rule: &str) -> i64 {
        self.appended
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(rule)
            .map_or(0, |n| n.load(Ordering::Acquire))
    }

    fn add(&self, rule: &str, n: i64) {
        let known = self
            .appended
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(rule)
            .cloned();
        let counter = match known {
            Some(counter) => counter,
            None => self
                .appended
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(rule.to_owned())
                .or_default()
                .clone(),
        };
        counter.fetch_add(n, Ordering::AcqRel);
    }
}

/// The scanner's position, and per rule how many matching events it has passed since
/// delivery started (the ordinal of the next one).
#[derive(Default)]
struct Scan {
    next: u64,
    passed: HashMap<String, i64>,
}

/// Why a subscription's pending deliveries were dropped.
const RULE_DELETED: &str = "rule deleted";
const TARGET_REMOVED: &str = "target removed";

pub struct BusDispatch {
    bus: String,
    /// Made anew with the bus's files: delivery ids of a bus deleted and made again differ.
    incarnation: String,
    ports: Ports,
    log: Arc<dyn LogStore>,
    pub journal: Arc<Journal>,
    notify: Notify,
    /// The scanner's position: the next offset it will offer. Held while offering, so a
    /// catching-up subscription can attach at exactly this point.
    scan: tokio::sync::Mutex<Scan>,
    counts: Counts,
    /// Subscriptions of disabled rules that have state from an earlier run: their backlog,
    /// counted when delivery started.
    paused: Mutex<HashMap<(String, String), u64>>,
    subs: Mutex<HashMap<(String, String), Arc<Sub>>>,
    /// Every (rule, target) the rules want delivered, here or (nodes sharing the buses) by
    /// another node: what a redrive or a replay writes entries for.
    delivered: Mutex<HashSet<(String, String)>>,
    /// Subscriptions stopped and maybe still finishing, by (rule, target): one made again
    /// for the same pair starts after it.
    retiring: Mutex<HashMap<(String, String), Arc<Sub>>>,
    stopped: tokio::sync::watch::Sender<bool>,
    pub replays: replay::Replays,
    /// Set while a redrive of every dead letter runs in the background.
    pub redriving_all: std::sync::atomic::AtomicBool,
}

impl BusDispatch {
    pub fn new(
        bus: String,
        incarnation: String,
        log: Arc<dyn LogStore>,
        journal: Journal,
        ports: Ports,
    ) -> Arc<BusDispatch> {
        let next = log.bounds().next;
        Arc::new(BusDispatch {
            bus,
            incarnation,
            ports,
            log,
            journal: Arc::new(journal),
            notify: Notify::new(),
            scan: tokio::sync::Mutex::new(Scan {
                next,
                passed: HashMap::new(),
            }),
            counts: Counts::default(),
            paused: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            delivered: Mutex::new(HashSet::new()),
            retiring: Mutex::new(HashMap::new()),
            stopped: tokio::sync::watch::channel(false).0,
            replays: replay::Replays::default(),
            redriving_all: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// New events may be waiting.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Sub>>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subscriptions `rules` ask for, built with this bus's ports.
    pub fn specs(&self, rules: &RuleSet) -> SubSpecs {
        let (wanted, elsewhere): (Vec<SubSpec>, Vec<SubSpec>) =
            subscription::specs(&self.ports, rules)
                .into_iter()
                .partition(|s| self.owns(&s.rule, &s.target_id));
        SubSpecs {
            wanted,
            elsewhere: elsewhere.iter().map(SubSpec::key).collect(),
            known: rules
                .runnable()
                .flat_map(|(r, targets)| {
                    targets.iter().map(|t| (r.name.clone(), t.spec.id.clone()))
                })
                .chain(
                    // A rule this version cannot run keeps its deliveries' state.
                    rules
                        .list()
                        .filter(|r| rules.inactive_reason(&r.name).is_some())
                        .flat_map(|r| r.targets.iter().map(|t| (r.name.clone(), t.id.clone()))),
                )
                .collect(),
            rules: rules.list().map(|r| r.name.clone()).collect(),
        }
    }

    /// Whether this node delivers (rule, target): always, unless nodes share the buses.
    fn owns(&self, rule: &str, target: &str) -> bool {
        self.ports
            .ownership
            .as_ref()
            .is_none_or(|o| o.owns(&self.bus, rule, target))
    }

    /// Starts a worker per subscription (each loads its ledger state and catches up from
    /// its cursor; one without state starts at the log's end) and the scanner, at the end.
    pub async fn start(self: &Arc<Self>, specs: SubSpecs) -> anyhow::Result<()> {
        let next = self.log.bounds().next;
        {
            let mut scan = self.scan.lock().await;
            scan.next = next;
            scan.passed.clear();
            self.counts.base.store(next, Ordering::Release);
            self.counts
                .appended
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        let wanted: HashSet<(String, String)> = specs.wanted.iter().map(SubSpec::key).collect();
        *guard(&self.delivered) = wanted.union(&specs.elsewhere).cloned().collect();
        // Delivered elsewhere: its state is started here all the same, so no event is missed
        // while its node takes it up.
        for (rule, target) in &specs.elsewhere {
            self.ports
                .ledger
                .open(&self.bus, &SubKey::new(rule, target), next)
                .await?;
        }
        for spec in specs.wanted {
            // One without state (new since the last run) starts here.
            let key = SubKey::new(&spec.rule, &spec.target_id);
            self.ports.ledger.open(&self.bus, &key, next).await?;
            self.add_sub(spec);
        }
        // Paused ones (their rule disabled) keep their state: count what it holds.
        for key in self.ports.ledger.subscriptions(&self.bus).await? {
            let pair = (key.rule.clone(), key.target.clone());
            if wanted.contains(&pair)
                || specs.elsewhere.contains(&pair)
                || !specs.known.contains(&pair)
            {
                continue;
            }
            let state = self.ports.ledger.open(&self.bus, &key, next).await?;
            let past = self.count_matching(&key.rule, state.cursor, next).await?;
            // An entry past the cursor is also among the matching events read.
            let ahead = state
                .entries
                .iter()
                .filter(|e| e.origin == Origin::Log && e.offset >= state.cursor)
                .count();
            let n = state.entries.len() as i64 + past - ahead as i64;
            guard(&self.paused).insert(pair, u64::try_from(n).unwrap_or(0));
        }
        tokio::spawn(self.clone().scanner());
        Ok(())
    }

    /// Counts events appended by ingest, for the backlog (see [`Counts`]).
    pub fn appended(&self, appended: &[Appended], matched: &[Vec<String>]) {
        let base = self.counts.base.load(Ordering::Acquire);
        let mut per_rule: Vec<(&str, i64)> = Vec::new();
        for (a, rules) in appended.iter().zip(matched) {
            if let Appended::New { offset } = a
                && *offset >= base
            {
                for rule in rules {
                    match per_rule.iter_mut().find(|(r, _)| r == rule) {
                        Some((_, n)) => *n += 1,
                        None => per_rule.push((rule, 1)),
                    }
                }
            }
        }
        for (rule, n) in per_rule {
            self.counts.add(rule, n);
        }
    }

    /// How many events on the log in `[from, to)` matched `rule`.
    async fn count_matching(&self, rule: &str, from: u64, to: u64) -> anyhow::Result<i64> {
        let mut n = 0i64;
        let mut at = from;
        while at < to {
            let records = self.log.read(at, 1024).await?;
            if records.is_empty() {
                break;
            }
            for record in records {
                if record.offset >= to {
                    return Ok(n);
                }
                at = record.offset + 1;
                if record.matched_rules.iter().any(|r| r == rule) {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// The ordinal of the first event matching `rule` at or after `offset`: counted from
    /// the scanner's position and what it has passed, reading the log between the two.
    async fn ordinal_at(&self, rule: &str, offset: u64) -> anyhow::Result<i64> {
        let (next, passed) = {
            let scan = self.scan.lock().await;
            (scan.next, scan.passed.get(rule).copied().unwrap_or(0))
        };
        Ok(if offset <= next {
            passed - self.count_matching(rule, offset, next).await?
        } else {
            passed + self.count_matching(rule, next, offset).await?
        })
    }

    fn add_sub(self: &Arc<Self>, spec: SubSpec) {
        guard(&self.paused).remove(&spec.key());
        let predecessor = guard(&self.retiring).remove(&spec.key());
        let (sub, inbox) = Sub::new(spec, predecessor);
        self.subs().insert(sub.key(), sub.clone());
        tokio::spawn(worker::run(self.clone(), sub, inbox));
    }

    /// Brings subscriptions in line with the rule set after a rule change. A new (rule,
    /// target) starts at the log's end (saved before this returns); a rule disabled stops
    /// its subscriptions, keeping their state, and enabled again resumes it; an edited one
    /// hands its state to its successor; a deleted rule or target forgets its state and
    /// drops its pending deliveries, each with the reason on its trace.
    pub async fn sync(self: &Arc<Self>, specs: SubSpecs) {
        let SubSpecs {
            wanted,
            known,
            rules,
            elsewhere,
        } = specs;
        *guard(&self.delivered) = wanted
            .iter()
            .map(SubSpec::key)
            .chain(elsewhere.iter().cloned())
            .collect();
        let next = self.log.bounds().next;
        let current: Vec<Arc<Sub>> = self.subs().values().cloned().collect();
        for sub in &current {
            let still = wanted.iter().find(|w| w.key() == sub.key());
            if still.is_some_and(|w| w.fingerprint == sub.spec.fingerprint) {
                continue;
            }
            self.subs().remove(&sub.key());
            sub.stop();
            guard(&self.retiring).insert(sub.key(), sub.clone());
        }
        // Forget what a deleted rule or target held, running or not.
        let mut held: Vec<(String, String)> = Vec::new();
        match self.ports.ledger.subscriptions(&self.bus).await {
            Ok(keys) => held.extend(keys.into_iter().map(|k| (k.rule, k.target))),
            Err(e) => {
                tracing::error!(bus = %self.bus, error = %e, "listing delivery state failed");
            }
        }
        held.extend(current.iter().map(|s| s.key()));
        held.sort();
        held.dedup();
        for key in held {
            if known.contains(&key) {
                continue;
            }
            let reason = if rules.contains(&key.0) {
                TARGET_REMOVED
            } else {
                RULE_DELETED
            };
            self.forget(&key, reason).await;
        }
        for (rule, target) in &elsewhere {
            // Started here too (another node delivers it): see `start`.
            if let Err(e) = self
                .ports
                .ledger
                .open(&self.bus, &SubKey::new(rule, target), next)
                .await
            {
                tracing::error!(bus = %self.bus, error = %e, "saving a new subscription's start failed");
            }
        }
        for spec in wanted {
            if self.subs().contains_key(&spec.key()) {
                continue;
            }
            // A new (rule, target) starts at the log's end: saved before the rule change is
            // acknowledged, or a crash would lose where it began. (One with state keeps it.)
            let key = SubKey::new(&spec.rule, &spec.target_id);
            if let Err(e) = self.ports.ledger.open(&self.bus, &key, next).await {
                tracing::error!(bus = %self.bus, error = %e, "saving a new subscription's start failed");
            }
            self.add_sub(spec);
        }
        self.wake();
    }

    /// Forgets a deleted subscription's state and drops what it held, in the background,
    /// once its worker (if it runs) has finished.
    async fn forget(self: &Arc<Self>, key: &(String, String), reason: &'static str) {
        // The subscription, and the ones it was taking over from: none may write again.
        let mut chain = Vec::new();
        guard(&self.paused).remove(key);
        let mut next = guard(&self.retiring).remove(key);
        while let Some(sub) = next {
            sub.forget(reason).await;
            next = sub.predecessor();
            chain.push(sub);
        }
        let ledger_key = SubKey::new(&key.0, &key.1);
        let state = match self.ports.ledger.forget(&self.bus, &ledger_key).await {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(bus = %self.bus, rule = %key.0, target = %key.1, error = %e, "forgetting delivery state failed");
                None
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            // A worker forgotten while it ran hands over what it held, which covers what
            // the ledger had; otherwise the ledger's state is all there is.
            let mut held = Vec::new();
            let mut scan_from = None::<u64>;
            for sub in &chain {
                sub.finished().await;
                if let Some(left) = sub.take_leftovers() {
                    held.extend(left.held);
                    scan_from = Some(scan_from.map_or(left.scan_from, |s| s.min(left.scan_from)));
                }
            }
            let (held, scan_from) = match (scan_from, state) {
                (Some(from), _) => (held, from),
                (None, Some(state)) => (this.events_of(state.entries).await, state.cursor),
                (None, None) => (Vec::new(), u64::MAX),
            };
            this.drop_pending(&ledger_key, held, scan_from, reason)
                .await;
        });
    }

    /// The events of ledger entries, as the log or the entry holds them.
    async fn events_of(&self, entries: Vec<Entry>) -> Vec<(Arc<Event>, Option<String>)> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(event) = self.event_of(&entry).await {
                out.push((event, entry.origin.replay().map(str::to_owned)));
            }
        }
        out
    }

    /// Journals `dropped` with `reason` for each held delivery and each event from
    /// `scan_from` on that matched the rule, and counts them.
    async fn drop_pending(
        &self,
        key: &SubKey,
        held: Vec<(Arc<Event>, Option<String>)>,
        scan_from: u64,
        reason: &str,
    ) {
        let mut dropped = 0u64;
        for (event, replay) in held {
            self.journal_dropped(key, &event.record, replay, reason)
                .await;
            dropped += 1;
        }
        let mut at = scan_from;
        while at < self.log.bounds().next {
            let records = match self.log.read(at, 1024).await {
                Ok(records) if !records.is_empty() => records,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(bus = %self.bus, error = %e, "reading the log to drop a deleted subscription's deliveries failed");
                    break;
                }
            };
            for record in records {
                at = record.offset + 1;
                if record.matched_rules.contains(&key.rule) {
                    self.journal_dropped(key, &record, None, reason).await;
                    dropped += 1;
                }
            }
        }
        self.count_dropped(&key.rule, &key.target, dropped);
        if dropped > 0 {
            tracing::info!(bus = %self.bus, rule = %key.rule, target = %key.target, dropped, reason, "pending deliveries dropped");
        }
    }

    async fn journal_dropped(
        &self,
        key: &SubKey,
        record: &Record,
        replay: Option<String>,
        reason: &str,
    ) {
        let mut step = TraceStep::new(record.offset, Stage::Dropped);
        step.rule = key.rule.clone();
        step.target = key.target.clone();
        step.error = Some(reason.to_owned());
        step.replay = replay;
        step.at_ms = switchyard_core::time::now_ms();
        self.journal.record(&record.source, &record.id, step).await;
    }

    /// Counts deliveries of (rule, target) ended as dropped.
    pub fn count_dropped(&self, rule: &str, target: &str, n: u64) {
        self.ports
            .metrics
            .deliveries
            .get_or_create(&crate::metrics::DeliveryLabels {
                bus: self.bus.clone(),
                rule: rule.to_owned(),
                target: target.to_owned(),
                outcome: "dropped".to_owned(),
            })
            .inc_by(n);
    }

    /// The event a ledger entry delivers: the one it carries, or the log's at its offset
    /// (`None` if the log no longer holds it).
    pub async fn event_of(&self, entry: &Entry) -> Option<Arc<Event>> {
        match &entry.event {
            Some(json) => Some(Arc::new(Event::from_json(
                entry.offset,
                json.clone().into_bytes(),
            ))),
            None => self.read_one(entry.offset).await,
        }
    }

    /// The event at `offset`, if the log still holds it.
    async fn read_one(&self, offset: u64) -> Option<Arc<Event>> {
        let record = self
            .log
            .read(offset, 1)
            .await
            .ok()?
            .into_iter()
            .next()
            .filter(|r| r.offset == offset)?;
        let value = serde_json::from_slice(&record.payload).unwrap_or(Value::Null);
        Some(Arc::new(Event { record, value }))
    }

    /// The bus is being deleted: its workers write nothing more to the ledger (its rows go
    /// with the bus).
    pub async fn forget_all(&self) {
        let mut subs: Vec<Arc<Sub>> = self.subs().values().cloned().collect();
        subs.extend(guard(&self.retiring).values().cloned());
        for sub in subs {
            sub.forget("bus deleted").await;
        }
    }

    /// Waits until the stopped subscription of (rule, target), if any, has written what it
    /// held (before its lease is given up).
    pub async fn retired(&self, rule: &str, target: &str) {
        let sub = guard(&self.retiring)
            .get(&(rule.to_owned(), target.to_owned()))
            .cloned();
        if let Some(sub) = sub {
            sub.finished().await;
        }
    }

    /// The node whose lease a worker's commit needs, when nodes share the buses.
    fn fence(&self) -> Option<String> {
        self.ports.ownership.as_ref().map(|o| o.node().to_owned())
    }

    pub fn stop(&self) {
        self.stopped.send_replace(true);
        for sub in self.subs().values() {
            sub.stop();
        }
        self.notify.notify_one();
    }

    /// Stops, and waits (at most `grace`) for in-flight deliveries and every worker's last
    /// commit.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop();
        let mut subs: Vec<Arc<Sub>> = self.subs().values().cloned().collect();
        subs.extend(guard(&self.retiring).values().cloned());
        let all = futures_join_all(subs.iter().map(|s| s.finished()));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(bus = %self.bus, "deliveries still in flight at shutdown; they will be retried after restart");
        }
    }

    /// Deliveries not yet resolved for each subscription, running or paused (its rule
    /// disabled): `(rule, target, count)`.
    pub fn backlog(&self) -> Vec<(String, String, u64)> {
        let mut out: HashMap<(String, String), u64> = guard(&self.paused).clone();
        let running: Vec<Arc<Sub>> = self.subs().values().cloned().collect();
        // A stopped one not taken over is paused, with what it held when it stopped.
        // (One given up to another node is that node's to count.)
        let stopped: Vec<Arc<Sub>> = guard(&self.retiring)
            .values()
            .filter(|s| self.owns(&s.spec.rule, &s.spec.target_id))
            .cloned()
            .collect();
        for sub in stopped.iter().chain(&running) {
            let n = sub.backlog(self.counts.appended(&sub.spec.rule));
            out.insert(sub.key(), n);
        }
        out.into_iter().map(|((r, t), n)| (r, t, n)).collect()
    }

    /// Reads the log once, offering each event to the subscriptions of the rules it matched.
    async fn scanner(self: Arc<Self>) {
        const CHUNK: usize = 256;
        let mut stopped = self.stopped.subscribe();
        loop {
            if *stopped.borrow() {
                return;
            }
            let from = self.scan.lock().await.next;
            let records = match self.log.read(from, CHUNK).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(bus = %self.bus, error = %e, "dispatcher cannot read the log");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if records.is_empty() {
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = until_set(&mut stopped) => return,
                }
                continue;
            }
            let mut scan = self.scan.lock().await;
            let by_rule = self.subs_by_rule();
            let mut pos = scan.next;
            for record in records {
                pos = record.offset + 1;
                let mut targets: Vec<(&Arc<Sub>, i64)> = Vec::new();
                for rule in &record.matched_rules {
                    let ordinal = match scan.passed.get_mut(rule) {
                        Some(passed) => {
                            *passed += 1;
                            *passed - 1
                        }
                        None => {
                            scan.passed.insert(rule.clone(), 1);
                            0
                        }
                    };
                    let subs = by_rule.get(rule.as_str()).into_iter().flatten();
                    targets.extend(
                        subs.filter(|s| s.wants(record.offset))
                            .map(|s| (s, ordinal)),
                    );
                }
                if targets.is_empty() {
                    continue;
                }
                let value = serde_json::from_slice(&record.payload).unwrap_or(Value::Null);
                let offset = record.offset;
                let event = Arc::new(Event { record, value });
                for (sub, ordinal) in targets {
                    sub.offer(&event, offset, ordinal);
                }
            }
            scan.next = pos;
            for subs in by_rule.values() {
                for sub in subs {
                    sub.scanned_to(pos);
                }
            }
        }
    }

    /// Hands dead letters back to their subscriptions, moved into the ledger in one
    /// transaction first. Returns the ids whose (rule, target) is not delivered now: they
    /// stay dead letters.
    pub async fn redrive(
        &self,
        letters: Vec<crate::meta::DeadLetter>,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let subs = self.subs().clone();
        let (deliverable, orphans): (Vec<_>, Vec<_>) = letters
            .into_iter()
            .partition(|dl| self.delivers_to(&dl.rule, &dl.target));
        for dl in &deliverable {
            if let Some(sub) = subs.get(&(dl.rule.clone(), dl.target.clone())) {
                sub.handing(1);
            }
        }
        let made = match self.ports.ledger.redrive(&self.bus, &deliverable).await {
            Ok(made) => made,
            Err(e) => {
                for dl in &deliverable {
                    if let Some(sub) = subs.get(&(dl.rule.clone(), dl.target.clone())) {
                        sub.handed(1);
                    }
                }
                return Err(e);
            }
        };
        let mut elsewhere = false;
        for (key, entry) in made {
            match subs.get(&(key.rule, key.target)) {
                Some(sub) => self.hand_over(sub, entry).await,
                None => elsewhere = true,
            }
        }
        if elsewhere {
            self.written_for_others();
        }
        Ok(orphans.into_iter().map(|dl| dl.id).collect())
    }

    /// Gives a delivery already in the ledger to its subscription's worker. If the worker
    /// has stopped meanwhile, the entry waits in the ledger for the next one.
    async fn hand_over(&self, sub: &Sub, entry: Entry) {
        match self.event_of(&entry).await {
            Some(event) => {
                sub.resend(event, entry).await;
            }
            None => sub.handed(1),
        }
    }

    /// Whether (rule, target) is being delivered now (here, or by another node): a dead
    /// letter of it can be redriven.
    pub fn delivers_to(&self, rule: &str, target: &str) -> bool {
        guard(&self.delivered).contains(&(rule.to_owned(), target.to_owned()))
    }

    /// Entries were written for subscriptions another node delivers: it is told.
    fn written_for_others(&self) {
        if let Some(o) = &self.ports.ownership {
            o.written_for_others(&self.bus);
        }
    }

    /// Another node wrote entries for this bus's subscriptions: each worker here reads
    /// those it does not hold.
    pub fn adopt(&self) {
        for sub in self.subs().values() {
            sub.adopt();
        }
    }

    /// One step of a replay: the matched events (each with the rules it is replayed to)
    /// become entries of those rules' subscriptions, written with the replay's progress in
    /// one transaction, then handed to the workers. Returns how many deliveries it made.
    pub async fn replay_step(
        &self,
        replay_id: &str,
        events: Vec<(Arc<Event>, Vec<String>)>,
        record: &ReplayRecord,
    ) -> Result<u64, sqlx::Error> {
        let subs = self.subs().clone();
        let mut delivered: Vec<(String, String)> = guard(&self.delivered).iter().cloned().collect();
        delivered.sort();
        let mut entries = Vec::new();
        // The workers here of each entry (`None`: another node delivers it).
        let mut to: Vec<Option<Arc<Sub>>> = Vec::new();
        for (event, rules) in &events {
            for (rule, target) in delivered.iter().filter(|(r, _)| rules.contains(r)) {
                let offset = event.record.offset;
                to.push(subs.get(&(rule.clone(), target.clone())).cloned());
                entries.push((
                    SubKey::new(rule, target),
                    Entry {
                        delivery_id: format!("{replay_id}:{offset}:{rule}:{target}"),
                        offset,
                        origin: Origin::Replay(replay_id.to_owned()),
                        event: Some(String::from_utf8_lossy(&event.record.payload).into_owned()),
                        attempts: 0,
                        next_attempt_ms: None,
                        last_error: None,
                        generation: 0,
                    },
                ));
            }
        }
        for sub in to.iter().flatten() {
            sub.handing(1);
        }
        if let Err(e) = self
            .ports
            .ledger
            .replay_step(&self.bus, &entries, record)
            .await
        {
            for sub in to.iter().flatten() {
                sub.handed(1);
            }
            return Err(e);
        }
        let made = entries.len() as u64;
        let mut elsewhere = false;
        for (sub, (_, entry)) in to.iter().zip(entries) {
            match sub {
                Some(sub) => self.hand_over(sub, entry).await,
                None => elsewhere = true,
            }
        }
        if elsewhere {
            self.written_for_others();
        }
        Ok(made)
    }

    fn subs_by_rule(&self) -> HashMap<String, Vec<Arc<Sub>>> {
        let mut by_rule: HashMap<String, Vec<Arc<Sub>>> = HashMap::new();
        for sub in self.subs().values() {
            by_rule
                .entry(sub.spec.rule.clone())
                .or_default()
                .push(sub.clone());
        }
        by_rule
    }

    /// For a subscription catching up: attach if it has reached the scanner.
    async fn try_attach(&self, sub: &Sub, at: u64) -> bool {
        let scan = self.scan.lock().await;
        if at >= scan.next {
            sub.attach(at, scan.next);
            true
        } else {
            false
        }
    }
}
