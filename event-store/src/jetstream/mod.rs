//! A `LogStore` on NATS JetStream: one stream per bus, shared by every process of a cluster.
//!
//! # Layout
//!
//! The bus `orders` with the prefix `switchyard` is the stream `switchyard_orders` (file
//! storage, `replicas` copies, no limits: retention is ours) on the subjects
//! `switchyard.orders.>`. A record goes to `switchyard.orders.<h(id)>.<h(source)>`, `h` being
//! the xxh3-64 of the exact bytes in 16 hex digits, and its body is an envelope (see
//! `envelope`) holding source, id, `received_at_ms`, matched rules and payload: source and id
//! may hold any character, so they are never in subjects or headers. Offsets are stream
//! sequences minus one. They are dense because we never delete single messages (retention
//! purges a prefix) and a publish the server rejects takes no sequence; a purge keeps
//! `last_seq`, so offsets keep counting after everything was removed.
//!
//! # Dedup, across processes
//!
//! (With a dedup window of 0 — a trace journal, many records per key and none a duplicate —
//! records are published back to back with no lookup and no condition.)
//!
//! A record is a duplicate when the same `(source, id)` was stored with `received_at_ms`
//! above `received_at_ms - dedup_window_ms` (record time, not wall clock, so JetStream's
//! `Nats-Msg-Id` window is not used). Along one key, stored records have strictly rising
//! `received_at_ms` (a record is only stored when it is outside the window of every earlier
//! one), so the newest one alone decides: one lookup of the last message on the key's
//! subject (`STREAM.MSG.GET` with `last_by_subj`, answered by the stream leader, so it is read
//! after write). The publish then carries `Nats-Expected-Last-Subject-Sequence` = the sequence
//! that lookup saw (0 for none): if another process stored anything on that subject in
//! between, the server refuses ours ("wrong last sequence", 10071, no sequence consumed) and
//! we look up and decide again. The decision and the write are thus one compare-and-set per
//! key, which is what makes the dedup hold for concurrent writers; writers of different keys
//! never contend. A hash collision between two keys only puts them on one subject: the
//! stored source and id are always compared, a collided subject is scanned for the key's
//! newest record, and the compare-and-set still guards the subject as a whole.
//!
//! One `append` looks up its distinct keys concurrently (at most [`LOOKUP_CONCURRENCY`] at a
//! time, in order of first appearance) and decides every record in batch order as soon as its
//! key is known (in-batch duplicates against the batch's own earlier records). A new record is
//! published at once, so lookups and publishes overlap; the publishes go back to back on the
//! one connection, so they get ascending sequences, and their acks are awaited in order, at
//! most [`MAX_IN_FLIGHT`] outstanding. The rare record that needs the sequence of a publish of
//! its own batch (the same key stored twice in one batch, the second outside the first's
//! window) ends the round: the rest of the batch goes in the next round, after the acks, so
//! offsets still ascend in batch order. A refused publish is decided again in the next round;
//! if it is new after all, its offset comes after the other records of its round (the only
//! case where a batch's offsets do not ascend in batch order). After [`MAX_CONFLICT_ROUNDS`]
//! rounds with refusals the append fails as `Unavailable`.
//!
//! # Reads
//!
//! `read` uses ephemeral pull consumers (in memory, `AckPolicy::None`, starting by sequence)
//! fetched with no-wait batches: one request returns up to [`FETCH_BATCH`] messages. The
//! consumer is kept as a cursor keyed by the offset where it stopped (at most [`MAX_CURSORS`],
//! dropped after [`CURSOR_IDLE`] unused; the server removes it after
//! [`CURSOR_INACTIVE_THRESHOLD`]), so a sequential reader (the dispatcher reads 256 at a time
//! in a loop) pays one fetch per chunk rather than a consumer per chunk. Reading below the
//! first retained offset starts at the first retained one, which is what JetStream does for a
//! start sequence that was purged. `find` uses one such consumer filtered on the id's hash
//! (and the source's, when given) and compares the real id and source.
//!
//! # Bounds
//!
//! `bounds()` is synchronous, so it answers from a cache: read from stream info at open,
//! moved by this instance's appends, purges and reads (a read that sees records beyond the
//! cached `next` moves it), and re-read on demand by [`JetStreamLog::refresh`], since other
//! processes append and purge too.
//!
//! # Timeouts
//!
//! Every wait on the network is bounded by [`JetStreamOptions::timeout`] (5 s by default):
//! each JetStream API request (stream info, creation and deletion, message get, direct get,
//! purge, consumer creation and deletion), each publish hand-off (which may wait for the
//! context's in-flight ack permits) and each publish ack, each fetch request and the wait for
//! each message of a fetch. Expiry is `LogError::Unavailable`, as are refusals and connection
//! errors. No call waits forever, since each makes a bounded number of such waits: `append`
//! one lookup, one publish and one ack per record and round, with at most
//! [`MAX_CONFLICT_ROUNDS`] rounds lost to concurrent writers (the others each settle at least
//! one record); `read` at most `max / FETCH_BATCH + 1` fetches and one consumer creation, plus
//! a first fetch on a parked consumer, which gets [`PARKED_CURSOR_WAIT`] to answer; `find`
//! one consumer creation and deletion and `matches / FETCH_BATCH + 1` fetches;
//! `remove_before` one stream info, `log2(len) + 1` gets and one purge.
//!
//! # Files
//!
//! `mod.rs` holds the options, opening and deleting a stream, the bounds cache and the
//! `LogStore` impl, which hands the work to `append.rs` (key lookups, compare-and-set
//! publishes, acks), `read.rs` (cursors, fetches, `find`) and `retention.rs`
//! (`remove_before`). `envelope.rs` is the message body; `tests.rs` runs against a real server.
//!
//! [`LOOKUP_CONCURRENCY`]: append::LOOKUP_CONCURRENCY
//! [`MAX_IN_FLIGHT`]: append::MAX_IN_FLIGHT
//! [`MAX_CONFLICT_ROUNDS`]: append::MAX_CONFLICT_ROUNDS
//! [`FETCH_BATCH`]: read::FETCH_BATCH
//! [`MAX_CURSORS`]: read::MAX_CURSORS
//! [`CURSOR_IDLE`]: read::CURSOR_IDLE
//! [`CURSOR_INACTIVE_THRESHOLD`]: read::CURSOR_INACTIVE_THRESHOLD
//! [`PARKED_CURSOR_WAIT`]: read::PARKED_CURSOR_WAIT

mod append;
mod envelope;
mod read;
mod retention;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::DeleteStreamErrorKind;
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self as js, ErrorCode};
use async_trait::async_trait;

use crate::log::{Appended, Bounds, LogError, LogOptions, LogStats, LogStore, NewRecord, Record};

use read::Cursor;

/// JetStream's own dedup window (for `Nats-Msg-Id`, which we do not use): the server's
/// minimum (it refuses less; 0 would mean its default of two minutes).
const DUPLICATE_WINDOW: Duration = Duration::from_millis(100);

/// Options of the JetStream log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// Options every backend shares (the dedup window).
    pub log: LogOptions,
    /// Copies of each stream in the JetStream cluster, 1 to 5; used when the stream is
    /// created, an existing stream keeps its own.
    pub replicas: usize,
    /// Starts stream names (`<prefix>_<bus>`) and subjects (`<prefix>.<bus>.>`): ASCII letters,
    /// digits and `-`, at most 64 bytes. Deployments sharing a NATS account use different ones.
    pub prefix: String,
    /// The bound on every single wait on the network (see the module doc).
    pub timeout: Duration,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions {
            log: LogOptions::default(),
            replicas: 1,
            prefix: "switchyard".to_owned(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The JetStream-backed `LogStore` of one bus (see the module doc for the design).
pub struct JetStreamLog {
    js: js::Context,
    stream: stream::Stream,
    name: String,
    /// `<prefix>.<bus>`: every subject of the stream starts with it.
    base: String,
    options: JetStreamOptions,
    /// Whether the stream answers direct gets (ours do; one created elsewhere may not).
    direct: bool,
    bounds: Mutex<Bounds>,
    closed: AtomicBool,
    cursors: Mutex<Vec<Cursor>>,
    records: AtomicU64,
    flights: AtomicU64,
}

impl JetStreamLog {
    /// Opens the log of `bus`, creating its stream if there is none (another process creating
    /// it at the same moment is fine), and reads its bounds. Re-opening continues the offsets.
    ///
    /// Bus names are `[a-z0-9][a-z0-9_-]*`, at most 128 bytes; others are refused with
    /// `LogError::Io` of kind `InvalidInput`, as is a bad prefix or replica count. Each of
    /// the (at most three) requests is bounded by `options.timeout`.
    pub async fn open(
        js: js::Context,
        bus: &str,
        options: JetStreamOptions,
    ) -> Result<JetStreamLog, LogError> {
        let name = stream_name(&options.prefix, bus)?;
        if !(1..=5).contains(&options.replicas) {
            return Err(invalid(
                bus,
                format!("replicas must be 1 to 5, not {}", options.replicas),
            ));
        }
        let base = format!("{}.{bus}", options.prefix);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{base}.>")],
            storage: StorageType::File,
            num_replicas: options.replicas,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_age: Duration::ZERO,
            // We never set Nats-Msg-Id: the window only has to be as small as allowed.
            duplicate_window: DUPLICATE_WINDOW,
            allow_direct: true,
            ..Default::default()
        };
        let t = options.timeout;
        let created = within(t, "create stream", js.get_or_create_stream(config)).await?;
        let stream = match created {
            Ok(stream) => stream,
            // Lost a creation race to a process with another configuration: use theirs.
            Err(create) => match within(t, "get stream", js.get_stream(&name)).await? {
                Ok(stream) => stream,
                Err(_) => return Err(unavailable(&format!("create stream {name}"), create)),
            },
        };
        let info = stream.cached_info();
        if !info
            .config
            .subjects
            .iter()
            .any(|s| *s == format!("{base}.>"))
        {
            return Err(LogError::Unavailable {
                reason: format!(
                    "stream {name} exists with subjects {:?}, not {base}.>",
                    info.config.subjects
                ),
            });
        }
        let bounds = bounds_of(&info.state);
        let direct = info.config.allow_direct;
        Ok(JetStreamLog {
            js,
            stream,
            name,
            base,
            options,
            direct,
            bounds: Mutex::new(bounds),
            closed: AtomicBool::new(false),
            cursors: Mutex::new(Vec::new()),
            records: AtomicU64::new(0),
            flights: AtomicU64::new(0),
        })
    }

    /// Deletes the stream of `bus` and everything in it (bus deletion). Returns whether there
    /// was one. One request, bounded by `timeout`.
    pub async fn delete(
        js: &js::Context,
        prefix: &str,
        bus: &str,
        timeout: Duration,
    ) -> Result<bool, LogError> {
        let name = stream_name(prefix, bus)?;
        match within(timeout, "delete stream", js.delete_stream(&name)).await? {
            Ok(status) => Ok(status.success),
            Err(e) => match e.kind() {
                DeleteStreamErrorKind::JetStream(je)
                    if je.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(false)
                }
                _ => Err(unavailable(&format!("delete stream {name}"), e)),
            },
        }
    }

    /// When the stream was made, in nanoseconds since the Unix epoch: the same for every
    /// process that opens it, and new for a bus deleted and made again.
    pub fn created_ns(&self) -> i128 {
        self.stream.cached_info().created.unix_timestamp_nanos()
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.name
    }

    /// `<prefix>.<bus>`: the stream holds the subjects below it.
    pub fn subject_base(&self) -> &str {
        &self.base
    }

    /// Re-reads the bounds from the stream (other processes append and purge too), updates
    /// the cache behind [`LogStore::bounds`] and returns them. One request, bounded by
    /// `timeout`.
    pub async fn refresh(&self) -> Result<Bounds, LogError> {
        let info = within(self.timeout(), "stream info", self.stream.get_info())
            .await?
            .map_err(|e| unavailable("stream info", e))?;
        let fresh = bounds_of(&info.state);
        let mut b = self.lock_bounds();
        if fresh.next >= b.next {
            *b = fresh;
        } else if fresh.first.is_some() {
            // Our own appends landed after the info was taken: keep their `next`.
            b.first = fresh.first;
        }
        Ok(*b)
    }

    fn timeout(&self) -> Duration {
        self.options.timeout
    }

    fn lock_bounds(&self) -> std::sync::MutexGuard<'_, Bounds> {
        // Updates are small and do not panic; a poisoned lock still holds valid bounds.
        self.bounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subject of a record with this id and source.
    fn subject(&self, id: &str, source: &str) -> String {
        format!("{}.{}.{}", self.base, hash(id), hash(source))
    }

    fn corrupt(&self, offset: u64, reason: String) -> LogError {
        LogError::Corrupt {
            path: format!("jetstream stream {}", self.name),
            position: offset,
            reason,
        }
    }
}

#[async_trait]
impl LogStore for JetStreamLog {
    /// See the module doc. A failed append (`Unavailable`) may have stored part of the
    /// batch; appending it again is safe, the stored part comes back as duplicates.
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<Appended>, LogError> {
        self.append_batch(records).await
    }

    async fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        self.read_from(from, max).await
    }

    /// Newest first; at most [`FIND_LIMIT`] records (the newest).
    ///
    /// [`FIND_LIMIT`]: read::FIND_LIMIT
    async fn find(&self, id: &str, source: Option<&str>) -> Result<Vec<Record>, LogError> {
        self.find_records(id, source).await
    }

    fn bounds(&self) -> Bounds {
        *self.lock_bounds()
    }

    /// Finds the boundary by binary search over direct gets, which assumes
    /// `received_at_ms` does not decrease along the log (true for one writer; with several,
    /// within their clock skew), then purges the stream up to it.
    async fn remove_before(&self, cutoff_ms: i64, keep_from: u64) -> Result<u64, LogError> {
        self.purge_before(cutoff_ms, keep_from).await
    }

    /// Refuses appends from now on; reads still work. Every append was acknowledged when
    /// it returned, so there is nothing to flush. Parked read consumers are left to the
    /// server, which removes them after [`CURSOR_INACTIVE_THRESHOLD`].
    ///
    /// [`CURSOR_INACTIVE_THRESHOLD`]: read::CURSOR_INACTIVE_THRESHOLD
    async fn close(&self) -> Result<(), LogError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    /// `records`: new records stored by this instance; `syncs`: rounds of publishes whose
    /// acks were awaited together, so `records / syncs` is the pipelined group size.
    fn stats(&self) -> LogStats {
        LogStats {
            records: self.records.load(Ordering::Relaxed),
            syncs: self.flights.load(Ordering::Relaxed),
        }
    }
}

/// The stream name of `bus` under `prefix`, checking both.
fn stream_name(prefix: &str, bus: &str) -> Result<String, LogError> {
    let prefix_ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-');
    if !prefix_ok {
        return Err(invalid(
            bus,
            format!("the JetStream prefix {prefix:?} is not [A-Za-z0-9-]{{1,64}}"),
        ));
    }
    let bus_ok = bus.len() <= 128
        && bus
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && bus
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
    if !bus_ok {
        return Err(invalid(
            bus,
            format!("the bus name {bus:?} is not [a-z0-9][a-z0-9_-]* (at most 128 bytes)"),
        ));
    }
    // The prefix has no `_`, so the first one separates prefix and bus: names are unique.
    Ok(format!("{prefix}_{bus}"))
}

fn invalid(bus: &str, message: String) -> LogError {
    LogError::Io {
        path: format!("jetstream bus {bus}"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
    }
}

fn bounds_of(state: &stream::State) -> Bounds {
    Bounds {
        first: (state.messages > 0).then(|| state.first_sequence.saturating_sub(1)),
        next: state.last_sequence,
    }
}

/// The subject token of an id or source: xxh3-64 of its bytes in hex.
fn hash(s: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(s.as_bytes()))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable {
        reason: format!("{what}: {e}"),
    }
}

/// `fut`, or `Unavailable` if it takes longer than `timeout`.
async fn within<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = T>,
) -> Result<T, LogError> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| LogError::Unavailable {
            reason: format!("{what}: no answer from JetStream within {timeout:?}"),
        })
}
