//! The schema registry as the server runs it: discovered schemas per (source, type), fed
//! off the publish path by a background task; declared schemas compiled once into
//! validators that the publish path consults; everything persisted in the metadata store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use switchyard_schema_registry::{Caps, Discovered, SchemaError, Validator};
use tokio::sync::mpsc;

use crate::meta::{MetaStore, SchemaSubject, SchemaVersionRow};
use switchyard_core::time::now_ms;

/// Events of one (source, type) in one publish request, with a few samples for discovery.
pub struct Sighting {
    pub source: String,
    pub ty: String,
    pub count: u64,
    pub at_ms: i64,
    /// Event JSON of up to [`SAMPLES`] of them.
    pub samples: Vec<Vec<u8>>,
}

/// Events per (source, type) per request that discovery looks at; the rest are counted.
pub const SAMPLES: usize = 8;

#[derive(Clone)]
pub struct Version {
    pub version: u32,
    pub explicit: bool,
    pub schema: Arc<Value>,
    pub created_at_ms: i64,
}

struct Subject {
    first_seen_ms: i64,
    last_seen_ms: i64,
    events: u64,
    /// Seen since the counters were last saved.
    unsaved: u64,
    discovered: Discovered,
    versions: Vec<Version>,
    /// The newest declared schema, compiled.
    validator: Option<Arc<Validator>>,
}

impl Subject {
    fn new(at_ms: i64) -> Subject {
        Subject {
            first_seen_ms: at_ms,
            last_seen_ms: at_ms,
            events: 0,
            unsaved: 0,
            discovered: Discovered::new(Caps::default()),
            versions: Vec::new(),
            validator: None,
        }
    }

    fn latest(&self) -> u32 {
        self.versions.last().map_or(0, |v| v.version)
    }

    /// Takes a stored version (they come in version order).
    fn apply(&mut self, row: &SchemaVersionRow) {
        let Ok(schema) = serde_json::from_str::<Value>(&row.schema) else {
            tracing::error!(source = %row.source, ty = %row.ty, version = row.version, "stored schema is not JSON");
            return;
        };
        if row.explicit {
            match Validator::compile(&schema) {
                Ok(v) => self.validator = Some(Arc::new(v)),
                Err(e) => {
                    tracing::error!(source = %row.source, ty = %row.ty, error = %e, "stored schema no longer compiles")
                }
            }
        } else if let Ok(d) = Discovered::resume(row.version, &schema, Caps::default()) {
            self.discovered = d;
        }
        self.versions.push(Version {
            version: row.version,
            explicit: row.explicit,
            schema: Arc::new(schema),
            created_at_ms: row.created_at_ms,
        });
    }
}

type Key = (String, String);

pub struct Schemas {
    subjects: Mutex<BTreeMap<Key, Subject>>,
    /// Most (source, type) pairs discovery tracks (`--max-schema-subjects`): past it,
    /// events of new pairs are still accepted but their schemas are not inferred, and
    /// `switchyard_schema_subjects_refused` counts them. Declared schemas are not capped.
    max_subjects: usize,
    refused: prometheus_client::metrics::counter::Counter,
    tx: mpsc::Sender<Sighting>,
    rx: Mutex<Option<mpsc::Receiver<Sighting>>>,
    /// Declaring and undeclaring take turns: each writes the store and memory in two steps,
    /// and interleaved, an undeclare could drop from memory a version a declare had just
    /// stored, whose number the next declare would then reuse (a UNIQUE violation).
    declaring: tokio::sync::Mutex<()>,
}

/// A (source, type) as the list shows it.
pub struct Summary {
    pub source: String,
    pub ty: String,
    pub latest_version: u32,
    pub explicit: bool,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub events: u64,
}

impl Schemas {
    /// Loads what the metadata store holds.
    pub async fn load(
        meta: &MetaStore,
        max_subjects: usize,
        refused: prometheus_client::metrics::counter::Counter,
    ) -> Result<Schemas, sqlx::Error> {
        let mut subjects: BTreeMap<Key, Subject> = BTreeMap::new();
        for s in meta.schema_subjects().await? {
            let mut subject = Subject::new(s.first_seen_ms);
            subject.last_seen_ms = s.last_seen_ms;
            subject.events = s.events;
            subjects.insert((s.source, s.ty), subject);
        }
        for row in meta.schema_versions().await? {
            let key = (row.source.clone(), row.ty.clone());
            let subject = subjects
                .entry(key)
                .or_insert_with(|| Subject::new(row.created_at_ms));
            subject.apply(&row);
        }
        let (tx, rx) = mpsc::channel(4096);
        Ok(Schemas {
            max_subjects,
            refused,
            subjects: Mutex::new(subjects),
            tx,
            rx: Mutex::new(Some(rx)),
            declaring: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Subject>> {
        self.subjects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The validator of the newest declared schema of (source, type).
    pub fn validator(&self, source: &str, ty: &str) -> Option<Arc<Validator>> {
        self.lock()
            .get(&(source.to_owned(), ty.to_owned()))
            .and_then(|s| s.validator.clone())
    }

    /// Hands sightings to discovery without waiting; when discovery is behind, the samples
    /// are dropped but the counts are kept.
    pub fn sighted(&self, sightings: Vec<Sighting>) {
        for s in sightings {
            if let Err(mpsc::error::TrySendError::Full(s)) = self.tx.try_send(s) {
                let mut subjects = self.lock();
                let Some(subject) = self.tracked(&mut subjects, (s.source, s.ty), s.at_ms) else {
                    continue;
                };
                subject.events += s.count;
                subject.unsaved += s.count;
                subject.last_seen_ms = s.at_ms;
            }
        }
    }

    /// The subject of a sighting, made when there is room for one more.
    fn tracked<'a>(
        &self,
        subjects: &'a mut BTreeMap<Key, Subject>,
        key: Key,
        at_ms: i64,
    ) -> Option<&'a mut Subject> {
        if !subjects.contains_key(&key) && subjects.len() >= self.max_subjects {
            self.refused.inc();
            return None;
        }
        Some(subjects.entry(key).or_insert_with(|| Subject::new(at_ms)))
    }

    pub fn list(&self) -> Vec<Summary> {
        self.lock()
            .iter()
            .map(|((source, ty), s)| Summary {
                source: source.clone(),
                ty: ty.clone(),
                latest_version: s.latest(),
                explicit: s.validator.is_some(),
                first_seen_ms: s.first_seen_ms,
                last_seen_ms: s.last_seen_ms,
                events: s.events,
            })
            .collect()
    }

    pub fn versions(&self, source: &str, ty: &str) -> Option<Vec<Version>> {
        self.lock()
            .get(&(source.to_owned(), ty.to_owned()))
            .map(|s| s.versions.clone())
    }

    /// Declares a schema; returns its version.
    pub async fn declare(
        &self,
        meta: &MetaStore,
        source: &str,
        ty: &str,
        schema: Value,
    ) -> Result<u32, DeclareError> {
        let validator = Validator::compile(&schema).map_err(DeclareError::Invalid)?;
        let _turn = self.declaring.lock().await;
        let now = now_ms();
        let row = {
            let mut subjects = self.lock();
            let subject = subjects
                .entry((source.to_owned(), ty.to_owned()))
                .or_insert_with(|| Subject::new(now));
            let version = subject.latest() + 1;
            subject.validator = Some(Arc::new(validator));
            subject.versions.push(Version {
                version,
                explicit: true,
                schema: Arc::new(schema.clone()),
                created_at_ms: now,
            });
            SchemaVersionRow {
                source: source.to_owned(),
                ty: ty.to_owned(),
                version,
                explicit: true,
                schema: schema.to_string(),
                created_at_ms: now,
            }
        };
        let stored = meta
            .insert_schema_version(&row)
            .await
            .map_err(DeclareError::Store)?;
        if !stored {
            // Another node stored this version number first.
            return Err(DeclareError::Store(sqlx::Error::Protocol(format!(
                "version {} of this schema was stored by another node at the same time; try again",
                row.version
            ))));
        }
        meta.changed().await;
        Ok(row.version)
    }

    /// Removes the declared versions; discovered ones stay. Returns whether there were any.
    pub async fn undeclare(
        &self,
        meta: &MetaStore,
        source: &str,
        ty: &str,
    ) -> Result<bool, sqlx::Error> {
        let _turn = self.declaring.lock().await;
        let removed = meta.delete_explicit_schemas(source, ty).await?;
        if let Some(subject) = self.lock().get_mut(&(source.to_owned(), ty.to_owned())) {
            subject.versions.retain(|v| !v.explicit);
            subject.validator = None;
        }
        meta.changed().await;
        Ok(removed > 0)
    }

    /// Takes the versions other nodes stored (discovered or declared; nodes sharing the
    /// metadata store): a (source, type) whose versions differ from the store's takes the
    /// store's, and discovery goes on from its newest.
    pub async fn reload(&self, meta: &MetaStore) -> Result<(), sqlx::Error> {
        let _turn = self.declaring.lock().await;
        let mut stored: BTreeMap<Key, Vec<SchemaVersionRow>> = BTreeMap::new();
        for row in meta.schema_versions().await? {
            stored
                .entry((row.source.clone(), row.ty.clone()))
                .or_default()
                .push(row);
        }
        let mut subjects = self.lock();
        for (key, subject) in subjects.iter_mut() {
            if !stored.contains_key(key) && subject.versions.iter().any(|v| v.explicit) {
                // Declared versions removed through another node, nothing discovered.
                subject.versions.clear();
                subject.validator = None;
                subject.discovered = Discovered::new(Caps::default());
            }
        }
        for (key, rows) in stored {
            let Some(first) = rows.first() else {
                continue;
            };
            let subject = subjects
                .entry(key)
                .or_insert_with(|| Subject::new(first.created_at_ms));
            let same = subject.versions.len() == rows.len()
                && subject
                    .versions
                    .iter()
                    .zip(&rows)
                    .all(|(v, r)| v.version == r.version && v.explicit == r.explicit);
            if same {
                continue;
            }
            subject.versions.clear();
            subject.validator = None;
            subject.discovered = Discovered::new(Caps::default());
            for row in &rows {
                subject.apply(row);
            }
        }
        Ok(())
    }

    /// Runs discovery and saves counters, until the process ends.
    pub fn start(self: &Arc<Self>, meta: MetaStore) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let me = self.clone();
        let store = meta.clone();
        tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                for row in me.discover(s) {
                    match store.insert_schema_version(&row).await {
                        Ok(true) => store.changed().await,
                        // Another node stored this version first: take the store's.
                        Ok(false) => {
                            if let Err(e) = me.reload(&store).await {
                                tracing::warn!(error = %e, "reloading schemas failed");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "saving a discovered schema failed"),
                    }
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                me.save_counters(&meta).await;
            }
        });
    }

    fn discover(&self, s: Sighting) -> Vec<SchemaVersionRow> {
        let datas: Vec<Value> = s
            .samples
            .iter()
            .filter_map(|json| serde_json::from_slice::<HashMap<String, Value>>(json).ok())
            .filter_map(|mut e| e.remove("data"))
            .collect();
        let mut subjects = self.lock();
        let Some(subject) = self.tracked(&mut subjects, (s.source.clone(), s.ty.clone()), s.at_ms)
        else {
            return Vec::new();
        };
        subject.events += s.count;
        subject.unsaved += s.count;
        subject.last_seen_ms = subject.last_seen_ms.max(s.at_ms);
        let mut rows = Vec::new();
        for data in &datas {
            if let Some(new) = subject.discovered.observe(data) {
                let version = subject.latest() + 1;
                subject.versions.push(Version {
                    version,
                    explicit: false,
                    schema: Arc::new(new.schema.clone()),
                    created_at_ms: s.at_ms,
                });
                rows.push(SchemaVersionRow {
                    source: s.source.clone(),
                    ty: s.ty.clone(),
                    version,
                    explicit: false,
                    schema: new.schema.to_string(),
                    created_at_ms: s.at_ms,
                });
            }
        }
        rows
    }

    /// Writes the event counters that changed.
    pub async fn save_counters(&self, meta: &MetaStore) {
        let dirty: Vec<SchemaSubject> = {
            let mut subjects = self.lock();
            subjects
                .iter_mut()
                .filter(|(_, s)| s.unsaved > 0)
                .map(|((source, ty), s)| {
                    let out = SchemaSubject {
                        source: source.clone(),
                        ty: ty.clone(),
                        first_seen_ms: s.first_seen_ms,
                        last_seen_ms: s.last_seen_ms,
                        events: s.unsaved,
                    };
                    s.unsaved = 0;
                    out
                })
                .collect()
        };
        for d in dirty {
            if let Err(e) = meta.record_schema_sightings(&d).await {
                tracing::error!(error = %e, "saving schema counters failed");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    #[error("{0}")]
    Invalid(SchemaError),
    #[error("storing the schema failed: {0}")]
    Store(sqlx::Error),
}
