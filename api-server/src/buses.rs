//! The open buses: settings from the metadata store, each with its log. The publish path
//! reads from here and never touches SQL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use switchyard_event_store::{LogError, LogOptions, LogStore, SegmentedLog, SegmentedOptions};

use crate::meta::{BusSettings, MetaStore, SchemaValidation};

pub const DEFAULT_BUS: &str = "default";
pub const DEFAULT_RETENTION_HOURS: u32 = 168;

pub struct Bus {
    pub settings: BusSettings,
    pub log: Arc<dyn LogStore>,
}

pub struct Buses {
    root: PathBuf,
    options: SegmentedOptions,
    open: RwLock<BTreeMap<String, Arc<Bus>>>,
}

impl Buses {
    /// Opens the log of every bus the metadata store knows, creating `default` if needed.
    pub async fn open(
        meta: &MetaStore,
        root: PathBuf,
        options: SegmentedOptions,
        now_ms: i64,
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
        let buses = Buses {
            root,
            options,
            open: RwLock::new(BTreeMap::new()),
        };
        for s in settings {
            buses.install(s)?;
        }
        Ok(buses)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Bus>> {
        self.read().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Bus>> {
        self.read().values().cloned().collect()
    }

    /// Opens (or re-configures) a bus whose settings were just stored.
    pub fn install(&self, settings: BusSettings) -> Result<Arc<Bus>, LogError> {
        let log = match self.get(&settings.name) {
            Some(existing) => existing.log.clone(),
            None => Arc::new(SegmentedLog::open(
                &self.root.join(&settings.name),
                self.options,
            )?),
        };
        let bus = Arc::new(Bus { settings, log });
        self.write().insert(bus.settings.name.clone(), bus.clone());
        Ok(bus)
    }

    /// Closes a deleted bus's log and removes its files.
    pub async fn remove(&self, name: &str) -> Result<(), LogError> {
        let removed = self.write().remove(name);
        if let Some(bus) = removed {
            bus.log.close().await?;
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

    pub async fn close_all(&self) {
        for bus in self.all() {
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
