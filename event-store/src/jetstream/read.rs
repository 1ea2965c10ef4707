//! Reads (see "Reads" in the module doc): parked cursors, fetches, `find`, and what reads
//! tell the bounds cache.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures_util::StreamExt as _;

use super::{JetStreamLog, envelope, hash, unavailable, within};
use crate::log::{LogError, Record};

/// Messages asked for by one fetch request.
pub(super) const FETCH_BATCH: usize = 1024;
/// Read cursors (consumers) kept per log.
pub(super) const MAX_CURSORS: usize = 16;
/// A cursor unused this long is dropped rather than reused: well before the server removes
/// its consumer ([`CURSOR_INACTIVE_THRESHOLD`]).
pub(super) const CURSOR_IDLE: Duration = Duration::from_secs(30);
/// The first fetch from a parked cursor waits at most this long for an answer (a no-wait fetch
/// is answered at once; a lost consumer never), then the read starts over with a new consumer.
pub(super) const PARKED_CURSOR_WAIT: Duration = Duration::from_secs(1);
/// The server removes a read consumer nobody pulled from this long.
pub(super) const CURSOR_INACTIVE_THRESHOLD: Duration = Duration::from_secs(120);
/// The server removes a `find` consumer nobody pulled from this long (`find` deletes it
/// itself; this covers a `find` that failed half-way).
const FIND_INACTIVE_THRESHOLD: Duration = Duration::from_secs(10);
/// `find` returns at most this many records: the newest ones.
pub(super) const FIND_LIMIT: usize = 1000;

/// A read consumer parked where it stopped.
pub(super) struct Cursor {
    consumer: PullConsumer,
    /// The offset the consumer delivers next (or a later one, if that was purged).
    next: u64,
    used: Instant,
}

impl JetStreamLog {
    /// `LogStore::read`: through a parked cursor if one stopped at `from`.
    pub(super) async fn read_from(&self, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
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

    /// `LogStore::find`.
    pub(super) async fn find_records(
        &self,
        id: &str,
        source: Option<&str>,
    ) -> Result<Vec<Record>, LogError> {
        let filter = match source {
            Some(source) => self.subject(id, source),
            None => format!("{}.{}.*", self.base, hash(id)),
        };
        self.scan(&filter, |r| {
            r.id == id && source.is_none_or(|s| r.source == s)
        })
        .await
    }

    fn lock_cursors(&self) -> std::sync::MutexGuard<'_, Vec<Cursor>> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner())
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
        let consumer = self.consumer(config).await?;
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
    pub(super) async fn scan(
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
        let consumer = self.consumer(config).await?;
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
}

impl JetStreamLog {
    /// Creates a consumer of the stream (one request, bounded by the timeout).
    async fn consumer(&self, config: pull::Config) -> Result<PullConsumer, LogError> {
        within(
            self.timeout(),
            "create consumer",
            self.stream.create_consumer(config),
        )
        .await?
        .map_err(|e| unavailable("create consumer", e))
    }
}
