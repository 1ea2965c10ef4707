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
//! Each subscription's cursor (every offset below it is resolved) is saved to the metadata
//! store every 100 ms; after a crash, delivery resumes from it. Deliveries completed in the
//! last interval before a crash may be made again: at least once, not exactly once.

mod bus_target;
pub mod journal;
pub mod ports;
pub mod replay;
mod retry_queue;
mod subscription;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use switchyard_event_store::{LogStore, Record};
use tokio::sync::Notify;

use crate::ruleset::RuleSet;
pub use journal::Journal;
pub use ports::{Ports, Publisher};
pub use subscription::SubSpec;
use subscription::{Resend, Sub};

/// Resolves once the flag is set (the guard `wait_for` returns is not held across awaits).
pub(crate) async fn until_set(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await.map(|_| ());
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

/// The subscriptions a rule set asks for.
pub struct SubSpecs(Vec<SubSpec>);

pub struct BusDispatch {
    bus: String,
    ports: Ports,
    log: Arc<dyn LogStore>,
    pub journal: Arc<Journal>,
    notify: Notify,
    /// The scanner's position: the next offset it will offer. Held while offering, so a
    /// catching-up subscription can attach at exactly this point.
    scan: tokio::sync::Mutex<u64>,
    subs: Mutex<HashMap<(String, String), Arc<Sub>>>,
    stopped: tokio::sync::watch::Sender<bool>,
    pub replays: replay::Replays,
    /// Set while a redrive of every dead letter runs in the background.
    pub redriving_all: std::sync::atomic::AtomicBool,
}

impl BusDispatch {
    pub fn new(
        bus: String,
        log: Arc<dyn LogStore>,
        journal: Journal,
        ports: Ports,
    ) -> Arc<BusDispatch> {
        let next = log.bounds().next;
        Arc::new(BusDispatch {
            bus,
            ports,
            log,
            journal: Arc::new(journal),
            notify: Notify::new(),
            scan: tokio::sync::Mutex::new(next),
            subs: Mutex::new(HashMap::new()),
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
        SubSpecs(subscription::specs(&self.ports, rules))
    }

    /// Loads saved cursors, starts a worker per subscription and the scanner.
    pub async fn start(self: &Arc<Self>, specs: SubSpecs) -> anyhow::Result<()> {
        let rules = specs.0;
        let saved: HashMap<(String, String), u64> = self
            .ports
            .cursors
            .load(&self.bus)
            .await?
            .into_iter()
            .map(|(r, t, o)| ((r, t), o))
            .collect();
        let next = self.log.bounds().next;
        let start = rules
            .iter()
            .map(|s| saved.get(&s.key()).copied().unwrap_or(next))
            .min()
            .unwrap_or(next);
        *self.scan.lock().await = start;
        for spec in rules {
            let from = saved.get(&spec.key()).copied().unwrap_or(next);
            self.add_sub(spec, from).await;
        }
        tokio::spawn(self.clone().scanner());
        tokio::spawn(self.clone().cursor_flusher());
        Ok(())
    }

    async fn add_sub(self: &Arc<Self>, spec: SubSpec, from: u64) {
        let scan = self.scan.lock().await;
        let (sub, inbox) = Sub::new(spec, from, from >= *scan);
        self.subs().insert(sub.key(), sub.clone());
        drop(scan);
        tokio::spawn(worker::run(self.clone(), sub, inbox));
    }

    /// Brings subscriptions in line with the rule set after a rule change: new (rule,
    /// target) pairs start at the log's end, removed ones stop, changed ones restart from
    /// where they were.
    pub async fn sync(self: &Arc<Self>, wanted: SubSpecs) {
        let wanted = wanted.0;
        let next = self.log.bounds().next;
        let current: Vec<Arc<Sub>> = self.subs().values().cloned().collect();
        for sub in &current {
            let still = wanted.iter().find(|w| w.key() == sub.key());
            if still.is_none_or(|w| w.fingerprint != sub.spec.fingerprint) {
                sub.stop();
                self.subs().remove(&sub.key());
            }
        }
        for spec in wanted {
            if self.subs().contains_key(&spec.key()) {
                continue;
            }
            let from = match current.iter().find(|s| s.key() == spec.key()) {
                Some(old) => old.cursor(),
                None => {
                    // A new (rule, target) starts at the log's end. Save that before the
                    // rule change is acknowledged, or a crash would lose where it began.
                    let row = [(spec.rule.clone(), spec.target_id.clone(), next)];
                    if let Err(e) = self.ports.cursors.save(&self.bus, &row).await {
                        tracing::error!(bus = %self.bus, error = %e, "saving a new delivery cursor failed");
                    }
                    next
                }
            };
            self.add_sub(spec, from).await;
        }
        self.wake();
    }

    pub fn stop(&self) {
        self.stopped.send_replace(true);
        for sub in self.subs().values() {
            sub.stop();
        }
        self.notify.notify_one();
    }

    /// Stops, waits for in-flight deliveries (at most `grace`), and saves the cursors.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop();
        let subs: Vec<Arc<Sub>> = self.subs().values().cloned().collect();
        let all = futures_join_all(subs.iter().map(|s| s.finished()));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(bus = %self.bus, "deliveries still in flight at shutdown; they will be retried after restart");
        }
        self.flush_cursors().await;
    }

    /// Saves every subscription's cursor now.
    pub async fn flush_cursors(&self) {
        let cursors: Vec<(String, String, u64)> = self
            .subs()
            .values()
            .map(|s| (s.spec.rule.clone(), s.spec.target_id.clone(), s.cursor()))
            .collect();
        if let Err(e) = self.ports.cursors.save(&self.bus, &cursors).await {
            tracing::error!(bus = %self.bus, error = %e, "saving delivery cursors failed");
        }
    }

    /// Events not yet resolved for each subscription: `(rule, target, count)`.
    pub fn backlog(&self) -> Vec<(String, String, u64)> {
        let next = self.log.bounds().next;
        self.subs()
            .values()
            .map(|s| {
                (
                    s.spec.rule.clone(),
                    s.spec.target_id.clone(),
                    next.saturating_sub(s.cursor()),
                )
            })
            .collect()
    }

    async fn cursor_flusher(self: Arc<Self>) {
        let mut stopped = self.stopped.subscribe();
        let mut last: HashMap<(String, String), u64> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = until_set(&mut stopped) => return,
            }
            let changed: Vec<(String, String, u64)> = self
                .subs()
                .values()
                .filter(|s| last.get(&s.key()) != Some(&s.cursor()))
                .map(|s| (s.spec.rule.clone(), s.spec.target_id.clone(), s.cursor()))
                .collect();
            if changed.is_empty() {
                continue;
            }
            match self.ports.cursors.save(&self.bus, &changed).await {
                Ok(()) => {
                    for (r, t, o) in changed {
                        last.insert((r, t), o);
                    }
                }
                Err(e) => {
                    tracing::error!(bus = %self.bus, error = %e, "saving delivery cursors failed")
                }
            }
        }
    }

    /// Reads the log once, offering each event to the subscriptions of the rules it matched.
    async fn scanner(self: Arc<Self>) {
        const CHUNK: usize = 256;
        let mut stopped = self.stopped.subscribe();
        loop {
            if *stopped.borrow() {
                return;
            }
            let from = *self.scan.lock().await;
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
            let mut pos = *scan;
            for record in records {
                pos = record.offset + 1;
                let targets: Vec<&Arc<Sub>> = record
                    .matched_rules
                    .iter()
                    .filter_map(|r| by_rule.get(r.as_str()))
                    .flatten()
                    .filter(|s| s.wants(record.offset))
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let value = serde_json::from_slice(&record.payload).unwrap_or(Value::Null);
                let offset = record.offset;
                let event = Arc::new(Event { record, value });
                for sub in targets {
                    sub.offer(&event, offset);
                }
            }
            *scan = pos;
            for subs in by_rule.values() {
                for sub in subs {
                    sub.scanned_to(pos);
                }
            }
        }
    }

    /// Hands dead letters back to their subscriptions. Returns the ids that had none.
    pub async fn redrive(&self, letters: Vec<crate::meta::DeadLetter>) -> Vec<i64> {
        let mut orphans = Vec::new();
        for dl in letters {
            let sub = self
                .subs()
                .get(&(dl.rule.clone(), dl.target.clone()))
                .cloned();
            let event = Arc::new(Event::from_json(dl.event_offset, dl.event.into_bytes()));
            let sent = match sub {
                Some(sub) => sub.resend(event, Resend::DeadLetter(dl.id)).await,
                None => false,
            };
            if !sent {
                orphans.push(dl.id);
            }
        }
        orphans
    }

    /// Whether (rule, target) is being delivered now: a dead letter of it can be redriven.
    pub fn delivers_to(&self, rule: &str, target: &str) -> bool {
        self.subs()
            .contains_key(&(rule.to_owned(), target.to_owned()))
    }

    /// Sends a replayed event to every target of `rule`; returns how many took it.
    pub async fn replay(&self, rule: &str, event: Arc<Event>, replay_id: &str) -> usize {
        let subs: Vec<Arc<Sub>> = self
            .subs()
            .values()
            .filter(|s| s.spec.rule == rule)
            .cloned()
            .collect();
        let mut sent = 0;
        for sub in subs {
            if sub
                .resend(event.clone(), Resend::Replay(replay_id.to_owned()))
                .await
            {
                sent += 1;
            }
        }
        sent
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
        if at >= *scan {
            sub.attach(*scan);
            true
        } else {
            false
        }
    }
}
