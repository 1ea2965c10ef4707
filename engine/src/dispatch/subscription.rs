//! Subscriptions: one per (rule, target), built from the rule set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;
use switchyard_rules::Transform;
use switchyard_targets::http::{HttpConfig, HttpTarget};
use switchyard_targets::queue::amqp::{AmqpConfig, AmqpTarget};
use switchyard_targets::queue::mqtt::{MqttConfig, MqttTarget};
use switchyard_targets::queue::nats::{NatsConfig, NatsTarget};
use switchyard_targets::queue::redis::{RedisConfig, RedisTarget};
use switchyard_targets::{RetryPolicy, Target};
use tokio::sync::mpsc;

use super::{Event, Ports};
use crate::ruleset::RuleSet;

/// Most deliveries one subscription holds at once (in flight or waiting to retry).
pub const WINDOW: usize = 256;
/// Default per-target concurrency (SPEC §6).
pub const DEFAULT_CONCURRENCY: usize = 64;

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

/// Builds the subscriptions of every enabled rule that can run.
pub fn specs(ports: &Ports, rules: &RuleSet) -> Vec<SubSpec> {
    let mut out = Vec::new();
    for rule in rules.active() {
        // Rules are checked when stored and when loaded, so this does not fail; if it
        // did, one rule's problem must not stop every other rule's deliveries.
        let built: Result<Vec<SubSpec>, String> = serde_json::from_str::<Vec<Value>>(&rule.targets)
            .map_err(|e| format!("targets: {e}"))
            .and_then(|targets| targets.iter().map(|t| spec(ports, &rule.name, t)).collect());
        match built {
            Ok(specs) => out.extend(specs),
            Err(e) => {
                tracing::error!(rule = %rule.name, error = %e, "rule cannot be delivered; skipped")
            }
        }
    }
    out
}

fn spec(ports: &Ports, rule: &str, t: &Value) -> Result<SubSpec, String> {
    let id = t
        .get("id")
        .and_then(Value::as_str)
        .ok_or("target without id")?
        .to_owned();
    let kind = t.get("kind").and_then(Value::as_str).unwrap_or_default();
    let target: Arc<dyn Target> = match kind {
        "http" => {
            let config = HttpConfig::parse(t.get("http").unwrap_or(&Value::Null))?;
            Arc::new(HttpTarget::new(
                config,
                ports.http_client.clone(),
                ports.address_policy.clone(),
            ))
        }
        "nats" => {
            let config = NatsConfig::parse(t.get("nats").unwrap_or(&Value::Null))?;
            Arc::new(NatsTarget::new(config, ports.address_policy.clone()))
        }
        "amqp" => {
            let config = AmqpConfig::parse(t.get("amqp").unwrap_or(&Value::Null))?;
            Arc::new(AmqpTarget::new(config, ports.address_policy.clone()))
        }
        "mqtt" => {
            let config = MqttConfig::parse(t.get("mqtt").unwrap_or(&Value::Null))?;
            Arc::new(MqttTarget::new(config, ports.address_policy.clone()))
        }
        "redis" => {
            let config = RedisConfig::parse(t.get("redis").unwrap_or(&Value::Null))?;
            Arc::new(RedisTarget::new(config, ports.address_policy.clone()))
        }
        "bus" => {
            let bus = t
                .get("bus")
                .and_then(Value::as_str)
                .ok_or("bus target without bus")?;
            Arc::new(super::bus_target::BusTarget::new(
                ports.publish.clone(),
                bus,
            ))
        }
        "function" => {
            let name = t
                .get("function")
                .and_then(Value::as_str)
                .ok_or("function target without function")?;
            Arc::new(crate::functions::FunctionTarget::new(
                ports.functions.clone(),
                name,
            ))
        }
        other => return Err(format!("unknown target kind {other:?}")),
    };
    let transform = t
        .get("transform")
        .map(|tr| {
            Transform::parse(tr)
                .map(Arc::new)
                .map_err(|e| format!("transform: {e}"))
        })
        .transpose()?;
    Ok(SubSpec {
        rule: rule.to_owned(),
        target_id: id,
        target,
        transform,
        policy: RetryPolicy::from_json(t.get("retry"))?,
        dead_letter_bus: t
            .get("dead_letter")
            .and_then(|d| d.get("bus"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        concurrency: t
            .get("concurrency")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_CONCURRENCY, |c| c.clamp(1, WINDOW as u64) as usize),
        partition: t.get("ordering").and_then(Value::as_str) == Some("partition"),
        rate_limit_per_second: t
            .get("rate_limit_per_second")
            .and_then(Value::as_u64)
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| *r > 0),
        fingerprint: t.to_string(),
    })
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
