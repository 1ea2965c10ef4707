//! Subscriptions: one per (rule, target), built from the rule set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use switchyard_rules::Transform;
use switchyard_targets::http::HttpTarget;
use switchyard_targets::queue::amqp::AmqpTarget;
use switchyard_targets::queue::mqtt::MqttTarget;
use switchyard_targets::queue::nats::NatsTarget;
use switchyard_targets::queue::redis::RedisTarget;
use switchyard_targets::{RetryPolicy, Target};
use tokio::sync::mpsc;

use super::bus_target::BusTarget;
use super::{Event, Ports};
use crate::functions::FunctionTarget;
use crate::ruleset::RuleSet;
use crate::target::KindSettings;

/// Most deliveries one subscription holds at once (in flight or waiting to retry).
pub const WINDOW: usize = crate::target::MAX_CONCURRENCY as usize;

/// Everything a worker needs to deliver for one (rule, target).
pub struct SubSpec {
    pub rule: String,
    pub target_id: String,
    pub target: Arc<dyn Target>,
    pub transform: Option<Arc<Transform>>,
    pub policy: RetryPolicy,
    pub dead_letter_bus: Option<String>,
    pub concurrency: usize,
    pub partition: bool,
    pub rate_limit_per_second: Option<u32>,
    /// The target's configuration as stored: a change restarts the subscription.
    pub fingerprint: String,
}

impl SubSpec {
    pub fn key(&self) -> (String, String) {
        (self.rule.clone(), self.target_id.clone())
    }
}

/// Builds the subscriptions of every enabled rule that can run, from its checked targets.
pub fn specs(ports: &Ports, rules: &RuleSet) -> Vec<SubSpec> {
    let mut out = Vec::new();
    for (rule, targets) in rules.active() {
        out.extend(targets.iter().map(|t| SubSpec {
            rule: rule.name.clone(),
            target_id: t.spec.id.clone(),
            target: deliverer(&t.settings, ports),
            transform: t.transform.clone(),
            policy: t.policy,
            dead_letter_bus: t.dead_letter_bus.clone(),
            concurrency: t.concurrency,
            partition: t.partition,
            rate_limit_per_second: t.rate_limit_per_second,
            fingerprint: serde_json::to_string(&t.spec).unwrap_or_default(),
        }));
    }
    out
}

/// The one factory: the deliverer of a target of this kind.
pub fn deliverer(settings: &KindSettings, ports: &Ports) -> Arc<dyn Target> {
    let policy = ports.address_policy.clone();
    match settings {
        KindSettings::Http(c) => Arc::new(HttpTarget::new(
            c.clone(),
            ports.http_client.clone(),
            policy,
        )),
        KindSettings::Nats(c) => Arc::new(NatsTarget::new(c.clone(), policy)),
        KindSettings::Amqp(c) => Arc::new(AmqpTarget::new(c.clone(), policy)),
        KindSettings::Redis(c) => Arc::new(RedisTarget::new(c.clone(), policy)),
        KindSettings::Mqtt(c) => Arc::new(MqttTarget::new(c.clone(), policy)),
        KindSettings::Function(name) => {
            Arc::new(FunctionTarget::new(ports.functions.clone(), name.as_str()))
        }
        KindSettings::Bus(bus) => Arc::new(BusTarget::new(ports.publish.clone(), bus.as_str())),
    }
}

/// A running subscription, as the scanner and the cursor flusher see it.
pub struct Sub {
    pub spec: SubSpec,
    tx: mpsc::Sender<Arc<Event>>,
    /// Offsets below this were resolved before the subscription started.
    start: u64,
    attached: AtomicBool,
    /// When detached: the first offset the worker must read itself.
    resume_from: AtomicU64,
    /// When attached: the scanner has offered everything below this.
    scanned: AtomicU64,
    /// Everything below this is resolved; published by the worker.
    cursor: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
    resend: mpsc::Sender<(Arc<Event>, Resend)>,
    /// Set by the worker when it has finished its in-flight deliveries and exited.
    finished: tokio::sync::watch::Sender<bool>,
}

/// Why an event is handed to a worker outside the scanner's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    /// A dead letter tried again; it leaves the list once resolved.
    DeadLetter(i64),
    /// A replay of stored events, by replay id.
    Replay(String),
}

/// What a worker receives: offered events, and events sent again.
pub struct Inbox {
    pub events: mpsc::Receiver<Arc<Event>>,
    pub resends: mpsc::Receiver<(Arc<Event>, Resend)>,
}

impl Sub {
    pub fn new(spec: SubSpec, from: u64, attached: bool) -> (Arc<Sub>, Inbox) {
        let (tx, rx) = mpsc::channel(WINDOW);
        let (resend, resends) = mpsc::channel(WINDOW);
        let sub = Arc::new(Sub {
            spec,
            tx,
            start: from,
            attached: AtomicBool::new(attached),
            resume_from: AtomicU64::new(from),
            scanned: AtomicU64::new(from),
            cursor: AtomicU64::new(from),
            stop: tokio::sync::watch::channel(false).0,
            resend,
            finished: tokio::sync::watch::channel(false).0,
        });
        (
            sub,
            Inbox {
                events: rx,
                resends,
            },
        )
    }

    pub fn key(&self) -> (String, String) {
        self.spec.key()
    }

    pub fn wants(&self, offset: u64) -> bool {
        offset >= self.start && self.attached.load(Ordering::Acquire)
    }

    /// The scanner hands over an event; a full window detaches the subscription.
    pub fn offer(&self, event: &Arc<Event>, offset: u64) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event.clone()) {
            self.resume_from.store(offset, Ordering::Release);
            self.attached.store(false, Ordering::Release);
        }
    }

    pub fn scanned_to(&self, pos: u64) {
        if self.attached.load(Ordering::Acquire) {
            self.scanned.store(pos, Ordering::Release);
        }
    }

    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    pub fn resume_from(&self) -> u64 {
        self.resume_from.load(Ordering::Acquire)
    }

    pub fn resume_from_set(&self, offset: u64) {
        self.resume_from.store(offset, Ordering::Release);
    }

    /// Hands an event to the worker again (waits while its inbox is full).
    pub async fn resend(&self, event: Arc<Event>, why: Resend) -> bool {
        self.resend.send((event, why)).await.is_ok()
    }

    pub fn scanned(&self) -> u64 {
        self.scanned.load(Ordering::Acquire)
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    /// Called under the scanner's lock, when a catching-up worker reached `pos`.
    pub fn attach(&self, pos: u64) {
        self.scanned.store(pos, Ordering::Release);
        self.attached.store(true, Ordering::Release);
    }

    pub fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    pub fn set_cursor(&self, c: u64) {
        self.cursor.fetch_max(c, Ordering::AcqRel);
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn stopped(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub fn mark_finished(&self) {
        self.finished.send_replace(true);
    }

    /// Waits until the worker has exited.
    pub async fn finished(&self) {
        let _ = self.finished.subscribe().wait_for(|f| *f).await;
    }
}
