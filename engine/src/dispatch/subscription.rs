//! Subscriptions: one per (rule, target), built from the rule set.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use switchyard_rules::Transform;
use switchyard_targets::http::HttpTarget;
use switchyard_targets::queue::amqp::AmqpTarget;
use switchyard_targets::queue::mqtt::MqttTarget;
use switchyard_targets::queue::nats::NatsTarget;
use switchyard_targets::queue::redis::RedisTarget;
use switchyard_targets::{RetryPolicy, Target};
use tokio::sync::mpsc;

use super::bus_target::BusTarget;
use super::ledger::{Entry, SubKey};
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

/// An offered event with its ordinal: how many events that matched the rule come before
/// it on the log (counted from where the bus's delivery started; see [`super::Counts`]).
pub type Offered = (Arc<Event>, i64);

/// Not loaded yet: the subscription has no ordinal.
const UNLOADED: i64 = i64::MIN;

/// A running subscription, as the scanner and the bus see it; its worker owns the rest.
pub struct Sub {
    pub spec: SubSpec,
    tx: mpsc::Sender<Offered>,
    /// Offsets below this were resolved before the subscription started (its ledger cursor
    /// when it loaded; until then nothing is wanted).
    start: AtomicU64,
    attached: AtomicBool,
    /// When detached: the first offset the worker must read itself, and the ordinal of the
    /// first matching event from there.
    resume_from: AtomicU64,
    resume_ordinal: AtomicI64,
    /// When attached: the scanner has offered everything below this.
    scanned: AtomicU64,
    /// As the worker last published them: deliveries it holds, and the ordinal of the
    /// first matching event it has not taken (the backlog is what it holds plus every
    /// matching event from there on).
    held: AtomicI64,
    taken: AtomicI64,
    /// Deliveries written to the ledger and on their way to the worker (a replay step, a
    /// redrive).
    handing: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
    resend: mpsc::Sender<(Arc<Event>, Entry)>,
    /// Set by the worker when it has finished its in-flight deliveries, made its last
    /// commit and exited.
    finished: tokio::sync::watch::Sender<bool>,
    /// The subscription this one takes over from (a rule edited, disabled and enabled
    /// again): it starts once that one has finished, so their attempts never overlap.
    predecessor: Mutex<Option<Arc<Sub>>>,
    /// Held across every ledger write of the worker, and by [`Sub::forget`].
    turn: tokio::sync::Mutex<()>,
    /// Set when the subscription's rule or target was deleted: its worker writes nothing
    /// more and leaves what it held unresolved in `leftovers`, with this reason.
    forgotten: Mutex<Option<String>>,
    leftovers: Mutex<Option<Leftovers>>,
    /// Set when the ledger may hold entries for this subscription that its worker does not
    /// (written by another node: a redrive, a replay).
    adopt: tokio::sync::Notify,
}

/// What a forgotten subscription's worker held when it stopped: events to drop, and the
/// log offset from which matching events were never taken.
pub struct Leftovers {
    pub held: Vec<(Arc<Event>, Option<String>)>,
    pub scan_from: u64,
}

/// What a worker receives: offered events, and deliveries already in the ledger (replays,
/// redrives) with their entries.
pub struct Inbox {
    pub events: mpsc::Receiver<Offered>,
    pub resends: mpsc::Receiver<(Arc<Event>, Entry)>,
}

impl Sub {
    pub fn new(spec: SubSpec, predecessor: Option<Arc<Sub>>) -> (Arc<Sub>, Inbox) {
        let (tx, rx) = mpsc::channel(WINDOW);
        let (resend, resends) = mpsc::channel(WINDOW);
        let sub = Arc::new(Sub {
            spec,
            tx,
            start: AtomicU64::new(u64::MAX),
            attached: AtomicBool::new(false),
            resume_from: AtomicU64::new(0),
            resume_ordinal: AtomicI64::new(0),
            scanned: AtomicU64::new(0),
            held: AtomicI64::new(0),
            taken: AtomicI64::new(UNLOADED),
            handing: AtomicU64::new(0),
            stop: tokio::sync::watch::channel(false).0,
            resend,
            finished: tokio::sync::watch::channel(false).0,
            predecessor: Mutex::new(predecessor),
            turn: tokio::sync::Mutex::new(()),
            forgotten: Mutex::new(None),
            leftovers: Mutex::new(None),
            adopt: tokio::sync::Notify::new(),
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

    pub fn ledger_key(&self) -> SubKey {
        SubKey::new(&self.spec.rule, &self.spec.target_id)
    }

    pub fn wants(&self, offset: u64) -> bool {
        offset >= self.start.load(Ordering::Acquire) && self.attached.load(Ordering::Acquire)
    }

    /// Loaded from the ledger: everything below `cursor` is resolved or held as an entry;
    /// the worker reads the log itself from there (where the first matching event has
    /// `ordinal`) until it reaches the scanner.
    pub fn loaded(&self, cursor: u64, ordinal: i64) {
        self.resume_from.store(cursor, Ordering::Release);
        self.resume_ordinal.store(ordinal, Ordering::Release);
        self.taken.store(ordinal, Ordering::Release);
        self.start.store(cursor, Ordering::Release);
    }

    /// The scanner hands over an event; a full window detaches the subscription.
    pub fn offer(&self, event: &Arc<Event>, offset: u64, ordinal: i64) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send((event.clone(), ordinal))
        {
            self.resume_at(offset, ordinal);
            self.attached.store(false, Ordering::Release);
        }
    }

    pub fn scanned_to(&self, pos: u64) {
        if self.attached.load(Ordering::Acquire) {
            self.scanned.fetch_max(pos, Ordering::AcqRel);
        }
    }

    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    pub fn resume_from(&self) -> u64 {
        self.resume_from.load(Ordering::Acquire)
    }

    pub fn resume_ordinal(&self) -> i64 {
        self.resume_ordinal.load(Ordering::Acquire)
    }

    /// Where reading the log resumes: at `offset`, whose first matching event has `ordinal`.
    pub fn resume_at(&self, offset: u64, ordinal: i64) {
        self.resume_ordinal.store(ordinal, Ordering::Release);
        self.resume_from.store(offset, Ordering::Release);
    }

    /// Hands a delivery already in the ledger to the worker (waits while its inbox is
    /// full); `false` once the worker has stopped.
    pub async fn resend(&self, event: Arc<Event>, entry: Entry) -> bool {
        let sent = self.resend.send((event, entry)).await.is_ok();
        self.handed(1);
        sent
    }

    /// `n` deliveries are about to be written to the ledger for this subscription and
    /// handed over (each [`Sub::resend`] or [`Sub::handed`] ends one).
    pub fn handing(&self, n: u64) {
        self.handing.fetch_add(n, Ordering::AcqRel);
    }

    pub fn handed(&self, n: u64) {
        let _ = self
            .handing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                Some(h.saturating_sub(n))
            });
    }

    pub fn scanned(&self) -> u64 {
        self.scanned.load(Ordering::Acquire)
    }

    pub fn start(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// Called under the scanner's lock (at `scan`), when a catching-up worker has taken
    /// everything below `at`. A worker that read ahead of the scanner wants nothing the
    /// scanner will offer below `at`.
    pub fn attach(&self, at: u64, scan: u64) {
        self.start.fetch_max(at, Ordering::AcqRel);
        self.scanned.store(at.max(scan), Ordering::Release);
        self.attached.store(true, Ordering::Release);
    }

    /// Deliveries not yet resolved, given how many events matching the rule were
    /// appended (the count [`super::Counts`] keeps): those the worker holds, those on their
    /// way to it, and every matching event it has not taken yet. Before it has loaded, the
    /// subscription it takes over from still has them.
    pub fn backlog(&self, appended: i64) -> u64 {
        let taken = self.taken.load(Ordering::Acquire);
        if taken == UNLOADED {
            return self.predecessor().map_or(0, |p| p.backlog(appended));
        }
        let queued = (self.resend.max_capacity() - self.resend.capacity()) as i64;
        let handing = i64::try_from(self.handing.load(Ordering::Acquire)).unwrap_or(i64::MAX);
        // Ingest counts an event just after the scanner may have seen it: never below 0.
        let past = appended.saturating_sub(taken).max(0);
        let n = self
            .held
            .load(Ordering::Acquire)
            .saturating_add(queued)
            .saturating_add(handing)
            .saturating_add(past);
        u64::try_from(n).unwrap_or(0)
    }

    /// `held` may be below the window's size: restored deliveries the worker has not read
    /// past are among the matching events it has not taken.
    pub fn publish_progress(&self, held: i64, taken: i64) {
        self.held.store(held, Ordering::Release);
        self.taken.store(taken, Ordering::Release);
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

    /// The subscription this one takes over from (kept until it has finished, so a
    /// deletion meanwhile reaches it too).
    pub fn predecessor(&self) -> Option<Arc<Sub>> {
        lock(&self.predecessor).clone()
    }

    /// The predecessor has finished: let it go.
    pub fn took_over(&self) {
        lock(&self.predecessor).take();
    }

    /// Taken by the worker around each ledger write; `None` once the subscription is
    /// forgotten (nothing more may be written for it).
    pub async fn ledger_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let turn = self.turn.lock().await;
        lock(&self.forgotten).is_none().then_some(turn)
    }

    /// Marks the subscription forgotten, waiting out a ledger write in progress.
    pub async fn forget(&self, reason: &str) {
        let _turn = self.turn.lock().await;
        *lock(&self.forgotten) = Some(reason.to_owned());
    }

    pub fn forgotten(&self) -> Option<String> {
        lock(&self.forgotten).clone()
    }

    /// The ledger may hold entries the worker does not: it reads them at its next turn.
    pub fn adopt(&self) {
        self.adopt.notify_one();
    }

    pub async fn adopting(&self) {
        self.adopt.notified().await;
    }

    pub fn set_leftovers(&self, leftovers: Leftovers) {
        *lock(&self.leftovers) = Some(leftovers);
    }

    pub fn take_leftovers(&self) -> Option<Leftovers> {
        lock(&self.leftovers).take()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
