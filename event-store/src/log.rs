//! The `LogStore` boundary: what every bus log backend provides.

use async_trait::async_trait;

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub source: String,
    pub id: String,
    /// When the server received the event (milliseconds since the Unix epoch).
    pub received_at_ms: i64,
    /// The event in CloudEvents JSON format.
    pub payload: Vec<u8>,
    /// Names of the rules the event matched when it was published.
    pub matched_rules: Vec<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub received_at_ms: i64,
    pub source: String,
    pub id: String,
    pub payload: Vec<u8>,
    pub matched_rules: Vec<String>,
}

/// What happened to one appended record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this offset.
    New { offset: u64 },
    /// The same `(source, id)` was stored within the dedup window, at this offset; nothing
    /// was stored.
    Duplicate { offset: u64 },
}

impl Appended {
    pub fn offset(self) -> u64 {
        match self {
            Appended::New { offset } | Appended::Duplicate { offset } => offset,
        }
    }
}

/// The range of offsets a log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// The oldest retained offset; `None` when the log holds nothing.
    pub first: Option<u64>,
    /// The offset the next new record will get.
    pub next: u64,
}

impl Bounds {
    pub fn len(&self) -> u64 {
        self.first.map_or(0, |first| self.next - first)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest offset, if any.
    pub fn last(&self) -> Option<u64> {
        self.first.map(|_| self.next - 1)
    }
}

/// Options shared by every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A record whose `(source, id)` was stored less than this long ago is a duplicate.
    pub dedup_window_ms: i64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            dedup_window_ms: 24 * 3600 * 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log io error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("log corrupt at {path} position {position}: {reason}")]
    Corrupt {
        path: String,
        position: u64,
        reason: String,
    },
    #[error("the log is closed")]
    Closed,
    /// The log's server (JetStream) could not be reached, did not answer in time or refused
    /// the request; trying again later may succeed.
    #[error("log backend unavailable: {reason}")]
    Unavailable { reason: String },
}

/// An append-only, offset-addressed log of events: one per bus.
///
/// Appends are durable when they return. Offsets are dense and increasing; retention removes
/// a prefix. Every backend passes the suite in `testsuite`.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Appends records in order, deduplicating by `(source, id)` within the dedup window
    /// (also within the batch itself); returns once the new records are durable.
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<Appended>, LogError>;

    /// Reads up to `max` records starting at `from` (or at the first retained offset, if
    /// `from` was removed by retention).
    async fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, LogError>;

    /// All retained records with this id (and source, when given), newest first.
    async fn find(&self, id: &str, source: Option<&str>) -> Result<Vec<Record>, LogError>;

    /// The offsets the log holds now.
    fn bounds(&self) -> Bounds;

    /// Removes records received before `cutoff_ms` whose offsets are below `keep_from` (a
    /// record still needed, by a pending delivery, keeps everything after it), at the
    /// backend's granularity (the embedded log drops whole segments). Returns how many
    /// records were removed.
    async fn remove_before(&self, cutoff_ms: i64, keep_from: u64) -> Result<u64, LogError>;

    /// Flushes and stops accepting appends.
    async fn close(&self) -> Result<(), LogError>;

    /// Counters since the log was opened.
    fn stats(&self) -> LogStats {
        LogStats::default()
    }
}

/// How a log has been working: with group commit, `records` / `syncs` is the group size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Records made durable (duplicates excluded).
    pub records: u64,
    /// Durability barriers (fdatasync calls) issued for them.
    pub syncs: u64,
}

/// The hash that keys the id index: of the id alone, so lookups without a source work.
pub(crate) fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}
