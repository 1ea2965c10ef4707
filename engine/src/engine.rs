//! The engine as one value: opens the metadata store and every bus, runs delivery, indexing,
//! schema discovery and retention, serves publishes between buses, and stops in order.
//! The HTTP edge holds an `Arc<Engine>`; nothing in the engine holds one back.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use switchyard_core::time::now_ms;
use switchyard_core::{Limits, Name};
use switchyard_targets::{AddressPolicy, DeliveryError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use switchyard_event_store::{JetStreamOptions, LogError, LogOptions};

use crate::buses::{Bus, Buses, LogBackend};
use crate::cluster::Membership;
use crate::dispatch::ownership::Ownership;
use crate::dispatch::ports::PublishRequest;
use crate::dispatch::{Ports, Publisher};
use crate::functions::Functions;
use crate::ingest::{Ingest, IngestError};
use crate::meta::{BusSettings, MetaStore, StoredRule};
use crate::metrics::Metrics;
use crate::rulespec::{SpecError, check_pattern, check_targets};
use crate::schemas::Schemas;
use crate::target::TargetSpec;
use crate::telemetry::Telemetry;

/// How long in-flight deliveries may take to finish when the engine stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why changing a bus failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Meta(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    /// The bus was stored but its delivery could not start.
    #[error("starting delivery: {0}")]
    Start(String),
}

/// Why changing a rule failed.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("bus {0:?} does not exist")]
    NoBus(String),
    #[error("rule {0:?} does not exist")]
    NoRule(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A stored rule this version cannot run may be replaced or deleted, not enabled.
    #[error("rule {rule:?} cannot run until it is replaced: {reason}")]
    Inactive { rule: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RuleError {
    fn from(e: sqlx::Error) -> Self {
        RuleError::Store(e.into())
    }
}

/// Why a function could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum FunctionInUse {
    #[error("function {name:?} is used by {}; change or delete them first", rules.join(", "))]
    Rules { name: String, rules: Vec<String> },
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// A rule as `PUT` gives it, before it is checked.
#[derive(Debug, Clone)]
pub struct NewRule {
    pub name: Name,
    pub description: Option<String>,
    pub enabled: bool,
    pub pattern: Value,
    pub targets: Vec<TargetSpec>,
}

/// What a redrive of every dead letter of a bus will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveAll {
    /// Letters whose (rule, target) is delivered now: they are retried.
    pub redriven: usize,
    /// Letters whose target is gone: they stay dead letters.
    pub orphaned: usize,
}

/// What a redrive of chosen dead letters did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redriven {
    /// Letters handed back to their subscription.
    pub redriven: usize,
    /// Ids that name no dead letter of the bus.
    pub not_found: Vec<String>,
    /// Letters whose (rule, target) is not delivered now: they stay dead letters.
    pub no_target: Vec<String>,
}

/// Dead letters read at once by a redrive of all of them.
const REDRIVE_PAGE: i64 = 256;

/// What the engine is opened with.
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// A repeated `(source, id)` within this window is a duplicate.
    pub dedup_window_ms: i64,
    pub segment_bytes: u64,
    pub log: LogConfig,
    /// When several nodes share the buses: this node's id and how long its delivery
    /// leases last (see `crate::cluster`). `None`: this node delivers everything.
    pub cluster: Option<ClusterConfig>,
    pub limits: Limits,
    pub address_policy: AddressPolicy,
    pub schema_discovery: bool,
    pub max_schema_subjects: usize,
    /// How often retention drops old events and journal entries.
    pub retention_interval: Duration,
}

/// Where bus logs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogConfig {
    /// Segment files in the data dir.
    Embedded,
    /// NATS JetStream at these servers (`nats://host:port`), a stream per bus named
    /// `<prefix>_<bus>` with `replicas` copies.
    JetStream {
        servers: Vec<String>,
        replicas: usize,
        prefix: String,
    },
}

/// This node in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Unique among the nodes sharing the metadata store.
    pub node: String,
    pub lease: Duration,
}

/// How long connecting to NATS at start may take, and every JetStream request.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Engine {
    pub meta: MetaStore,
    pub buses: Buses,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub address_policy: AddressPolicy,
    pub schemas: Arc<Schemas>,
    pub functions: Arc<Functions>,
    pub telemetry: Arc<Telemetry>,
    pub ingest: Ingest,
    /// The shared pool `http` targets send through.
    pub http_client: reqwest::Client,
    retention_interval: Duration,
    /// A repeated `(source, id)` within this window is a duplicate: retention keeps events
    /// at least this long.
    dedup_window_ms: i64,
    /// When several nodes share the buses.
    membership: Option<Arc<Membership>>,
    cluster_task: Mutex<Option<JoinHandle<()>>>,
    /// Buses with ledger entries written here for other nodes' subscriptions: told to them
    /// (taken by [`Engine::start`]).
    entries_written: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// Taken by [`Engine::start`].
    publishes: Mutex<Option<mpsc::Receiver<PublishRequest>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Opens the metadata store and every bus's files. Every stored rule is checked against
    /// this version's limits: one that fails is loaded inactive, with the reason.
    pub async fn open(config: EngineConfig) -> anyhow::Result<Engine> {
        let meta = MetaStore::connect(&config.database_url)
            .await
            .context("opening the metadata store")?;
        let metrics = Arc::new(Metrics::new());
        let schemas = Arc::new(
            Schemas::load(
                &meta,
                config.max_schema_subjects,
                metrics.schema_subjects_refused.clone(),
            )
            .await
            .context("loading schemas")?,
        );
        let functions = Arc::new(
            Functions::load(&meta, &metrics)
                .await
                .context("loading functions")?,
        );
        let telemetry = Arc::new(Telemetry::from_env().context("setting up OpenTelemetry export")?);
        let http_client = switchyard_targets::http::client(config.address_policy.clone())
            .map_err(anyhow::Error::msg)?;
        let (publish, publishes) = Publisher::channel();
        let mut entries_written = None;
        let membership = config.cluster.as_ref().map(|c| {
            let (ownership, reports) =
                Ownership::new(c.node.clone(), Arc::new(meta.clone()), c.lease);
            entries_written = Some(reports);
            Arc::new(Membership {
                ownership: Arc::new(ownership),
                lease: c.lease,
                wake: tokio::sync::Notify::new(),
            })
        });
        let ports = Ports {
            ownership: membership.as_ref().map(|m| m.ownership.clone()),
            ledger: Arc::new(meta.clone()),
            publish,
            metrics: metrics.clone(),
            telemetry: telemetry.clone(),
            functions: functions.clone(),
            http_client: http_client.clone(),
            address_policy: config.address_policy.clone(),
        };
        let backend = match &config.log {
            LogConfig::Embedded => LogBackend::Embedded(Buses::log_options(
                config.dedup_window_ms,
                config.segment_bytes,
            )),
            LogConfig::JetStream {
                servers,
                replicas,
                prefix,
            } => {
                let client = async_nats::ConnectOptions::new()
                    .name("switchyard")
                    .connection_timeout(NATS_TIMEOUT)
                    .request_timeout(Some(NATS_TIMEOUT))
                    .connect(servers.as_slice())
                    .await
                    .with_context(|| format!("connecting to NATS at {}", servers.join(",")))?;
                LogBackend::JetStream {
                    client,
                    options: JetStreamOptions {
                        log: LogOptions {
                            dedup_window_ms: config.dedup_window_ms,
                        },
                        replicas: *replicas,
                        prefix: prefix.clone(),
                        timeout: NATS_TIMEOUT,
                    },
                }
            }
        };
        let buses = Buses::open(
            &meta,
            config.data_dir.join("buses"),
            backend,
            now_ms(),
            ports,
        )
        .await
        .context("opening the bus logs")?;
        Ok(Engine {
            ingest: Ingest {
                schemas: schemas.clone(),
                metrics: metrics.clone(),
                discovery: config.schema_discovery,
            },
            meta,
            buses,
            metrics,
            limits: config.limits,
            address_policy: config.address_policy,
            schemas,
            functions,
            telemetry,
            http_client,
            retention_interval: config.retention_interval,
            dedup_window_ms: config.dedup_window_ms,
            publishes: Mutex::new(Some(publishes)),
            membership,
            cluster_task: Mutex::new(None),
            entries_written: Mutex::new(entries_written),
            background: Mutex::new(Vec::new()),
        })
    }

    /// Starts every bus's delivery and indexing, schema discovery, retention, and the
    /// service behind [`Publisher`].
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        self.schemas.start(self.meta.clone());
        for bus in self.buses.all() {
            bus.start().await?;
        }
        let mut background = Vec::new();
        if let Some(publishes) = lock(&self.publishes).take() {
            background.push(tokio::spawn(self.clone().serve_publishes(publishes)));
        }
        background.push(tokio::spawn(self.clone().retention_loop()));
        if let Some(m) = &self.membership {
            *lock(&self.cluster_task) = Some(tokio::spawn(self.clone().cluster_loop(m.clone())));
        }
        if let Some(mut written) = lock(&self.entries_written).take() {
            let meta = self.meta.clone();
            background.push(tokio::spawn(async move {
                while let Some(bus) = written.recv().await {
                    meta.entries_written(&bus).await;
                }
            }));
        }
        lock(&self.background).extend(background);
        Ok(())
    }

    /// Stops in order: deliveries finish (bounded) and save their cursors, then publishing
    /// between buses stops, then indexers, logs and the metadata store close.
    pub async fn close(&self) {
        // No lease is taken or given up meanwhile; this node's go once its workers wrote all.
        if let Some(task) = lock(&self.cluster_task).take() {
            task.abort();
        }
        self.buses.stop_delivery(SHUTDOWN_GRACE).await;
        if let Some(m) = &self.membership {
            crate::cluster::leave(&self.meta, m).await;
        }
        for task in lock(&self.background).drain(..) {
            task.abort();
        }
        self.buses.close_logs().await;
        self.schemas.save_counters(&self.meta).await;
        self.meta.close().await;
    }

    /// Stores a bus's settings and opens it, or re-configures it if it exists; returns
    /// whether it was created. Serialized with every other bus change.
    pub async fn put_bus(&self, settings: BusSettings) -> Result<(bool, Arc<Bus>), StoreError> {
        let _turn = self.buses.lifecycle().await;
        let created = self.meta.put_bus(&settings, now_ms()).await?;
        let bus = self.buses.install(settings).await?;
        if created {
            bus.start()
                .await
                .map_err(|e| StoreError::Start(e.to_string()))?;
        }
        self.meta.changed().await;
        self.rules_changed();
        Ok((created, bus))
    }

    /// Deletes a bus, its rules and its files; `false` if there was no such bus.
    pub async fn delete_bus(&self, name: &str) -> Result<bool, StoreError> {
        let _turn = self.buses.lifecycle().await;
        let Some(bus) = self.buses.get(name) else {
            return Ok(false);
        };
        bus.dispatch.forget_all().await;
        self.meta.delete_bus(name).await?;
        self.buses.remove(name).await?;
        self.meta.changed().await;
        self.rules_changed();
        Ok(true)
    }

    /// Creates or replaces a rule of `bus`: checks it (its targets parsed once, into what
    /// their deliveries run with), stores it, starts a new target's deliveries at the end of
    /// the bus (an edited one resumes where it was; a removed one's pending deliveries are
    /// dropped with the reason), and applies it to events published from now on. Returns the rule as stored
    /// and whether it was created. Serialized with bus changes: interleaved with a bus's
    /// deletion, a rule row outlived its bus.
    pub async fn put_rule(
        &self,
        bus: &str,
        rule: NewRule,
    ) -> Result<(StoredRule, bool), RuleError> {
        let _turn = self.buses.lifecycle().await;
        let bus = self
            .buses
            .get(bus)
            .ok_or_else(|| RuleError::NoBus(bus.to_owned()))?;
        check_pattern(&rule.pattern)?;
        let targets = check_targets(&rule.targets)?;
        let now = now_ms();
        let created_at_ms = bus
            .rules()
            .get(rule.name.as_str())
            .map_or(now, |r| r.created_at_ms);
        let stored = StoredRule {
            bus: bus.settings.name.clone(),
            name: rule.name.to_string(),
            description: rule.description,
            enabled: rule.enabled,
            pattern: rule.pattern.to_string(),
            targets: rule.targets,
            created_at_ms,
            updated_at_ms: now,
        };
        let created = self.meta.put_rule(&stored, now).await?;
        bus.rules_mut()
            .put(stored.clone(), targets)
            .map_err(|e| SpecError::pattern(format!("pattern: {e}")))?;
        bus.resync().await;
        self.meta.changed().await;
        self.rules_changed();
        Ok((stored, created))
    }

    /// Deletes a rule; its pending deliveries are dropped, each with the reason on its trace.
    pub async fn delete_rule(&self, bus: &str, rule: &str) -> Result<(), RuleError> {
        let _turn = self.buses.lifecycle().await;
        let bus = self
            .buses
            .get(bus)
            .ok_or_else(|| RuleError::NoBus(bus.to_owned()))?;
        if bus.rules().get(rule).is_none() {
            return Err(RuleError::NoRule(rule.to_owned()));
        }
        self.meta.delete_rule(&bus.settings.name, rule).await?;
        bus.rules_mut().remove(rule);
        bus.resync().await;
        self.meta.changed().await;
        self.rules_changed();
        Ok(())
    }

    /// Turns a rule on or off; returns it as stored, with why it cannot run if it cannot
    /// (such a rule may be disabled, not enabled).
    pub async fn set_rule_enabled(
        &self,
        bus: &str,
        rule: &str,
        enabled: bool,
    ) -> Result<(StoredRule, Option<String>), RuleError> {
        let _turn = self.buses.lifecycle().await;
        let bus = self
            .buses
            .get(bus)
            .ok_or_else(|| RuleError::NoBus(bus.to_owned()))?;
        let (mut stored, inactive) = {
            let rules = bus.rules();
            let stored = rules.get(rule).cloned();
            let inactive = rules.inactive_reason(rule).map(str::to_owned);
            (
                stored.ok_or_else(|| RuleError::NoRule(rule.to_owned()))?,
                inactive,
            )
        };
        if enabled && let Some(reason) = inactive {
            return Err(RuleError::Inactive {
                rule: rule.to_owned(),
                reason,
            });
        }
        stored.enabled = enabled;
        stored.updated_at_ms = now_ms();
        self.meta.put_rule(&stored, stored.updated_at_ms).await?;
        bus.rules_mut()
            .set_enabled(rule, enabled, stored.updated_at_ms)
            .map_err(|e| SpecError::pattern(format!("pattern: {e}")))?;
        bus.resync().await;
        self.meta.changed().await;
        self.rules_changed();
        Ok((stored, inactive))
    }

    /// This node's part in the cluster (see `crate::cluster`), until aborted.
    async fn cluster_loop(self: Arc<Self>, membership: Arc<Membership>) {
        crate::cluster::run(self.meta.clone(), &self.buses, &membership).await;
    }

    /// Subscriptions may have been added or removed: when nodes share the buses, leases are
    /// balanced now rather than at the next tick.
    fn rules_changed(&self) {
        if let Some(m) = &self.membership {
            m.wake.notify_one();
        }
    }

    /// Brings the buses and rules in memory in line with the metadata store, after another
    /// node changed it: buses made there are opened and started, buses deleted there are
    /// closed (their files and workers go), and rules added, changed (by their update time)
    /// or deleted there are applied, each bus resynced once.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let _turn = self.buses.lifecycle().await;
        let settings = self.meta.list_buses().await?;
        let rules = self.meta.list_rules().await?;
        let names: std::collections::HashSet<&str> =
            settings.iter().map(|b| b.name.as_str()).collect();
        for bus in self.buses.all() {
            if !names.contains(bus.settings.name.as_str()) {
                bus.dispatch.forget_all().await;
                self.buses.remove(&bus.settings.name).await?;
            }
        }
        let mut new = Vec::new();
        for s in settings {
            match self.buses.get(&s.name) {
                None => new.push(self.buses.install(s).await?),
                Some(open) if open.settings != s => {
                    self.buses.install(s).await?;
                }
                Some(_) => {}
            }
        }
        for bus in self.buses.all() {
            let stored: Vec<&(StoredRule, Option<String>)> = rules
                .iter()
                .filter(|(r, _)| r.bus == bus.settings.name)
                .collect();
            let changed = {
                let mut set = bus.rules_mut();
                let gone: Vec<String> = set
                    .list()
                    .filter(|r| !stored.iter().any(|(s, _)| s.name == r.name))
                    .map(|r| r.name.clone())
                    .collect();
                for name in &gone {
                    set.remove(name);
                }
                let mut changed = !gone.is_empty();
                for (rule, unreadable) in stored {
                    let known = set.get(&rule.name);
                    if known.is_some_and(|k| {
                        k.updated_at_ms == rule.updated_at_ms && k.enabled == rule.enabled
                    }) {
                        continue;
                    }
                    crate::buses::load_rule(&mut set, rule.clone(), unreadable.clone());
                    changed = true;
                }
                changed
            };
            let is_new = new.iter().any(|b| Arc::ptr_eq(b, &bus));
            if changed && !is_new {
                bus.resync().await;
            }
        }
        for bus in new {
            bus.start().await?;
        }
        self.rules_changed();
        Ok(())
    }

    /// Hands the dead letters `ids` of `bus` back to their subscriptions.
    pub async fn redrive(&self, bus: &Bus, ids: &[String]) -> Result<Redriven, sqlx::Error> {
        let mut out = Redriven::default();
        let mut numbers = Vec::with_capacity(ids.len());
        for id in ids {
            match id.parse::<i64>() {
                Ok(n) => numbers.push(n),
                Err(_) => out.not_found.push(id.clone()),
            }
        }
        let found = self
            .meta
            .get_dead_letters(&bus.settings.name, &numbers)
            .await?;
        out.not_found.extend(
            numbers
                .iter()
                .filter(|n| !found.iter().any(|d| d.id == **n))
                .map(i64::to_string),
        );
        let total = found.len();
        let orphans = bus.dispatch.redrive(found).await?;
        out.redriven = total - orphans.len();
        out.no_target = orphans.iter().map(i64::to_string).collect();
        Ok(out)
    }

    /// Hands every dead letter of `bus` back to its subscription, in the background, a page
    /// at a time; letters written after the call are not taken. `None` while an earlier
    /// redrive of the bus still runs.
    pub async fn redrive_all(&self, bus: Arc<Bus>) -> Result<Option<RedriveAll>, sqlx::Error> {
        use std::sync::atomic::Ordering;
        let (top, counts) = self.meta.dead_letter_counts(&bus.settings.name).await?;
        if bus.dispatch.redriving_all.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let mut plan = RedriveAll {
            redriven: 0,
            orphaned: 0,
        };
        for (rule, target, n) in &counts {
            let n = usize::try_from(*n).unwrap_or(0);
            if bus.dispatch.delivers_to(rule, target) {
                plan.redriven += n;
            } else {
                plan.orphaned += n;
            }
        }
        let meta = self.meta.clone();
        tokio::spawn(async move {
            let mut before = top.saturating_add(1);
            loop {
                let page = match meta
                    .list_dead_letters(&bus.settings.name, before, REDRIVE_PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(bus = %bus.settings.name, error = %e, "redriving dead letters stopped");
                        break;
                    }
                };
                let Some(last) = page.last() else { break };
                before = last.id;
                if let Err(e) = bus.dispatch.redrive(page).await {
                    tracing::error!(bus = %bus.settings.name, error = %e, "redriving dead letters stopped");
                    break;
                }
            }
            bus.dispatch.redriving_all.store(false, Ordering::Release);
        });
        Ok(Some(plan))
    }

    /// `bus/rule` of every rule that can run (enabled or not) with a target or transform
    /// that runs `function`.
    pub fn rules_running(&self, function: &str) -> Vec<String> {
        let mut users = Vec::new();
        for bus in self.buses.all() {
            for (rule, targets) in bus.rules().runnable() {
                if targets.iter().any(|t| t.runs_function(function)) {
                    users.push(format!("{}/{}", rule.bus, rule.name));
                }
            }
        }
        users
    }

    /// Deletes a function no rule runs (`bus/rule` of those that do are the error);
    /// `false` if there was no such function. Taken in turn with rule changes, so a rule
    /// stored meanwhile is seen.
    pub async fn delete_function(&self, name: &str) -> Result<bool, FunctionInUse> {
        let _turn = self.buses.lifecycle().await;
        let rules = self.rules_running(name);
        if !rules.is_empty() {
            return Err(FunctionInUse::Rules {
                name: name.to_owned(),
                rules,
            });
        }
        Ok(self.functions.remove(&self.meta, name).await?)
    }

    /// Publishes one event (as JSON) onto a bus of this server, through the normal ingest
    /// path.
    pub async fn publish_json(&self, bus: &str, event: Value) -> Result<(), DeliveryError> {
        let target_bus = self
            .buses
            .get(bus)
            .ok_or_else(|| DeliveryError::permanent(format!("bus {bus:?} does not exist")))?;
        let json =
            serde_json::to_vec(&event).map_err(|e| DeliveryError::permanent(e.to_string()))?;
        let parsed =
            switchyard_core::cloudevent::parse_structured(&json, &self.limits).map_err(|e| {
                DeliveryError::permanent(format!("not a valid CloudEvent for bus {bus}: {e}"))
            })?;
        self.ingest
            .append(&target_bus, vec![parsed])
            .await
            .map_err(|e| match e {
                IngestError::Log(e) => {
                    DeliveryError::retryable(format!("appending to bus {bus}: {e}"))
                }
                schema @ IngestError::Schema(_) => {
                    DeliveryError::permanent(format!("bus {bus}: {schema}"))
                }
            })?;
        Ok(())
    }

    /// Serves [`Publisher`] handles until the engine closes; each publish runs on its own.
    async fn serve_publishes(self: Arc<Self>, mut publishes: mpsc::Receiver<PublishRequest>) {
        while let Some(request) = publishes.recv().await {
            let engine = self.clone();
            tokio::spawn(async move {
                let outcome = engine.publish_json(&request.bus, request.event).await;
                let _ = request.reply.send(outcome);
            });
        }
    }

    /// The shortest retention a bus may have: the dedup window, in whole hours (an event
    /// removed sooner could be published again and not be a duplicate).
    pub fn min_retention_hours(&self) -> u32 {
        let hours = (self.dedup_window_ms.max(0) as u64).div_ceil(3_600_000);
        u32::try_from(hours).unwrap_or(u32::MAX).max(1)
    }

    /// Drops events and journal entries older than each bus's retention.
    async fn retention_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.retention_interval.max(Duration::from_secs(1)));
        loop {
            tick.tick().await;
            for bus in self.buses.all() {
                self.apply_retention(&bus).await;
            }
        }
    }

    /// Removes a bus's events older than its retention (never younger than the dedup
    /// window, for a bus stored before that was a rule) unless a delivery still needs them:
    /// an event with a pending delivery, and every event after it, stay until it resolves.
    async fn apply_retention(&self, bus: &Bus) {
        let retention_ms =
            (i64::from(bus.settings.retention_hours) * 3_600_000).max(self.dedup_window_ms);
        let cutoff = now_ms() - retention_ms;
        let keep_from = match self
            .buses
            .ports()
            .ledger
            .needed_from(&bus.settings.name)
            .await
        {
            Ok(needed) => needed.unwrap_or(u64::MAX),
            Err(e) => {
                tracing::warn!(bus = %bus.settings.name, error = %e, "retention skipped: delivery state unreadable");
                return;
            }
        };
        retain(bus, cutoff, keep_from).await;
    }
}

async fn retain(bus: &Bus, cutoff: i64, keep_from: u64) {
    let removed = bus.log.remove_before(cutoff, keep_from).await;
    let needed_time = match bus.log.read(keep_from, 1).await {
        Ok(records) => records
            .first()
            .filter(|r| r.offset == keep_from)
            .map(|r| r.received_at_ms),
        Err(_) => None,
    };
    if needed_time.is_some_and(|t| t < cutoff) {
        tracing::warn!(bus = %bus.settings.name, offset = keep_from, "retention is held: an event past its retention still has a pending delivery; it and the events after it are kept until it resolves");
    }
    match removed {
        Ok(0) => {}
        Ok(n) => {
            let bounds = bus.log.bounds();
            bus.indexer.retain_from(bounds.first.unwrap_or(bounds.next));
            tracing::info!(bus = %bus.settings.name, removed = n, "retention removed events");
        }
        Err(e) => tracing::warn!(bus = %bus.settings.name, error = %e, "retention failed"),
    }
    match bus.dispatch.journal.remove_before(cutoff).await {
        Ok(0) => {}
        Ok(_) => {
            let bounds = bus.dispatch.journal.log().bounds();
            bus.delivery_indexer
                .retain_from(bounds.first.unwrap_or(bounds.next));
        }
        Err(e) => {
            tracing::warn!(bus = %bus.settings.name, error = %e, "journal retention failed")
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
