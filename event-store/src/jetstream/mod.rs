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

mod envelope;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{Future, IntoFuture as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{DeleteStreamErrorKind, PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::stream::{
    self, DirectGetErrorKind, LastRawMessageErrorKind, StorageType,
};
use async_nats::jetstream::{self as js, ErrorCode};
use async_trait::async_trait;
use futures_util::StreamExt as _;

use crate::log::{Appended, Bounds, LogError, LogOptions, LogStats, LogStore, NewRecord, Record};

/// Key lookups of one `append` in flight at once.
const LOOKUP_CONCURRENCY: usize = 64;
/// Publishes of one `append` awaiting their ack at once.
const MAX_IN_FLIGHT: usize = 512;
/// Rounds of one `append` that may see publishes refused by concurrent writers before it
/// gives up with `LogError::Unavailable`.
const MAX_CONFLICT_ROUNDS: usize = 16;
/// Messages asked for by one fetch request.
const FETCH_BATCH: usize = 1024;
/// Read cursors (consumers) kept per log.
const MAX_CURSORS: usize = 16;
/// A cursor unused this long is dropped rather than reused: well before the server removes
/// its consumer ([`CURSOR_INACTIVE_THRESHOLD`]).
const CURSOR_IDLE: Duration = Duration::from_secs(30);
/// The first fetch from a parked cursor waits at most this long for an answer (a no-wait fetch
/// is answered at once; a lost consumer never), then the read starts over with a new consumer.
const PARKED_CURSOR_WAIT: Duration = Duration::from_secs(1);
/// The server removes a read consumer nobody pulled from this long.
const CURSOR_INACTIVE_THRESHOLD: Duration = Duration::from_secs(120);
/// The server removes a `find` consumer nobody pulled from this long (`find` deletes it
/// itself; this covers a `find` that failed half-way).
const FIND_INACTIVE_THRESHOLD: Duration = Duration::from_secs(10);
/// JetStream's own dedup window (for `Nats-Msg-Id`, which we do not use): the server's
/// minimum (it refuses less; 0 would mean its default of two minutes).
const DUPLICATE_WINDOW: Duration = Duration::from_millis(100);
/// `find` returns at most this many records: the newest ones.
const FIND_LIMIT: usize = 1000;

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

/// A read consumer parked where it stopped.
struct Cursor {
    consumer: PullConsumer,
    /// The offset the consumer delivers next (or a later one, if that was purged).
    next: u64,
    used: Instant,
}

/// What one `append` knows about a key: the compare-and-set state of its subject and the
/// key's newest stored record.
#[derive(Debug, Clone, Copy)]
struct KeyState {
    /// Sequence of the last message on the key's subject, 0 for none.
    subject_seq: u64,
    /// Offset and `received_at_ms` of the key's newest stored record.
    newest: Option<(u64, i64)>,
}

/// A record of an `append`, while it runs.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Open,
    Done(Appended),
    /// A duplicate of the record at this batch index, published in the same round.
    DupOf(usize),
}

type Key<'a> = (&'a str, &'a str);

/// The state of one `append`.
struct Progress<'a> {
    /// What is known of each key.
    states: HashMap<Key<'a>, KeyState>,
    /// Of each record of the batch.
    outcome: Vec<Outcome>,
    /// Records whose publish was refused in this round.
    refused: Vec<usize>,
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

    fn lock_cursors(&self) -> std::sync::MutexGuard<'_, Vec<Cursor>> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Decodes the message at `seq`.
    fn record(&self, seq: u64, body: &[u8]) -> Result<Record, LogError> {
        let offset = seq.saturating_sub(1);
        let b = envelope::decode(body).map_err(|reason| self.corrupt(offset, reason))?;
        Ok(Record {
            offset,
            received_at_ms: b.received_at_ms,
            source: b.source.to_owned(),
            id: b.id.to_owned(),
            payload: b.payload.to_vec(),
            matched_rules: b.matched_rules.into_iter().map(str::to_owned).collect(),
        })
    }

    /// The compare-and-set state of `key`'s subject and the key's newest record.
    async fn lookup(&self, subject: &str, (source, id): Key<'_>) -> Result<KeyState, LogError> {
        let got = within(
            self.timeout(),
            "get last message",
            self.stream.get_last_raw_message_by_subject(subject),
        )
        .await?;
        let msg = match got {
            Ok(msg) => msg,
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                return Ok(KeyState {
                    subject_seq: 0,
                    newest: None,
                });
            }
            Err(e) => return Err(unavailable("get last message", e)),
        };
        let offset = msg.sequence.saturating_sub(1);
        let body = envelope::decode(&msg.payload).map_err(|r| self.corrupt(offset, r))?;
        let newest = if body.source == source && body.id == id {
            Some((offset, body.received_at_ms))
        } else {
            // Another key hashes to this subject: find this key's newest record on it.
            self.scan(subject, |r| r.source == source && r.id == id)
                .await?
                .first()
                .map(|r| (r.offset, r.received_at_ms))
        };
        Ok(KeyState {
            subject_seq: msg.sequence,
            newest,
        })
    }

    /// Without a dedup window (a trace journal: many records per key, none a duplicate):
    /// every record published back to back, no lookups, no compare-and-set; the acks are
    /// awaited in order, at most [`MAX_IN_FLIGHT`] outstanding.
    async fn append_all(
        &self,
        records: &[NewRecord],
        subjects: &[String],
    ) -> Result<Vec<Appended>, LogError> {
        let mut out = Vec::with_capacity(records.len());
        let mut pending: VecDeque<PublishAckFuture> = VecDeque::new();
        for (record, subject) in records.iter().zip(subjects) {
            if pending.len() >= MAX_IN_FLIGHT
                && let Some(ack) = pending.pop_front()
            {
                out.push(self.acked_new(ack).await?);
            }
            pending.push_back(self.send(subject, None, record).await?);
        }
        self.flights.fetch_add(1, Ordering::Relaxed);
        while let Some(ack) = pending.pop_front() {
            out.push(self.acked_new(ack).await?);
        }
        Ok(out)
    }

    /// A publish without a condition, acknowledged: where it was stored.
    async fn acked_new(&self, ack: PublishAckFuture) -> Result<Appended, LogError> {
        let seq = self
            .acked(ack)
            .await?
            .ok_or_else(|| LogError::Unavailable {
                reason: "an unconditional publish was refused".to_owned(),
            })?;
        let offset = seq.saturating_sub(1);
        self.records.fetch_add(1, Ordering::Relaxed);
        self.stored(offset);
        Ok(Appended::New { offset })
    }

    /// Publishes `record` on `subject`, if the subject's last sequence is `expected` when
    /// that is given.
    async fn send(
        &self,
        subject: &str,
        expected: Option<u64>,
        record: &NewRecord,
    ) -> Result<PublishAckFuture, LogError> {
        let mut headers = HeaderMap::new();
        if let Some(expected) = expected {
            headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string());
        }
        let body = envelope::encode(record);
        within(
            self.timeout(),
            "publish",
            self.js
                .publish_with_headers(subject.to_owned(), headers, body.into()),
        )
        .await?
        .map_err(|e| unavailable("publish", e))
    }

    /// The sequence of an acknowledged publish; `None` when the server refused it because
    /// the subject moved on (a concurrent writer).
    async fn acked(&self, ack: PublishAckFuture) -> Result<Option<u64>, LogError> {
        match within(self.timeout(), "publish ack", ack.into_future()).await? {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(unavailable("publish ack", e)),
        }
    }

    /// Records the answer to the publish of record `i` (key `key`, received at `at`):
    /// its sequence, or `None` if it was refused.
    fn settle<'a>(
        &self,
        progress: &mut Progress<'a>,
        i: usize,
        key: Key<'a>,
        at: i64,
        seq: Option<u64>,
    ) {
        let Some(seq) = seq else {
            // Someone else wrote on the subject: look it up again.
            progress.states.remove(&key);
            progress.refused.push(i);
            return;
        };
        let offset = seq.saturating_sub(1);
        progress.outcome[i] = Outcome::Done(Appended::New { offset });
        progress.states.insert(
            key,
            KeyState {
                subject_seq: seq,
                newest: Some((offset, at)),
            },
        );
        self.records.fetch_add(1, Ordering::Relaxed);
        self.stored(offset);
    }

    /// Notes an acknowledged new record at `offset`.
    fn stored(&self, offset: u64) {
        let mut b = self.lock_bounds();
        if b.first.is_none() {
            // Nothing below the cached `next` was retained; if other processes appended in
            // between, their records come first.
            b.first = Some(b.next.min(offset));
        }
        b.next = b.next.max(offset + 1);
    }

    /// Notes what a read from `from` returned.
    fn saw(&self, from: u64, records: &[Record]) {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return;
        };
        let mut b = self.lock_bounds();
        b.next = b.next.max(last.offset + 1);
        match b.first {
            // Everything before `first.offset` is gone (retention removes prefixes only).
            Some(f) if first.offset > from && f < first.offset => b.first = Some(first.offset),
            Some(_) => {}
            None => {
                // Nothing was retained below the cached `next`: if the read started there or
                // below, it started at the first record.
                if from <= first.offset {
                    b.first = Some(first.offset);
                }
            }
        }
    }

    /// Fetches up to `want` messages (one no-wait fetch request) and decodes them; each
    /// wait on the server is bounded by `t`.
    async fn fetch(
        &self,
        consumer: &PullConsumer,
        want: usize,
        t: Duration,
    ) -> Result<Vec<Record>, LogError> {
        let mut batch = within(t, "fetch", consumer.fetch().max_messages(want).messages())
            .await?
            .map_err(|e| unavailable("fetch", e))?;
        let mut out = Vec::with_capacity(want);
        while let Some(msg) = within(t, "fetch", batch.next()).await? {
            let msg = msg.map_err(|e| unavailable("fetch", e))?;
            let seq = msg
                .info()
                .map_err(|e| unavailable("fetch: message metadata", e))?
                .stream_sequence;
            out.push(self.record(seq, &msg.payload)?);
        }
        Ok(out)
    }

    /// A new read consumer starting at `from`.
    async fn new_cursor(&self, from: u64) -> Result<Cursor, LogError> {
        let config = pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.saturating_add(1),
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: CURSOR_INACTIVE_THRESHOLD,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        };
        let consumer = within(
            self.timeout(),
            "create consumer",
            self.stream.create_consumer(config),
        )
        .await?
        .map_err(|e| unavailable("create consumer", e))?;
        Ok(Cursor {
            consumer,
            next: from,
            used: Instant::now(),
        })
    }

    fn take_cursor(&self, from: u64) -> Option<Cursor> {
        let mut cursors = self.lock_cursors();
        cursors.retain(|c| c.used.elapsed() < CURSOR_IDLE);
        let i = cursors.iter().position(|c| c.next == from)?;
        Some(cursors.swap_remove(i))
    }

    fn put_cursor(&self, cursor: Cursor) {
        let mut cursors = self.lock_cursors();
        cursors.push(cursor);
        if cursors.len() > MAX_CURSORS
            && let Some(oldest) = cursors
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.used)
                .map(|(i, _)| i)
        {
            // Its consumer goes away on the server after the inactive threshold.
            cursors.swap_remove(oldest);
        }
    }

    /// Reads through `cursor` until `out` holds `max` records or the stream has no more. The
    /// first fetch waits at most `first_wait`, the others the full timeout.
    async fn fill(
        &self,
        cursor: &mut Cursor,
        max: usize,
        out: &mut Vec<Record>,
        first_wait: Duration,
    ) -> Result<(), LogError> {
        cursor.used = Instant::now();
        let mut wait = first_wait;
        while out.len() < max {
            let want = (max - out.len()).min(FETCH_BATCH);
            let got = self.fetch(&cursor.consumer, want, wait).await?;
            wait = self.timeout();
            let n = got.len();
            if let Some(last) = got.last() {
                cursor.next = last.offset + 1;
            }
            out.extend(got);
            if n < want {
                break;
            }
        }
        Ok(())
    }

    /// The retained records on the subjects matching `filter` that pass `keep`, newest
    /// first, at most [`FIND_LIMIT`] (the newest).
    async fn scan(
        &self,
        filter: &str,
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<Record>, LogError> {
        let config = pull::Config {
            filter_subject: filter.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: FIND_INACTIVE_THRESHOLD,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        };
        let consumer = within(
            self.timeout(),
            "create consumer",
            self.stream.create_consumer(config),
        )
        .await?
        .map_err(|e| unavailable("create consumer", e))?;
        let mut left = consumer.cached_info().num_pending;
        let mut newest: VecDeque<Record> = VecDeque::new();
        let mut result = Ok(());
        while left > 0 {
            let want = usize::try_from(left).map_or(FETCH_BATCH, |l| l.min(FETCH_BATCH));
            let got = match self.fetch(&consumer, want, self.timeout()).await {
                Ok(got) => got,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if got.is_empty() {
                break;
            }
            left = left.saturating_sub(got.len() as u64);
            for r in got.into_iter().filter(|r| keep(r)) {
                newest.push_back(r);
                if newest.len() > FIND_LIMIT {
                    newest.pop_front();
                }
            }
        }
        // Best effort: the server drops it after the inactive threshold anyway.
        let name = consumer.cached_info().name.clone();
        let _ = within(
            self.timeout(),
            "delete consumer",
            self.stream.delete_consumer(&name),
        )
        .await;
        result?;
        Ok(newest.into_iter().rev().collect())
    }

    /// `received_at_ms` of the record at `offset`; `None` if it is gone.
    async fn received_at(&self, offset: u64) -> Result<Option<i64>, LogError> {
        let t = self.timeout();
        let body = if self.direct {
            match within(t, "direct get", self.stream.direct_get(offset + 1)).await? {
                Ok(msg) => msg.payload,
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok(None),
                Err(e) => return Err(unavailable("direct get", e)),
            }
        } else {
            // A stream created elsewhere without direct gets: ask the leader.
            match within(t, "get message", self.stream.get_raw_message(offset + 1)).await? {
                Ok(msg) => msg.payload,
                Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                    return Ok(None);
                }
                Err(e) => return Err(unavailable("get message", e)),
            }
        };
        envelope::decode(&body)
            .map(|b| Some(b.received_at_ms))
            .map_err(|r| self.corrupt(offset, r))
    }
}

#[async_trait]
impl LogStore for JetStreamLog {
    /// See the module doc. A failed append (`Unavailable`) may have stored part of the
    /// batch; appending it again is safe, the stored part comes back as duplicates.
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<Appended>, LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let window = self.options.log.dedup_window_ms;
        let subjects: Vec<String> = records
            .iter()
            .map(|r| self.subject(&r.id, &r.source))
            .collect();
        if window <= 0 {
            return self.append_all(&records, &subjects).await;
        }
        let key = |i: usize| -> Key<'_> { (records[i].source.as_str(), records[i].id.as_str()) };
        let mut progress = Progress {
            states: HashMap::new(),
            outcome: vec![Outcome::Open; records.len()],
            refused: Vec::new(),
        };
        let mut todo: Vec<usize> = (0..records.len()).collect();
        let mut conflict_rounds = 0;

        while !todo.is_empty() {
            // The keys not known yet are looked up concurrently, in order of first appearance;
            // each record is decided, in batch order, as soon as its key is known, and a new
            // one is published right away (lookups and publishes overlap).
            let mut asked = HashSet::new();
            let missing: Vec<usize> = todo
                .iter()
                .copied()
                .filter(|&i| !progress.states.contains_key(&key(i)) && asked.insert(key(i)))
                .collect();
            let mut lookups = futures_util::stream::iter(missing)
                .map(|i| {
                    let subject = &subjects[i];
                    async move { self.lookup(subject, key(i)).await.map(|s| (i, s)) }
                })
                .buffered(LOOKUP_CONCURRENCY);
            let mut in_round: HashMap<Key<'_>, usize> = HashMap::new();
            let mut pending: VecDeque<(usize, PublishAckFuture)> = VecDeque::new();
            let mut next_round: Vec<usize> = Vec::new();
            for (pos, &i) in todo.iter().enumerate() {
                let at = records[i].received_at_ms;
                if let Some(&j) = in_round.get(&key(i)) {
                    if records[j].received_at_ms > at.saturating_sub(window) {
                        progress.outcome[i] = Outcome::DupOf(j);
                        continue;
                    }
                    // New again within the batch: it needs `j`'s sequence, so the round ends.
                    next_round.extend_from_slice(&todo[pos..]);
                    break;
                }
                let state = loop {
                    if let Some(state) = progress.states.get(&key(i)) {
                        break *state;
                    }
                    let Some(found) = lookups.next().await else {
                        return Err(LogError::Unavailable {
                            reason: "append: a key was not looked up".to_owned(),
                        });
                    };
                    let (j, state) = found?;
                    progress.states.insert(key(j), state);
                };
                match state.newest {
                    Some((offset, newest_at)) if newest_at > at.saturating_sub(window) => {
                        progress.outcome[i] = Outcome::Done(Appended::Duplicate { offset });
                    }
                    _ => {
                        if pending.len() >= MAX_IN_FLIGHT
                            && let Some((j, ack)) = pending.pop_front()
                        {
                            let seq = self.acked(ack).await?;
                            self.settle(&mut progress, j, key(j), records[j].received_at_ms, seq);
                        }
                        in_round.insert(key(i), i);
                        let ack = self
                            .send(&subjects[i], Some(state.subject_seq), &records[i])
                            .await?;
                        pending.push_back((i, ack));
                    }
                }
            }
            drop(lookups);
            if !in_round.is_empty() {
                self.flights.fetch_add(1, Ordering::Relaxed);
            }
            while let Some((j, ack)) = pending.pop_front() {
                let seq = self.acked(ack).await?;
                self.settle(&mut progress, j, key(j), records[j].received_at_ms, seq);
            }

            // Settle in-batch duplicates; what depended on a refused publish goes again.
            let refused = std::mem::take(&mut progress.refused);
            if !refused.is_empty() {
                conflict_rounds += 1;
                if conflict_rounds > MAX_CONFLICT_ROUNDS {
                    return Err(LogError::Unavailable {
                        reason: format!(
                            "append: publishes refused by concurrent writers in \
                             {MAX_CONFLICT_ROUNDS} rounds"
                        ),
                    });
                }
            }
            next_round.extend(refused);
            let outcome = &mut progress.outcome;
            for &i in &todo {
                if let Outcome::DupOf(j) = outcome[i] {
                    match outcome[j] {
                        Outcome::Done(done) => {
                            outcome[i] = Outcome::Done(Appended::Duplicate {
                                offset: done.offset(),
                            });
                        }
                        _ => {
                            outcome[i] = Outcome::Open;
                            next_round.push(i);
                        }
                    }
                }
            }
            next_round.sort_unstable();
            next_round.dedup();
            todo = next_round;
        }

        progress
            .outcome
            .into_iter()
            .map(|o| match o {
                Outcome::Done(done) => Ok(done),
                _ => Err(LogError::Unavailable {
                    reason: "append: a record was left undecided".to_owned(),
                }),
            })
            .collect()
    }

    async fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let reused = match self.take_cursor(from) {
            // A no-wait fetch is answered at once; a consumer the server lost (restart, leader
            // change) is not answered at all, so a parked one gets a shorter first wait.
            Some(mut cursor) => {
                let wait = self.timeout().min(PARKED_CURSOR_WAIT);
                match self.fill(&mut cursor, max, &mut out, wait).await {
                    Ok(()) => Some(cursor),
                    // Start afresh, once.
                    Err(LogError::Unavailable { .. }) if out.is_empty() => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let cursor = match reused {
            Some(cursor) => cursor,
            None => {
                let mut cursor = self.new_cursor(from).await?;
                self.fill(&mut cursor, max, &mut out, self.timeout())
                    .await?;
                cursor
            }
        };
        self.put_cursor(cursor);
        self.saw(from, &out);
        Ok(out)
    }

    /// Newest first; at most [`FIND_LIMIT`] records (the newest).
    async fn find(&self, id: &str, source: Option<&str>) -> Result<Vec<Record>, LogError> {
        let filter = match source {
            Some(source) => self.subject(id, source),
            None => format!("{}.{}.*", self.base, hash(id)),
        };
        self.scan(&filter, |r| {
            r.id == id && source.is_none_or(|s| r.source == s)
        })
        .await
    }

    fn bounds(&self) -> Bounds {
        *self.lock_bounds()
    }

    /// Finds the boundary by binary search over direct gets, which assumes
    /// `received_at_ms` does not decrease along the log (true for one writer; with several,
    /// within their clock skew), then purges the stream up to it.
    async fn remove_before(&self, cutoff_ms: i64, keep_from: u64) -> Result<u64, LogError> {
        let now = self.refresh().await?;
        let Some(first) = now.first else {
            return Ok(0);
        };
        let end = keep_from.min(now.next);
        let (mut lo, mut hi) = (first, end.max(first));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let old = self.received_at(mid).await?.is_none_or(|at| at < cutoff_ms);
            if old {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == first {
            return Ok(0);
        }
        let purged = within(
            self.timeout(),
            "purge",
            self.stream.purge().sequence(lo + 1).into_future(),
        )
        .await?
        .map_err(|e| unavailable("purge", e))?;
        let mut b = self.lock_bounds();
        let kept = b.first.map_or(lo, |f| f.max(lo));
        b.first = (kept < b.next).then_some(kept);
        Ok(purged.purged)
    }

    /// Refuses appends from now on; reads still work. Every append was acknowledged when
    /// it returned, so there is nothing to flush. Parked read consumers are left to the
    /// server, which removes them after [`CURSOR_INACTIVE_THRESHOLD`].
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
