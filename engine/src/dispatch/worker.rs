//! A subscription's worker: a bounded window of deliveries, each tried, retried under the
//! target's policy, and resolved as delivered or dead-lettered; every step journaled, and
//! the state that must survive a crash committed to the ledger once per flush interval.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::Value;
use switchyard_rules::Transform;
use switchyard_targets::{Decision, Delivered, Delivery, DeliveryError};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
// Tokio's clock, not std's: the worker's timing follows a paused clock in tests.
use tokio::time::Instant;

use super::journal::{Stage, TraceStep};
use super::ledger::{Changes, Entry, FLUSH_INTERVAL, Origin, SubState};
use super::retry_queue::RetryQueue;
use super::subscription::{Inbox, Leftovers, Offered, Sub, WINDOW};
use super::{BusDispatch, Event, until_set};
use crate::meta::DeadLetter;
use crate::metrics::DeliveryLabels;
use crate::telemetry;
use prometheus_client::metrics::counter::Counter;
use switchyard_core::time::now_ms;

/// A delivery in the window: the event's offset, then the delivery's id (a replay or a
/// redrive of an event can be in the window beside its first delivery).
type Key = (u64, Arc<str>);

struct Task {
    event: Arc<Event>,
    origin: Origin,
    generation: u32,
    attempts: u32,
    /// The transformed payload, computed once.
    payload: Option<Value>,
    partition_key: Option<String>,
    durable: Durable,
    /// When a retry is scheduled: when (Unix ms) and why the last attempt failed.
    next_attempt_ms: Option<i64>,
    last_error: Option<String>,
}

/// Whether the ledger holds a delivery's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// Not yet: taken since the last commit (it is written if it lasts the next interval;
    /// until then the cursor stays below it).
    Young,
    /// Not yet, and it has lasted an interval: written at the next commit.
    Due,
    /// Yes, as it is now.
    Clean,
    /// Yes, but changed since: rewritten at the next commit.
    Dirty,
}

impl Task {
    fn entry(&self, id: &str) -> Entry {
        Entry {
            delivery_id: id.to_owned(),
            offset: self.event.record.offset,
            origin: self.origin.clone(),
            event: (self.origin != Origin::Log)
                .then(|| String::from_utf8_lossy(&self.event.record.payload).into_owned()),
            attempts: self.attempts,
            next_attempt_ms: self.next_attempt_ms,
            last_error: self.last_error.clone(),
            generation: self.generation,
        }
    }

    /// The ledger holds an entry for this delivery that its resolution must remove.
    fn in_ledger(&self) -> bool {
        matches!(self.durable, Durable::Clean | Durable::Dirty)
    }
}

/// How one attempt ended.
struct Outcome {
    key: Key,
    result: Result<Delivered, DeliveryError>,
    latency: Duration,
    /// The payload a `function` transform produced during this attempt, kept for retries.
    transformed: Option<Value>,
}

pub async fn run(dispatch: Arc<BusDispatch>, sub: Arc<Sub>, inbox: Inbox) {
    let Inbox {
        events: mut rx,
        mut resends,
    } = inbox;
    let counter = |outcome: &str| {
        dispatch
            .ports
            .metrics
            .deliveries
            .get_or_create(&DeliveryLabels {
                bus: dispatch.bus.clone(),
                rule: sub.spec.rule.clone(),
                target: sub.spec.target_id.clone(),
                outcome: outcome.to_owned(),
            })
            .clone()
    };
    let counters = Counters {
        delivered: counter("delivered"),
        failed: counter("failed"),
        dead_lettered: counter("dead_lettered"),
    };
    let mut stopped = sub.stopped();
    let Some((state, ordinal)) = load(&dispatch, &sub, &mut stopped).await else {
        // Stopped before it held anything: the ledger has it all.
        sub.mark_finished();
        return;
    };
    let mut w = Worker {
        counters,
        dispatch,
        window: BTreeMap::new(),
        ready: VecDeque::new(),
        retries: RetryQueue::default(),
        deferred: Vec::new(),
        busy_keys: HashSet::new(),
        inflight: JoinSet::new(),
        next_allowed: Instant::now(),
        next_flush: Instant::now() + FLUSH_INTERVAL,
        admitted: state.cursor,
        taken: ordinal,
        ahead: HashSet::new(),
        committed: state.cursor,
        resolved: Vec::new(),
        dead_letters: Vec::new(),
        sub,
    };
    w.restore(state.entries, state.cursor).await;
    loop {
        w.admit_deferred().await;
        w.note_admitted(&rx);
        w.publish_progress();
        w.start_ready();
        let catching_up = !w.sub.is_attached() && rx.is_empty() && w.window.len() < WINDOW;
        let next_retry = w.retries.next_due();
        let rate_wait =
            (!w.ready.is_empty() && w.next_allowed > Instant::now()).then_some(w.next_allowed);
        tokio::select! {
            biased;
            _ = until_set(&mut stopped) => break,
            Some(done) = w.inflight.join_next(), if !w.inflight.is_empty() => {
                if let Ok(outcome) = done {
                    w.resolve(outcome).await;
                }
            }
            _ = tokio::time::sleep_until(w.next_flush) => w.flush(false).await,
            Some((event, ordinal)) = rx.recv(), if w.window.len() < WINDOW => {
                w.admit(event, None).await;
                w.taken = w.taken.max(ordinal + 1);
            }
            // Resends wait in the channel while the deferred ones are many: bounded both.
            Some((event, entry)) = resends.recv(), if w.window.len() < WINDOW && w.deferred.len() < WINDOW => w.admit(event, Some(entry)).await,
            _ = sleep_until(next_retry), if next_retry.is_some() => w.fire_retries(),
            _ = sleep_until(rate_wait), if rate_wait.is_some() => {}
            () = w.sub.adopting(), if w.deferred.len() < WINDOW => w.adopt().await,
            _ = std::future::ready(()), if catching_up => w.catch_up().await,
        }
    }
    // Drain: let deliveries in flight finish (targets bound them with their timeouts) and
    // record their outcomes; then hand everything unresolved over, as ledger entries (a
    // restart, or the subscription that takes over, resumes them exactly) or, when the
    // subscription was deleted, as leftovers to drop.
    while let Some(done) = w.inflight.join_next().await {
        if let Ok(outcome) = done {
            w.resolve(outcome).await;
        }
    }
    w.note_admitted(&rx);
    w.finish(rx, resends).await;
}

/// The subscription's ledger state, once its predecessor has finished, and the ordinal of
/// the first matching event at its cursor; `None` if it was stopped first.
async fn load(
    dispatch: &BusDispatch,
    sub: &Sub,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<(SubState, i64)> {
    if let Some(before) = sub.predecessor() {
        tokio::select! {
            _ = before.finished() => {}
            _ = until_set(stopped) => return None,
        }
        sub.took_over();
    }
    let key = sub.ledger_key();
    loop {
        let next = dispatch.log.bounds().next;
        let opened = async {
            let state = dispatch
                .ports
                .ledger
                .open(&dispatch.bus, &key, next)
                .await?;
            let ordinal = dispatch.ordinal_at(&sub.spec.rule, state.cursor).await?;
            anyhow::Ok((state, ordinal))
        };
        let opened = tokio::select! {
            opened = opened => opened,
            _ = until_set(stopped) => return None,
        };
        match opened {
            Ok((state, ordinal)) => {
                sub.loaded(state.cursor, ordinal);
                return Some((state, ordinal));
            }
            Err(e) => {
                tracing::error!(bus = %dispatch.bus, rule = %sub.spec.rule, target = %sub.spec.target_id, error = %e, "loading delivery state failed; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = until_set(stopped) => return None,
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// This subscription's delivery counters, looked up once.
struct Counters {
    delivered: Counter,
    failed: Counter,
    dead_lettered: Counter,
}

struct Worker {
    counters: Counters,
    dispatch: Arc<BusDispatch>,
    sub: Arc<Sub>,
    /// Every unresolved delivery this worker holds.
    window: BTreeMap<Key, Task>,
    /// Deliveries due for an attempt, oldest first.
    ready: VecDeque<Key>,
    retries: RetryQueue<Key>,
    /// Resent deliveries waiting for the same delivery, still in the window, to resolve.
    deferred: Vec<(Arc<Event>, Entry)>,
    /// Partition keys with a delivery in flight or waiting to retry.
    busy_keys: HashSet<String>,
    inflight: JoinSet<Outcome>,
    next_allowed: Instant,
    next_flush: Instant,
    /// Every log offset below this was taken into the window, resolved, or not matched.
    admitted: u64,
    /// The ordinal of the first event matching the rule not taken yet (see
    /// [`super::Counts`]).
    taken: i64,
    /// Offsets of restored log deliveries at or past the cursor that reading the log has not
    /// passed yet: reading them again must not take them again (even once resolved), and
    /// the backlog counts them among the matching events not taken.
    ahead: HashSet<u64>,
    /// The cursor as last committed.
    committed: u64,
    /// Since the last commit: ids of ledger entries resolved, and dead letters written.
    resolved: Vec<String>,
    dead_letters: Vec<DeadLetter>,
}

impl Worker {
    /// Moves the admitted mark: what the scanner has offered (once the inbox is empty), or
    /// how far catching up has read.
    fn note_admitted(&mut self, rx: &mpsc::Receiver<Offered>) {
        let mark = if self.sub.is_attached() {
            // Read the scanner's mark before looking at the channel: whatever it offered
            // before setting the mark is either in the channel or already taken.
            let scanned = self.sub.scanned();
            if !rx.is_empty() {
                return;
            }
            scanned
        } else {
            if !rx.is_empty() {
                return;
            }
            self.sub.resume_from()
        };
        self.admitted = self.admitted.max(mark);
    }

    /// The delivery id of this subscription's delivery of the event at `offset` as the
    /// log holds it: new for every bus made (the bus's incarnation) and every offset.
    fn log_delivery_id(&self, offset: u64) -> Arc<str> {
        Arc::from(format!(
            "{}:{}:{}:{}",
            self.dispatch.incarnation, offset, self.sub.spec.rule, self.sub.spec.target_id
        ))
    }

    /// What the backlog gauge reads: deliveries held, and where taking matching events is.
    fn publish_progress(&self) {
        // Restored deliveries not passed yet are among the matching events not taken.
        let held = (self.window.len() + self.deferred.len()) as i64 - self.ahead.len() as i64;
        self.sub.publish_progress(held, self.taken);
    }

    /// Takes back the entries the ledger holds (after a restart, or from the subscription
    /// this one took over from), with their attempt counts and retry times.
    async fn restore(&mut self, entries: Vec<Entry>, cursor: u64) {
        for entry in entries {
            let event = match self.dispatch.event_of(&entry).await {
                Some(event) => event,
                None => {
                    // The log no longer holds it (retention removed it meanwhile).
                    tracing::warn!(bus = %self.dispatch.bus, rule = %self.sub.spec.rule, target = %self.sub.spec.target_id, offset = entry.offset, "a pending delivery's event is gone from the log; dropped");
                    self.dispatch
                        .count_dropped(&self.sub.spec.rule, &self.sub.spec.target_id, 1);
                    self.resolved.push(entry.delivery_id);
                    continue;
                }
            };
            let key: Key = (entry.offset, Arc::from(entry.delivery_id.as_str()));
            let partition_key = self.partition_key(&event);
            let task = Task {
                event,
                origin: entry.origin,
                generation: entry.generation,
                attempts: entry.attempts,
                payload: None,
                partition_key,
                durable: Durable::Clean,
                next_attempt_ms: entry.next_attempt_ms,
                last_error: entry.last_error,
            };
            match task.next_attempt_ms {
                Some(at) => {
                    let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                    if let Some(k) = &task.partition_key {
                        self.busy_keys.insert(k.clone());
                    }
                    self.retries
                        .schedule(key.clone(), Duration::from_millis(wait));
                }
                None => self.ready.push_back(key.clone()),
            }
            if task.origin == Origin::Log && task.event.record.offset >= cursor {
                self.ahead.insert(task.event.record.offset);
            }
            self.window.insert(key, task);
        }
    }

    fn partition_key(&self, event: &Event) -> Option<String> {
        self.sub
            .spec
            .partition
            .then(|| {
                event
                    .value
                    .get("partitionkey")
                    .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))
            })
            .flatten()
    }

    /// Commits to the ledger what must outlive a crash: entries that lasted an interval or
    /// changed, resolutions, dead letters, and the cursor — below every delivery not yet
    /// written. `all` writes every delivery held (the worker is stopping).
    async fn flush(&mut self, all: bool) {
        self.next_flush = Instant::now() + FLUSH_INTERVAL;
        let mut changes = Changes {
            cursor: None,
            put: Vec::new(),
            resolved: std::mem::take(&mut self.resolved),
            dead_letters: std::mem::take(&mut self.dead_letters),
            fence: self.dispatch.fence(),
        };
        let mut cursor = self.admitted;
        for ((offset, id), task) in &mut self.window {
            match task.durable {
                Durable::Young if !all => {
                    task.durable = Durable::Due;
                    if task.origin == Origin::Log {
                        cursor = cursor.min(*offset);
                    }
                }
                Durable::Young | Durable::Due | Durable::Dirty => {
                    changes.put.push(task.entry(id));
                    task.durable = Durable::Clean;
                }
                Durable::Clean => {}
            }
        }
        let cursor = cursor.max(self.committed);
        if cursor != self.committed {
            changes.cursor = Some(cursor);
        }
        if changes.is_empty() {
            return;
        }
        let Some(_turn) = self.sub.ledger_turn().await else {
            return;
        };
        let key = self.sub.ledger_key();
        match self
            .dispatch
            .ports
            .ledger
            .commit(&self.dispatch.bus, &key, &changes)
            .await
        {
            Ok(()) => self.committed = cursor,
            Err(e) if super::ledger::is_fenced(&e) => {
                // Another node delivers this subscription now: write nothing more, stop.
                tracing::warn!(bus = %self.dispatch.bus, rule = %key.rule, target = %key.target, "the subscription's lease was lost; its worker stops");
                self.sub.stop();
            }
            Err(e) => {
                tracing::error!(bus = %self.dispatch.bus, rule = %key.rule, target = %key.target, error = %e, "committing delivery state failed; trying again");
                // Nothing was written: keep all of it for the next commit.
                self.resolved.extend(changes.resolved);
                self.dead_letters.extend(changes.dead_letters);
                for entry in changes.put {
                    let k: Key = (entry.offset, Arc::from(entry.delivery_id.as_str()));
                    if let Some(task) = self.window.get_mut(&k) {
                        task.durable = Durable::Dirty;
                    }
                }
            }
        }
    }

    /// The worker stops: its last commit, or, when its subscription was deleted, what it
    /// held as leftovers to drop. Marked finished under the ledger turn, so a deletion sees
    /// one or the other.
    async fn finish(
        mut self,
        mut rx: mpsc::Receiver<Offered>,
        mut resends: mpsc::Receiver<(Arc<Event>, Entry)>,
    ) {
        if self.sub.forgotten().is_none() {
            self.flush(true).await;
        }
        let turn = self.sub.ledger_turn().await;
        if turn.is_none() {
            let mut held: Vec<(Arc<Event>, Option<String>)> = Vec::new();
            for task in std::mem::take(&mut self.window).into_values() {
                held.push((task.event, task.origin.replay().map(str::to_owned)));
            }
            while let Ok((event, _)) = rx.try_recv() {
                held.push((event, None));
            }
            for (event, entry) in std::mem::take(&mut self.deferred) {
                held.push((event, entry.origin.replay().map(str::to_owned)));
            }
            while let Ok((event, entry)) = resends.try_recv() {
                held.push((event, entry.origin.replay().map(str::to_owned)));
            }
            // What was never taken: everything the scanner had not offered, or catching up
            // had not read.
            let scan_from = if self.sub.is_attached() {
                self.sub.scanned()
            } else {
                self.sub.resume_from()
            };
            self.sub.set_leftovers(Leftovers {
                held,
                scan_from: scan_from.max(self.admitted),
            });
        }
        // Stopped, not deleted: what it holds stays its backlog (paused, or until the
        // subscription taking over has loaded).
        self.publish_progress();
        self.sub.mark_finished();
        drop(turn);
    }

    /// Takes a delivery into the window: an event offered from the log, or (with its entry)
    /// one already in the ledger.
    async fn admit(&mut self, event: Arc<Event>, resent: Option<Entry>) {
        let offset = event.record.offset;
        let (key, origin, generation, attempts, durable) = match resent {
            None => {
                if offset < self.sub.start() || self.ahead.remove(&offset) {
                    // Resolved before the cursor, or restored from the ledger already.
                    return;
                }
                let key = (offset, self.log_delivery_id(offset));
                (key, Origin::Log, 0, 0, Durable::Young)
            }
            Some(entry) => {
                let key: Key = (offset, Arc::from(entry.delivery_id.as_str()));
                if self.window.contains_key(&key) {
                    // The same delivery is still on its way (a redrive raced its first
                    // try): take it once that one is resolved.
                    self.deferred.push((event, entry));
                    return;
                }
                let attempts = entry.attempts;
                (
                    key,
                    entry.origin,
                    entry.generation,
                    attempts,
                    Durable::Clean,
                )
            }
        };
        let partition_key = self.partition_key(&event);
        let mut task = Task {
            event,
            origin,
            generation,
            attempts,
            payload: None,
            partition_key,
            durable,
            next_attempt_ms: None,
            last_error: None,
        };
        match &self.sub.spec.transform {
            // Functions run with each attempt, since their failures are retried.
            Some(t) if t.function_name().is_some() => {}
            None => {}
            Some(t) => match apply_guarded(t, &task.event.value) {
                Ok(p) => {
                    task.payload = Some(p);
                    self.journal(&task, TraceStep::new(offset, Stage::Transformed))
                        .await;
                }
                Err(e) => {
                    self.dead_letter(&key, task, format!("transform failed: {e}"))
                        .await;
                    return;
                }
            },
        }
        self.window.insert(key.clone(), task);
        self.ready.push_back(key);
    }

    /// Starts attempts while concurrency, partition order and the rate limit allow.
    fn start_ready(&mut self) {
        let mut waiting = VecDeque::new();
        while self.inflight.len() < self.sub.spec.concurrency {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(task) = self.window.get(&key) else {
                continue;
            };
            if let Some(pk) = task.partition_key.clone() {
                // One at a time per key, oldest first: a younger one waits for the older.
                let older_pending = self
                    .window
                    .range(..key.clone())
                    .any(|(_, t)| t.partition_key.as_ref() == Some(&pk));
                if older_pending || self.busy_keys.contains(&pk) {
                    waiting.push_back(key);
                    continue;
                }
            }
            if let Some(rate) = self.sub.spec.rate_limit_per_second {
                let now = Instant::now();
                if self.next_allowed > now {
                    waiting.push_back(key);
                    break;
                }
                self.next_allowed =
                    now.max(self.next_allowed) + Duration::from_secs_f64(1.0 / f64::from(rate));
            }
            let Some(task) = self.window.get_mut(&key) else {
                continue;
            };
            task.attempts += 1;
            task.next_attempt_ms = None;
            if let Some(key) = &task.partition_key {
                self.busy_keys.insert(key.clone());
            }
            let target = self.sub.spec.target.clone();
            let event = task.event.clone();
            let payload = task.payload.clone();
            let attempt = task.attempts;
            let delivery_id = key.1.clone();
            // A `function` transform that has not produced its payload yet runs first.
            let function = self
                .sub
                .spec
                .transform
                .as_ref()
                .and_then(|t| t.function_name())
                .filter(|_| payload.is_none())
                .map(|name| (name.to_owned(), self.dispatch.ports.functions.clone()));
            let (outcome_key, panic_key) = (key.clone(), key.clone());
            let spans = self.dispatch.ports.telemetry.clone();
            // Only built when spans are exported: this is the delivery hot path.
            let names = spans.exporting().then(|| telemetry::AttemptNames {
                bus: self.dispatch.bus.clone(),
                rule: self.sub.spec.rule.clone(),
                target: self.sub.spec.target_id.clone(),
                event: event.record.id.clone(),
            });
            let attempt = async move {
                let started = Instant::now();
                let event_tp = event.value.get("traceparent").and_then(Value::as_str);
                let span =
                    names.and_then(|n| telemetry::start_attempt(&spans, event_tp, n, attempt));
                let traceparent = span
                    .as_ref()
                    .map(telemetry::traceparent_of)
                    .or_else(|| event_tp.map(str::to_owned));
                let attempt_once = async {
                    fail::fail_point!("delivery-attempt");
                    let (payload, transformed) = match function {
                        None => (payload, false),
                        Some((name, functions)) => {
                            match functions.output(&name, event.record.payload.to_vec()).await {
                                Ok(p) => (Some(p), true),
                                Err(e) => {
                                    let e = DeliveryError::retryable(format!("transform: {e}"));
                                    return (Err(e), None);
                                }
                            }
                        }
                    };
                    let result = target
                        .deliver(Delivery {
                            event_json: &event.record.payload,
                            event: &event.value,
                            payload: payload.as_ref(),
                            delivery_id: &delivery_id,
                            attempt,
                            traceparent: traceparent.as_deref(),
                        })
                        .await;
                    (result, payload.filter(|_| transformed))
                };
                // A panic anywhere in the attempt is a failed attempt like any other: it is
                // retried or dead-lettered under the policy, and the window slot and the
                // partition key are released when it resolves.
                let (result, transformed) =
                    match AssertUnwindSafe(attempt_once).catch_unwind().await {
                        Ok(done) => done,
                        Err(panic) => (Err(internal_error(panic.as_ref())), None),
                    };
                match &result {
                    Ok(d) => telemetry::end_attempt(span, d.status, None),
                    Err(e) => telemetry::end_attempt(span, e.status, Some(&e.message)),
                }
                Outcome {
                    key: outcome_key,
                    result,
                    latency: started.elapsed(),
                    transformed,
                }
            };
            self.inflight.spawn(async move {
                // Outside the attempt (telemetry, timing) too: the key must come back.
                match AssertUnwindSafe(attempt).catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(panic) => Outcome {
                        key: panic_key,
                        result: Err(internal_error(panic.as_ref())),
                        latency: Duration::ZERO,
                        transformed: None,
                    },
                }
            });
        }
        while let Some(o) = waiting.pop_back() {
            self.ready.push_front(o);
        }
    }

    async fn resolve(&mut self, outcome: Outcome) {
        let Outcome {
            key,
            result,
            latency,
            transformed,
        } = outcome;
        let offset = key.0;
        let Some(task) = self.window.get_mut(&key) else {
            return;
        };
        // A `function` transform that produced the payload in this attempt: journaled once.
        let fresh = transformed.is_some();
        if let Some(payload) = transformed {
            task.payload = Some(payload);
        }
        let Some(task) = self.window.get(&key) else {
            return;
        };
        if fresh {
            self.journal(task, TraceStep::new(offset, Stage::Transformed))
                .await;
        }
        let attempts = task.attempts;
        if let Some(pk) = &task.partition_key {
            self.busy_keys.remove(pk);
        }
        let latency_ms = latency.as_secs_f64() * 1000.0;
        self.dispatch
            .ports
            .metrics
            .delivery_latency
            .observe(latency.as_secs_f64());
        let mut step = TraceStep::new(offset, Stage::Attempt);
        step.attempt = Some(attempts);
        step.latency_ms = Some((latency_ms * 1000.0).round() / 1000.0);
        match result {
            Ok(delivered) => {
                step.status = delivered.status;
                self.journal(task, step).await;
                let mut done = TraceStep::new(offset, Stage::Delivered);
                done.attempt = Some(attempts);
                done.status = delivered.status;
                done.output = delivered.output;
                self.journal(task, done).await;
                self.counters.delivered.inc();
                if let Some(task) = self.window.remove(&key)
                    && task.in_ledger()
                {
                    self.resolved.push(key.1.to_string());
                }
            }
            Err(error) => {
                step.status = error.status;
                step.error = Some(error.message.clone());
                self.journal(task, step).await;
                let age_ms = now_ms()
                    .saturating_sub(task.event.record.received_at_ms)
                    .max(0);
                let age = Duration::from_millis(age_ms as u64);
                match self
                    .sub
                    .spec
                    .policy
                    .decide(attempts, age, &error, fastrand::f64())
                {
                    Decision::RetryAfter(delay) => {
                        self.counters.failed.inc();
                        let mut e = TraceStep::new(offset, Stage::RetryScheduled);
                        e.attempt = Some(attempts);
                        e.retry_in_ms = Some(delay.as_millis() as u64);
                        self.journal(task, e).await;
                        if let Some(task) = self.window.get_mut(&key) {
                            if let Some(pk) = &task.partition_key {
                                self.busy_keys.insert(pk.clone());
                            }
                            let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                            task.next_attempt_ms = Some(now_ms().saturating_add(delay_ms));
                            task.last_error = Some(error.message);
                            // A scheduled retry is written at the next commit, however young.
                            task.durable = match task.durable {
                                Durable::Clean | Durable::Dirty => Durable::Dirty,
                                Durable::Young | Durable::Due => Durable::Due,
                            };
                        }
                        self.retries.schedule(key, delay);
                    }
                    Decision::GiveUp(reason) => {
                        if let Some(task) = self.window.remove(&key) {
                            self.dead_letter(&key, task, reason).await;
                        }
                    }
                }
            }
        }
    }

    async fn admit_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(e, entry)| {
                !self
                    .window
                    .contains_key(&(e.record.offset, Arc::from(entry.delivery_id.as_str())))
            });
        self.deferred = waiting;
        for (event, entry) in ready {
            self.admit(event, Some(entry)).await;
        }
    }

    fn fire_retries(&mut self) {
        // Retries go first: they are the oldest work.
        for key in self.retries.take_due().into_iter().rev() {
            if let Some(pk) = self.window.get(&key).and_then(|t| t.partition_key.clone()) {
                self.busy_keys.remove(&pk);
            }
            self.ready.push_front(key);
        }
    }

    /// Detached: read the log directly from where the scanner stopped offering to us.
    async fn catch_up(&mut self) {
        let from = self.sub.resume_from();
        let mut ordinal = self.sub.resume_ordinal();
        let records = match self.dispatch.log.read(from, WINDOW).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "catch-up read failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        if records.is_empty() {
            self.dispatch.try_attach(&self.sub, from).await;
            return;
        }
        let mut next = from;
        for record in records {
            if self.window.len() >= WINDOW {
                break;
            }
            next = record.offset + 1;
            if record
                .matched_rules
                .iter()
                .any(|r| *r == self.sub.spec.rule)
            {
                let value = serde_json::from_slice(&record.payload).unwrap_or(Value::Null);
                self.admit(Arc::new(Event { record, value }), None).await;
                ordinal += 1;
                self.taken = self.taken.max(ordinal);
            }
        }
        self.sub.resume_at(next, ordinal);
        self.dispatch.try_attach(&self.sub, next).await;
    }

    /// Takes the entries another node wrote to the ledger for this subscription (a redrive
    /// or a replay it ran): after a commit — so every entry this worker resolved is gone
    /// from the ledger — every entry not from the log that the worker does not hold.
    async fn adopt(&mut self) {
        self.flush(false).await;
        let state = {
            let Some(_turn) = self.sub.ledger_turn().await else {
                return;
            };
            let next = self.dispatch.log.bounds().next;
            let key = self.sub.ledger_key();
            match self
                .dispatch
                .ports
                .ledger
                .open(&self.dispatch.bus, &key, next)
                .await
            {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(bus = %self.dispatch.bus, rule = %key.rule, target = %key.target, error = %e, "reading entries written by another node failed; they wait for the next one");
                    return;
                }
            }
        };
        // At most a window's worth at a time (the deferred ones are held in memory); the rest
        // at the next turn.
        let room = WINDOW.saturating_sub(self.deferred.len());
        let mut taken = 0;
        for entry in state.entries {
            if taken >= room {
                self.sub.adopt();
                break;
            }
            let key: Key = (entry.offset, Arc::from(entry.delivery_id.as_str()));
            let deferred = self
                .deferred
                .iter()
                .any(|(_, e)| e.delivery_id == entry.delivery_id);
            if entry.origin == Origin::Log || self.window.contains_key(&key) || deferred {
                continue;
            }
            if let Some(event) = self.dispatch.event_of(&entry).await {
                self.deferred.push((event, entry));
                taken += 1;
            }
        }
    }

    /// Gives a delivery up: its dead letter is written with its resolution, at the next
    /// commit; a copy goes to the dead-letter bus, if the target has one, under an id
    /// derived from the delivery (each copy is kept; a repeat after a crash is not).
    async fn dead_letter(&mut self, key: &Key, task: Task, reason: String) {
        let offset = key.0;
        if let Some(pk) = &task.partition_key {
            self.busy_keys.remove(pk);
        }
        self.counters.dead_lettered.inc();
        if task.in_ledger() {
            self.resolved.push(key.1.to_string());
        }
        self.dead_letters.push(DeadLetter {
            id: 0,
            bus: self.dispatch.bus.clone(),
            event_offset: offset,
            event: String::from_utf8_lossy(&task.event.record.payload).into_owned(),
            rule: self.sub.spec.rule.clone(),
            target: self.sub.spec.target_id.clone(),
            attempts: task.attempts,
            last_error: reason.clone(),
            at_ms: now_ms(),
            delivery_id: key.1.to_string(),
            origin: task.origin.as_text(),
            generation: task.generation,
        });
        let mut step = TraceStep::new(offset, Stage::DeadLettered);
        step.attempt = Some(task.attempts);
        step.error = Some(reason.clone());
        self.journal(&task, step).await;
        if let Some(dlq) = &self.sub.spec.dead_letter_bus {
            let copy = dead_letter_copy(
                &task.event.value,
                &format!("{}/dead-letter/{}", key.1, task.generation),
                &reason,
                task.attempts,
                &self.sub.spec.rule,
                &self.sub.spec.target_id,
            );
            if let Err(e) = self.dispatch.ports.publish.publish(dlq, copy).await {
                tracing::warn!(bus = %dlq, error = %e.message, "publishing to the dead-letter bus failed");
            }
        }
    }

    async fn journal(&self, task: &Task, mut step: TraceStep) {
        if step.replay.is_none() {
            step.replay = task.origin.replay().map(str::to_owned);
        }
        step.rule = self.sub.spec.rule.clone();
        step.target = self.sub.spec.target_id.clone();
        step.at_ms = now_ms();
        self.dispatch
            .journal
            .record(&task.event.record.source, &task.event.record.id, step)
            .await;
    }
}

/// A panic, as the failed attempt it becomes: reason `internal`, retryable.
fn internal_error(panic: &(dyn std::any::Any + Send)) -> DeliveryError {
    DeliveryError::retryable(format!("internal: {}", panic_message(panic)))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}

/// Applies a transform; a panic in it is the transform's failure, not the worker's.
fn apply_guarded(t: &Transform, event: &Value) -> Result<Value, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        fail::fail_point!("transform-apply", |_| Err("injected".to_owned()));
        t.apply(event).map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|panic| Err(format!("internal: {}", panic_message(panic.as_ref()))))
}

/// The event as sent to a dead-letter bus: the original under the copy's own `id` (its
/// first id kept as `deadletterof`), plus why it was given up on.
fn dead_letter_copy(
    event: &Value,
    id: &str,
    reason: &str,
    attempts: u32,
    rule: &str,
    target: &str,
) -> Value {
    let mut copy = event.clone();
    if let Some(obj) = copy.as_object_mut() {
        if let Some(first) = obj.insert("id".into(), Value::from(id)) {
            obj.insert("deadletterof".into(), first);
        }
        obj.insert("deadletterreason".into(), Value::from(reason));
        obj.insert("deliveryattempts".into(), Value::from(attempts));
        obj.insert("rulename".into(), Value::from(rule));
        obj.insert("targetid".into(), Value::from(target));
    }
    copy
}
