//! A subscription's worker: a bounded window of deliveries, each tried, retried under the
//! target's policy, and resolved as delivered or dead-lettered; every step journaled.

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
use super::retry_queue::RetryQueue;
use super::subscription::{Inbox, Resend, Sub, WINDOW};
use super::{BusDispatch, Event, until_set};
use crate::meta::DeadLetter;
use crate::metrics::DeliveryLabels;
use crate::telemetry;
use prometheus_client::metrics::counter::Counter;
use switchyard_core::time::now_ms;

struct Task {
    event: Arc<Event>,
    attempts: u32,
    /// The transformed payload, computed once.
    payload: Option<Value>,
    partition_key: Option<String>,
    /// Why the event came outside the scanner's order, if it did.
    resend: Option<Resend>,
}

/// How one attempt ended.
struct Outcome {
    offset: u64,
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
        sub,
    };
    let mut stopped = w.sub.stopped();
    loop {
        w.admit_deferred().await;
        w.publish_cursor(&rx);
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
            Some(event) = rx.recv(), if w.window.len() < WINDOW => w.admit(event, None).await,
            // Resends wait in the channel while the deferred ones are many: bounded both.
            Some((event, why)) = resends.recv(), if w.window.len() < WINDOW && w.deferred.len() < WINDOW => w.admit(event, Some(why)).await,
            _ = sleep_until(next_retry), if next_retry.is_some() => w.fire_retries(),
            _ = sleep_until(rate_wait), if rate_wait.is_some() => {}
            _ = std::future::ready(()), if catching_up => w.catch_up().await,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    // Drain: let deliveries in flight finish (targets bound them with their timeouts) and
    // record their outcomes, so the saved cursor covers them.
    while let Some(done) = w.inflight.join_next().await {
        if let Ok(outcome) = done {
            w.resolve(outcome).await;
        }
    }
    w.publish_cursor(&rx);
    w.sub.mark_finished();
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
    /// Offset → task, for every unresolved delivery this worker holds.
    window: BTreeMap<u64, Task>,
    /// Offsets due for an attempt, oldest first.
    ready: VecDeque<u64>,
    retries: RetryQueue,
    /// Resent events waiting for an earlier delivery of the same event to resolve.
    deferred: Vec<(Arc<Event>, Resend)>,
    /// Partition keys with a delivery in flight or waiting to retry.
    busy_keys: HashSet<String>,
    inflight: JoinSet<Outcome>,
    next_allowed: Instant,
}

impl Worker {
    /// Everything below the oldest unresolved delivery is resolved.
    fn publish_cursor(&self, rx: &mpsc::Receiver<Arc<Event>>) {
        let cursor = if let Some((&oldest, _)) = self.window.first_key_value() {
            oldest
        } else if self.sub.is_attached() {
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
        self.sub.set_cursor(cursor);
    }

    /// Takes an event into the window; `resend` says why it came outside the scan.
    async fn admit(&mut self, event: Arc<Event>, resend: Option<Resend>) {
        let offset = event.record.offset;
        if resend.is_none() && offset < self.sub.start() {
            return;
        }
        if self.window.contains_key(&offset) {
            // The same event is still on its way (a replay or redrive raced its first
            // delivery): take it once that one is resolved.
            if let Some(why) = resend {
                self.deferred.push((event, why));
            }
            return;
        }
        let payload = match &self.sub.spec.transform {
            // Functions run with each attempt, since their failures are retried.
            Some(t) if t.function_name().is_some() => None,
            None => None,
            Some(t) => match apply_guarded(t, &event.value) {
                Ok(p) => {
                    self.journal(&event, TraceStep::new(offset, Stage::Transformed))
                        .await;
                    Some(p)
                }
                Err(e) => {
                    let task = Task {
                        event,
                        attempts: 0,
                        payload: None,
                        partition_key: None,
                        resend,
                    };
                    self.dead_letter(offset, task, format!("transform failed: {e}"))
                        .await;
                    return;
                }
            },
        };
        let partition_key = self
            .sub
            .spec
            .partition
            .then(|| {
                event
                    .value
                    .get("partitionkey")
                    .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))
            })
            .flatten();
        self.window.insert(
            offset,
            Task {
                event,
                attempts: 0,
                payload,
                partition_key,
                resend,
            },
        );
        self.ready.push_back(offset);
    }

    /// Starts attempts while concurrency, partition order and the rate limit allow.
    fn start_ready(&mut self) {
        let mut waiting = VecDeque::new();
        while self.inflight.len() < self.sub.spec.concurrency {
            let Some(offset) = self.ready.pop_front() else {
                break;
            };
            let Some(task) = self.window.get(&offset) else {
                continue;
            };
            if let Some(key) = task.partition_key.clone() {
                // One at a time per key, oldest first: a younger one waits for the older.
                let older_pending = self
                    .window
                    .range(..offset)
                    .any(|(_, t)| t.partition_key.as_ref() == Some(&key));
                if older_pending || self.busy_keys.contains(&key) {
                    waiting.push_back(offset);
                    continue;
                }
            }
            if let Some(rate) = self.sub.spec.rate_limit_per_second {
                let now = Instant::now();
                if self.next_allowed > now {
                    waiting.push_back(offset);
                    break;
                }
                self.next_allowed =
                    now.max(self.next_allowed) + Duration::from_secs_f64(1.0 / f64::from(rate));
            }
            let Some(task) = self.window.get_mut(&offset) else {
                continue;
            };
            task.attempts += 1;
            if let Some(key) = &task.partition_key {
                self.busy_keys.insert(key.clone());
            }
            let target = self.sub.spec.target.clone();
            let event = task.event.clone();
            let payload = task.payload.clone();
            let attempt = task.attempts;
            let delivery_id = format!(
                "{}:{}:{}:{}",
                self.dispatch.bus, offset, self.sub.spec.rule, self.sub.spec.target_id
            );
            // A `function` transform that has not produced its payload yet runs first.
            let function = self
                .sub
                .spec
                .transform
                .as_ref()
                .and_then(|t| t.function_name())
                .filter(|_| payload.is_none())
                .map(|name| (name.to_owned(), self.dispatch.ports.functions.clone()));
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
                    offset,
                    result,
                    latency: started.elapsed(),
                    transformed,
                }
            };
            self.inflight.spawn(async move {
                // Outside the attempt (telemetry, timing) too: the offset must come back.
                match AssertUnwindSafe(attempt).catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(panic) => Outcome {
                        offset,
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
            offset,
            result,
            latency,
            transformed,
        } = outcome;
        let Some(task) = self.window.get_mut(&offset) else {
            return;
        };
        if let Some(payload) = transformed {
            task.payload = Some(payload);
            let event = task.event.clone();
            self.journal(&event, TraceStep::new(offset, Stage::Transformed))
                .await;
        }
        let Some(task) = self.window.get(&offset) else {
            return;
        };
        let event = task.event.clone();
        let attempts = task.attempts;
        if let Some(key) = &task.partition_key {
            self.busy_keys.remove(key);
        }
        let latency_ms = latency.as_secs_f64() * 1000.0;
        self.dispatch
            .ports
            .metrics
            .delivery_latency
            .observe(latency.as_secs_f64());
        let mut entry = TraceStep::new(offset, Stage::Attempt);
        entry.attempt = Some(attempts);
        entry.latency_ms = Some((latency_ms * 1000.0).round() / 1000.0);
        match result {
            Ok(delivered) => {
                entry.status = delivered.status;
                self.journal(&event, entry).await;
                let mut done = TraceStep::new(offset, Stage::Delivered);
                done.attempt = Some(attempts);
                done.status = delivered.status;
                done.output = delivered.output;
                self.journal(&event, done).await;
                self.counters.delivered.inc();
                if let Some(task) = self.window.remove(&offset) {
                    self.forget_dead_letter(task.resend.as_ref()).await;
                }
            }
            Err(error) => {
                entry.status = error.status;
                entry.error = Some(error.message.clone());
                self.journal(&event, entry).await;
                let age_ms = now_ms().saturating_sub(event.record.received_at_ms).max(0);
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
                        self.journal(&event, e).await;
                        if let Some(key) = self
                            .window
                            .get(&offset)
                            .and_then(|t| t.partition_key.clone())
                        {
                            self.busy_keys.insert(key);
                        }
                        self.retries.schedule(offset, delay);
                    }
                    Decision::GiveUp(reason) => {
                        if let Some(task) = self.window.remove(&offset) {
                            self.dead_letter(offset, task, reason).await;
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
            .partition(|(e, _)| !self.window.contains_key(&e.record.offset));
        self.deferred = waiting;
        for (event, why) in ready {
            self.admit(event, Some(why)).await;
        }
    }

    fn fire_retries(&mut self) {
        // Retries go first: they are the oldest work.
        for offset in self.retries.take_due().into_iter().rev() {
            if let Some(key) = self
                .window
                .get(&offset)
                .and_then(|t| t.partition_key.clone())
            {
                self.busy_keys.remove(&key);
            }
            self.ready.push_front(offset);
        }
    }

    /// Detached: read the log directly from where the scanner stopped offering to us.
    async fn catch_up(&mut self) {
        let from = self.sub.resume_from();
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
            }
        }
        self.sub.resume_from_set(next);
        self.dispatch.try_attach(&self.sub, next).await;
    }

    async fn forget_dead_letter(&self, resend: Option<&Resend>) {
        if let Some(Resend::DeadLetter(id)) = resend
            && let Err(e) = self.dispatch.ports.dead_letters.delete(*id).await
        {
            tracing::error!(error = %e, "removing a redriven dead letter failed");
        }
    }

    async fn dead_letter(&mut self, offset: u64, task: Task, reason: String) {
        self.forget_dead_letter(task.resend.as_ref()).await;
        let event = task.event;
        if let Some(key) = &task.partition_key {
            self.busy_keys.remove(key);
        }
        self.counters.dead_lettered.inc();
        let dl = DeadLetter {
            id: 0,
            bus: self.dispatch.bus.clone(),
            event_offset: offset,
            event: String::from_utf8_lossy(&event.record.payload).into_owned(),
            rule: self.sub.spec.rule.clone(),
            target: self.sub.spec.target_id.clone(),
            attempts: task.attempts,
            last_error: reason.clone(),
            at_ms: now_ms(),
        };
        if let Err(e) = self.dispatch.ports.dead_letters.insert(&dl).await {
            tracing::error!(error = %e, "recording a dead letter failed");
        }
        let mut entry = TraceStep::new(offset, Stage::DeadLettered);
        if let Some(Resend::Replay(id)) = &task.resend {
            entry.replay = Some(id.clone());
        }
        entry.attempt = Some(task.attempts);
        entry.error = Some(reason.clone());
        self.journal(&event, entry).await;
        if let Some(dlq) = &self.sub.spec.dead_letter_bus {
            let copy = dead_letter_copy(
                &event.value,
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

    async fn journal(&self, event: &Event, mut entry: TraceStep) {
        if entry.replay.is_none()
            && let Some(Resend::Replay(id)) = entry
                .offset
                .and_then(|o| self.window.get(&o))
                .and_then(|t| t.resend.as_ref())
        {
            entry.replay = Some(id.clone());
        }
        entry.rule = self.sub.spec.rule.clone();
        entry.target = self.sub.spec.target_id.clone();
        entry.at_ms = now_ms();
        self.dispatch
            .journal
            .record(&event.record.source, &event.record.id, entry)
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

/// The event as sent to a dead-letter bus: the original plus why it was given up on.
fn dead_letter_copy(event: &Value, reason: &str, attempts: u32, rule: &str, target: &str) -> Value {
    let mut copy = event.clone();
    if let Some(obj) = copy.as_object_mut() {
        obj.insert("deadletterreason".into(), Value::from(reason));
        obj.insert("deliveryattempts".into(), Value::from(attempts));
        obj.insert("rulename".into(), Value::from(rule));
        obj.insert("targetid".into(), Value::from(target));
    }
    copy
}
