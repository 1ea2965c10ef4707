//! The append path (see "Dedup, across processes" in the module doc): key lookups,
//! compare-and-set publishes and their acks, rounds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::IntoFuture as _;
use std::sync::atomic::Ordering;

use async_nats::HeaderMap;
use async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt as _;

use super::{JetStreamLog, envelope, unavailable, within};
use crate::log::{Appended, LogError, NewRecord};

/// Key lookups of one `append` in flight at once.
pub(super) const LOOKUP_CONCURRENCY: usize = 64;
/// Publishes of one `append` awaiting their ack at once.
pub(super) const MAX_IN_FLIGHT: usize = 512;
/// Rounds of one `append` that may see publishes refused by concurrent writers before it
/// gives up with `LogError::Unavailable`.
pub(super) const MAX_CONFLICT_ROUNDS: usize = 16;

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
    /// `LogStore::append`: see there and the module doc.
    pub(super) async fn append_batch(
        &self,
        records: Vec<NewRecord>,
    ) -> Result<Vec<Appended>, LogError> {
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
}
