//! The delivery journal: every stage of every delivery, durably, per bus. It is a bus log of
//! its own (same segmented format, dedup off), keyed by the event's id so that an event's
//! whole story is one id lookup away.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_event_store::{
    LogError, LogOptions, LogStore, NewRecord, SegmentedLog, SegmentedOptions,
};
use tokio::sync::mpsc;

/// A stage of an event's life. The first three are facts of the stored event (shown in
/// its trace); the others are journaled as they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Received,
    Stored,
    /// One per rule the event matched when it was published.
    Matched,
    Transformed,
    Attempt,
    RetryScheduled,
    Delivered,
    DeadLettered,
    /// Ended unresolved because its rule or target was deleted; the reason is its `error`.
    Dropped,
    /// Accepted on a `warn` bus although it breaks its declared schema.
    SchemaViolation,
}

/// One step of an event's life: the one shape of a journal line as stored, of a step of
/// the trace API's timeline, and (with the event's id and source added) of a delivery
/// record in the delivery index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceStep {
    /// When: the journal record's time, not a field of the line.
    #[serde(skip)]
    pub at_ms: i64,
    pub stage: Stage,
    /// The event's offset in its bus: on every journal line; in a timeline, on `stored`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Empty when the step is not about one rule (`received`, `schema_violation`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the target answered, when it is worth showing (a function's stdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// The replay this delivery belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

impl TraceStep {
    /// A journal line about the event at `offset`.
    pub fn new(offset: u64, stage: Stage) -> TraceStep {
        TraceStep {
            offset: Some(offset),
            ..TraceStep::at(0, stage)
        }
    }

    /// A step at `at_ms`, about no offset, rule or target yet.
    pub fn at(at_ms: i64, stage: Stage) -> TraceStep {
        TraceStep {
            at_ms,
            offset: None,
            stage,
            rule: String::new(),
            target: String::new(),
            attempt: None,
            status: None,
            latency_ms: None,
            error: None,
            output: None,
            retry_in_ms: None,
            replay: None,
        }
    }
}

pub struct Journal {
    log: Arc<dyn LogStore>,
    /// Taken at close, which ends the writer once it has written what is queued.
    tx: std::sync::Mutex<Option<mpsc::Sender<NewRecord>>>,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Journal {
    /// A journal in segment files in `dir`.
    pub fn open(dir: &Path) -> Result<Journal, LogError> {
        let options = SegmentedOptions {
            // Many lines share one event id; none is a duplicate.
            log: LogOptions { dedup_window_ms: 0 },
            ..SegmentedOptions::default()
        };
        Ok(Journal::on(Arc::new(SegmentedLog::open(dir, options)?)))
    }

    /// A journal in `log`, whose dedup window must be 0 (shared by every node when it is a
    /// JetStream stream).
    pub fn on(log: Arc<dyn LogStore>) -> Journal {
        let (tx, mut rx) = mpsc::channel::<NewRecord>(16_384);
        let sink = log.clone();
        let writer = tokio::spawn(async move {
            // Batch whatever is waiting into one append (one fsync for all of it).
            let mut batch = Vec::with_capacity(1024);
            while rx.recv_many(&mut batch, 1024).await > 0 {
                if let Err(e) = sink.append(std::mem::take(&mut batch)).await {
                    tracing::error!(error = %e, "writing the delivery journal failed");
                }
            }
        });
        Journal {
            log,
            tx: std::sync::Mutex::new(Some(tx)),
            writer: std::sync::Mutex::new(Some(writer)),
        }
    }

    /// The journal's log, for indexing.
    pub fn log(&self) -> Arc<dyn LogStore> {
        self.log.clone()
    }

    /// Records one entry for the event `(source, id)`.
    pub async fn record(&self, source: &str, id: &str, entry: TraceStep) {
        let payload = match serde_json::to_vec(&entry) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "journal entry not serialisable");
                return;
            }
        };
        let record = NewRecord {
            source: source.to_owned(),
            id: id.to_owned(),
            received_at_ms: entry.at_ms,
            payload,
            matched_rules: Vec::new(),
        };
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let sent = match tx {
            Some(tx) => tx.send(record).await.is_ok(),
            None => false,
        };
        if !sent {
            tracing::warn!("delivery journal is closed; entry dropped");
        }
    }

    /// Every entry about the event at `offset` with this id and source, oldest first.
    pub async fn entries(
        &self,
        source: &str,
        id: &str,
        offset: u64,
    ) -> Result<Vec<TraceStep>, LogError> {
        let mut out: Vec<TraceStep> = self
            .log
            .find(id, Some(source))
            .await?
            .into_iter()
            .filter_map(|r| {
                let mut e: TraceStep = serde_json::from_slice(&r.payload).ok()?;
                e.at_ms = r.received_at_ms;
                (e.offset == Some(offset)).then_some(e)
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    pub async fn remove_before(&self, cutoff_ms: i64) -> Result<u64, LogError> {
        self.log.remove_before(cutoff_ms, u64::MAX).await
    }

    /// Writes what is queued, then closes the log.
    pub async fn close(&self) -> Result<(), LogError> {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.log.close().await
    }
}
