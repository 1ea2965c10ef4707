//! The open buses: settings from the metadata store, each with its log. The publish path
//! reads from here and never touches SQL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use switchyard_event_store::{
    EventIndex, JetStreamLog, JetStreamOptions, LogError, LogOptions, LogStore, SegmentedLog,
    SegmentedOptions,
};

use crate::dispatch::{BusDispatch, Journal, Ports};
use crate::indexer::{Indexer, as_delivery, as_published};
use crate::meta::{BusSettings, MetaStore, SchemaValidation, StoredRule};
use crate::ruleset::RuleSet;

pub const DEFAULT_BUS: &str = "default";
pub const DEFAULT_RETENTION_HOURS: u32 = 168;

pub struct Bus {
    pub settings: BusSettings,
    pub log: Arc<dyn LogStore>,
    /// Shared by every generation of this bus's settings.
    pub rules: Arc<RwLock<RuleSet>>,
    pub dispatch: Arc<BusDispatch>,
    pub indexer: Arc<Indexer>,
    /// Indexes the delivery journal, for delivery search and analytics.
    pub delivery_indexer: Arc<Indexer>,
    /// With JetStream: tells the other nodes this bus got new events.
    pub announcer: Option<Arc<Announcer>>,
}

/// With JetStream (nodes share the buses): after each append a node publishes an empty core
/// NATS message on `<prefix>-wake.<bus>`, and every node, on each one, wakes the bus's
/// dispatcher and indexers — so an event published through any node is read by every node
/// at once, not at its readers' next poll (500 ms). Best effort: a lost message costs only
/// that poll.
pub struct Announcer {
    client: async_nats::Client,
    subject: String,
    listener: tokio::task::JoinHandle<()>,
}

impl Announcer {
    async fn start(
        client: async_nats::Client,
        prefix: &str,
        bus: &str,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Announcer, LogError> {
        use futures_util::StreamExt as _;
        let subject = format!("{prefix}-wake.{bus}");
        let mut woken =
            client
                .subscribe(subject.clone())
                .await
                .map_err(|e| LogError::Unavailable {
                    reason: format!("subscribing to {subject}: {e}"),
                })?;
        let listener = tokio::spawn(async move {
            while woken.next().await.is_some() {
                wake();
            }
        });
        Ok(Announcer {
            client,
            subject,
            listener,
        })
    }

    /// New events were appended through this node.
    pub async fn announce(&self) {
        if let Err(e) = self.client.publish(self.subject.clone(), "".into()).await {
            tracing::debug!(error = %e, "announcing new events failed; the other nodes poll");
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Bus {
    pub fn rules(&self) -> std::sync::RwLockReadGuard<'_, RuleSet> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rules_mut(&self) -> std::sync::RwLockWriteGuard<'_, RuleSet> {
        self.rules.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts delivery (resuming replays that were running) and indexing for a bus whose
    /// rules are loaded.
    pub async fn start(&self) -> anyhow::Result<()> {
        let specs = self.dispatch.specs(&self.rules());
        self.dispatch.start(specs).await?;
        crate::dispatch::replay::resume(&self.dispatch, &self.rules).await;
        self.indexer.start();
        self.delivery_indexer.start();
        Ok(())
    }

    /// Applies the bus's current rules to its running deliveries.
    pub async fn resync(&self) {
        // Built under the lock, synced without holding it across awaits.
        let specs = self.dispatch.specs(&self.rules());
        self.dispatch.sync(specs).await;
    }
}

/// Where the bus logs are kept.
#[derive(Clone)]
pub enum LogBackend {
    /// Segment files in each bus's directory.
    Embedded(SegmentedOptions),
    /// One JetStream stream per bus (`JetStreamLog`), through this connection.
    JetStream {
        client: async_nats::Client,
        options: JetStreamOptions,
    },
}

impl LogBackend {
    /// `Err` with the reason while the log backend cannot be reached (never for the
    /// embedded one).
    pub fn ready(&self) -> Result<(), String> {
        match self {
            LogBackend::Embedded(_) => Ok(()),
            LogBackend::JetStream { client, .. } => match client.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                state => Err(format!("JetStream is not connected ({state})")),
            },
        }
    }
}

pub struct Buses {
    root: PathBuf,
    backend: LogBackend,
    ports: Ports,
    open: RwLock<BTreeMap<String, Arc<Bus>>>,
    /// See [`Buses::lifecycle`].
    lifecycle: tokio::sync::Mutex<()>,
}

impl Buses {
    /// Opens the log of every bus the metadata store knows, creating `default` if needed.
    /// Each stored rule is checked again against this version's limits: one that fails is
    /// loaded inactive with the reason, never run (it may predate a limit).
    pub async fn open(
        meta: &MetaStore,
        root: PathBuf,
        backend: LogBackend,
        now_ms: i64,
        ports: Ports,
    ) -> anyhow::Result<Buses> {
        let mut settings = meta.list_buses().await?;
        if !settings.iter().any(|b| b.name == DEFAULT_BUS) {
            let default = BusSettings {
                name: DEFAULT_BUS.to_owned(),
                description: Some("the bus that always exists".to_owned()),
                retention_hours: DEFAULT_RETENTION_HOURS,
                schema_validation: SchemaValidation::Off,
            };
            meta.put_bus(&default, now_ms).await?;
            settings.push(default);
        }
        let buses = Buses::new(root, backend, ports);
        for s in settings {
            buses.install(s).await?;
        }
        for (rule, unreadable) in meta.list_rules().await? {
            let Some(bus) = buses.get(&rule.bus) else {
                tracing::warn!(bus = %rule.bus, rule = %rule.name, "rule of an unknown bus ignored");
                continue;
            };
            load_rule(&mut bus.rules_mut(), rule, unreadable);
        }
        Ok(buses)
    }

    /// No buses yet: each [`Buses::install`]ed one keeps its files under `root/<name>/`.
    pub fn new(root: PathBuf, backend: LogBackend, ports: Ports) -> Buses {
        Buses {
            root,
            backend,
            ports,
            open: RwLock::new(BTreeMap::new()),
            lifecycle: tokio::sync::Mutex::new(()),
        }
    }

    /// Held across the whole of a bus's `PUT` or `DELETE`. Each writes the metadata store and
    /// then opens or closes the bus's files; interleaved, a `PUT` reopened files a `DELETE` was
    /// closing (a locked index: 500) or installed a bus whose indexers never started (the next
    /// `DELETE` then waited for them forever).
    pub async fn lifecycle(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lifecycle.lock().await
    }

    /// What every bus's delivery uses.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    pub fn get(&self, name: &str) -> Option<Arc<Bus>> {
        self.read().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Bus>> {
        self.read().values().cloned().collect()
    }

    pub fn backend(&self) -> &LogBackend {
        &self.backend
    }

    /// Opens (or re-configures) a bus whose settings were just stored.
    pub async fn install(&self, settings: BusSettings) -> Result<Arc<Bus>, LogError> {
        let (log, rules, dispatch, indexer, delivery_indexer, announcer) = match self
            .get(&settings.name)
        {
            Some(existing) => (
                existing.log.clone(),
                existing.rules.clone(),
                existing.dispatch.clone(),
                existing.indexer.clone(),
                existing.delivery_indexer.clone(),
                existing.announcer.clone(),
            ),
            None => {
                let dir = self.root.join(&settings.name);
                let (log, incarnation) = self.open_log(&settings.name, &dir).await?;
                let journal = self.open_journal(&settings.name, &dir).await?;
                let journal_log = journal.log();
                let dispatch = BusDispatch::new(
                    settings.name.clone(),
                    incarnation,
                    log.clone(),
                    journal,
                    self.ports.clone(),
                );
                let indexer = Indexer::new(
                    settings.name.clone(),
                    log.clone(),
                    open_index(&dir.join("index"))?,
                    as_published,
                );
                let delivery_indexer = Indexer::new(
                    settings.name.clone(),
                    journal_log,
                    open_index(&dir.join("delivery-index"))?,
                    as_delivery,
                );
                let announcer = match &self.backend {
                    LogBackend::Embedded(_) => None,
                    LogBackend::JetStream { client, options } => {
                        let (d, i, j) =
                            (dispatch.clone(), indexer.clone(), delivery_indexer.clone());
                        let wake = move || {
                            d.wake();
                            i.wake();
                            j.wake();
                        };
                        let a =
                            Announcer::start(client.clone(), &options.prefix, &settings.name, wake)
                                .await?;
                        Some(Arc::new(a))
                    }
                };
                (
                    log,
                    Arc::default(),
                    dispatch,
                    indexer,
                    delivery_indexer,
                    announcer,
                )
            }
        };
        let bus = Arc::new(Bus {
            settings,
            log,
            rules,
            dispatch,
            indexer,
            delivery_indexer,
            announcer,
        });
        self.write().insert(bus.settings.name.clone(), bus.clone());
        Ok(bus)
    }

    /// The bus's log, and its incarnation: made with the log (its files, or its stream, whose
    /// creation time every node sees), so delivery ids of a bus deleted and made again never
    /// repeat the old ones, and are the same on every node.
    async fn open_log(
        &self,
        name: &str,
        dir: &std::path::Path,
    ) -> Result<(Arc<dyn LogStore>, String), LogError> {
        Ok(match &self.backend {
            LogBackend::Embedded(options) => {
                let log = SegmentedLog::open(&dir.join("log"), *options)?;
                (Arc::new(log), incarnation(name, dir)?)
            }
            LogBackend::JetStream { client, options } => {
                let js = async_nats::jetstream::new(client.clone());
                let log = JetStreamLog::open(js, name, options.clone()).await?;
                let made = format!("{name}.{:x}", log.created_ns());
                (Arc::new(log), made)
            }
        })
    }

    /// The bus's trace journal: segment files beside its log, or, with JetStream, a stream
    /// of its own (`<prefix>-journal_<bus>`) every node writes to and reads, so an event's
    /// trace shows each step whichever node took it.
    async fn open_journal(&self, name: &str, dir: &std::path::Path) -> Result<Journal, LogError> {
        match &self.backend {
            LogBackend::Embedded(_) => Journal::open(&dir.join("journal")),
            LogBackend::JetStream { client, options } => {
                let js = async_nats::jetstream::new(client.clone());
                let log = JetStreamLog::open(js, name, journal_options(options)).await?;
                Ok(Journal::on(Arc::new(log)))
            }
        }
    }

    /// Closes a deleted bus's log and removes its files (and its stream).
    pub async fn remove(&self, name: &str) -> Result<(), LogError> {
        let removed = self.write().remove(name);
        if let Some(bus) = removed {
            bus.dispatch.stop();
            bus.indexer.shutdown().await;
            bus.delivery_indexer.shutdown().await;
            bus.log.close().await?;
            bus.dispatch.journal.close().await?;
        }
        if let LogBackend::JetStream { client, options } = &self.backend {
            let js = async_nats::jetstream::new(client.clone());
            JetStreamLog::delete(&js, &options.prefix, name, options.timeout).await?;
            let journal = journal_options(options);
            JetStreamLog::delete(&js, &journal.prefix, name, options.timeout).await?;
        }
        let dir = self.root.join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LogError::Io {
                path: dir.display().to_string(),
                source,
            }),
        }
    }

    /// Stops delivery everywhere: in-flight deliveries get `grace` to finish, then every
    /// cursor is saved.
    pub async fn stop_delivery(&self, grace: std::time::Duration) {
        for bus in self.all() {
            bus.dispatch.shutdown(grace).await;
        }
    }

    /// Stops the indexers and closes every log and journal.
    pub async fn close_logs(&self) {
        for bus in self.all() {
            bus.indexer.shutdown().await;
            bus.delivery_indexer.shutdown().await;
            if let Err(e) = bus.dispatch.journal.close().await {
                tracing::error!(bus = %bus.settings.name, error = %e, "closing the delivery journal failed");
            }
            if let Err(e) = bus.log.close().await {
                tracing::error!(bus = %bus.settings.name, error = %e, "closing the bus log failed");
            }
        }
    }

    pub fn log_options(dedup_window_ms: i64, segment_bytes: u64) -> SegmentedOptions {
        SegmentedOptions {
            log: LogOptions { dedup_window_ms },
            segment_bytes,
            ..SegmentedOptions::default()
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Bus>>> {
        self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Bus>>> {
        self.open.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bus journal's stream: its own prefix, and no dedup (many steps share an event's key).
fn journal_options(log: &JetStreamOptions) -> JetStreamOptions {
    JetStreamOptions {
        prefix: format!("{}-journal", log.prefix),
        log: LogOptions { dedup_window_ms: 0 },
        ..log.clone()
    }
}

/// Puts a stored rule into a bus's rule set, checked again against this version's limits:
/// one that fails (or whose targets could not be read) is put inactive, with the reason.
pub fn load_rule(rules: &mut RuleSet, rule: StoredRule, unreadable: Option<String>) {
    let checked = match unreadable {
        Some(reason) => Err(reason),
        None => crate::rulespec::validate_stored(&rule),
    };
    let problem = match checked {
        Err(reason) => Some(reason),
        Ok(targets) => rules
            .put(rule.clone(), targets)
            .err()
            .map(|e| format!("pattern: {e}")),
    };
    if let Some(reason) = problem {
        tracing::error!(bus = %rule.bus, rule = %rule.name, reason = %reason, "stored rule breaks this version's limits; it is inactive until replaced");
        rules.put_inactive(rule, reason);
    }
}

/// The bus's incarnation: made with its files (and gone with them), so delivery ids of a
/// bus deleted and made again never repeat the old ones.
fn incarnation(bus: &str, dir: &std::path::Path) -> Result<String, LogError> {
    let path = dir.join("incarnation");
    let io = |source| LogError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let made = format!("{bus}.{:08x}", fastrand::u32(..));
    let tmp = dir.join("incarnation.tmp");
    std::fs::write(&tmp, &made).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(made)
}

fn open_index(dir: &std::path::Path) -> Result<EventIndex, LogError> {
    EventIndex::open(dir).map_err(|e| LogError::Io {
        path: dir.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}
