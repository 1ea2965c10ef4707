//! Keeps each bus's event index in step with its log: reads what the index lacks, adds it,
//! and commits at least every second while events arrive (search sees an event within ~1 s).
//! The index is derived data: deleting its directory makes this rebuild it from the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_event_store::{EventIndex, IndexDoc, IndexError, LogStore, Record};
use tokio::sync::{Notify, watch};

const BATCH: usize = 1000;
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Turns a stored record into the JSON document the index sees.
pub type Shape = fn(&Record) -> Value;

/// Events are indexed as published.
pub fn as_published(r: &Record) -> Value {
    serde_json::from_slice(&r.payload).unwrap_or(Value::Null)
}

/// Delivery journal lines are indexed as delivery records: the line's fields, `outcome`
/// (its stage), and which event it is about.
pub fn as_delivery(r: &Record) -> Value {
    let mut v: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        if let Some(stage) = obj.get("stage").cloned() {
            obj.insert("outcome".into(), stage);
        }
        obj.insert("event_id".into(), Value::from(r.id.as_str()));
        obj.insert("event_source".into(), Value::from(r.source.as_str()));
    }
    v
}

pub struct Indexer {
    pub index: Arc<EventIndex>,
    shape: Shape,
    log: Arc<dyn LogStore>,
    bus: String,
    notify: Notify,
    stopped: watch::Sender<bool>,
    done: watch::Sender<bool>,
}

impl Indexer {
    pub fn new(
        bus: String,
        log: Arc<dyn LogStore>,
        index: EventIndex,
        shape: Shape,
    ) -> Arc<Indexer> {
        Arc::new(Indexer {
            index: Arc::new(index),
            shape,
            log,
            bus,
            notify: Notify::new(),
            stopped: watch::channel(false).0,
            done: watch::channel(false).0,
        })
    }

    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Offsets of the newest matches (below `before`), searched off the async threads.
    pub async fn newest(
        &self,
        filter: switchyard_event_store::Filter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, IndexError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.search(&filter, before, limit))
            .await
            .unwrap_or_else(|e| Err(IndexError::Unavailable(e.to_string())))
    }

    pub fn start(self: &Arc<Self>) {
        tokio::spawn(self.clone().run());
    }

    /// Stops after committing what was indexed.
    pub async fn shutdown(&self) {
        self.stopped.send_replace(true);
        self.notify.notify_one();
        let _ = self.done.subscribe().wait_for(|d| *d).await.map(|_| ());
    }

    /// Events stored but not yet searchable.
    pub fn lag(&self) -> u64 {
        self.log
            .bounds()
            .next
            .saturating_sub(self.index.indexed_upto())
    }

    async fn run(self: Arc<Self>) {
        let mut next = self.index.indexed_upto();
        let mut pending = false;
        let mut last_commit = Instant::now();
        let mut stopped = self.stopped.subscribe();
        loop {
            if *stopped.borrow() {
                break;
            }
            let records = match self.log.read(next, BATCH).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(bus = %self.bus, error = %e, "indexer cannot read the log");
                    // (A bus being closed, its stream deleted by another node, stops at once.)
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopped.changed() => {}
                    }
                    continue;
                }
            };
            if let Some(last) = records.last() {
                next = last.offset + 1;
                let values: Vec<Value> = records.iter().map(self.shape).collect();
                let docs: Vec<IndexDoc> = records
                    .iter()
                    .zip(&values)
                    .map(|(r, v)| IndexDoc {
                        offset: r.offset,
                        received_at_ms: r.received_at_ms,
                        event: v,
                        matched_rules: &r.matched_rules,
                    })
                    .collect();
                let index = self.index.clone();
                let added = tokio::task::block_in_place(|| index.add(&docs));
                if let Err(e) = added {
                    tracing::error!(bus = %self.bus, error = %e, "indexing failed");
                }
                pending = true;
            }
            let idle = records.len() < BATCH;
            if pending && (idle || last_commit.elapsed() >= COMMIT_EVERY) {
                self.commit(next);
                pending = false;
                last_commit = Instant::now();
            }
            if idle {
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stopped.changed() => {}
                }
                // Batch what arrives in the next moments into one commit.
                if last_commit.elapsed() < COMMIT_EVERY {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if pending {
            self.commit(next);
        }
        self.done.send_replace(true);
    }

    fn commit(&self, next: u64) {
        let index = self.index.clone();
        if let Err(e) = tokio::task::block_in_place(|| index.commit(next)) {
            tracing::error!(bus = %self.bus, error = %e, "committing the index failed");
        }
    }

    /// Drops index entries the log no longer holds.
    pub fn retain_from(&self, first: u64) {
        if let Err(e) = self.index.delete_before(first) {
            tracing::warn!(bus = %self.bus, error = %e, "index retention failed");
        }
    }
}
