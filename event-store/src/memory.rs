//! An in-memory `LogStore`, for tests and for reasoning: the simplest thing with the same
//! contract as the embedded log.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::log::{Appended, Bounds, LogError, LogOptions, LogStore, NewRecord, Record, id_hash};

pub struct MemoryLog {
    options: LogOptions,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    records: VecDeque<Record>,
    next: u64,
    ids: HashMap<u64, Vec<u64>>,
    closed: bool,
}

impl Inner {
    fn get(&self, offset: u64) -> Option<&Record> {
        let first = self.records.front()?.offset;
        let i = usize::try_from(offset.checked_sub(first)?).ok()?;
        self.records.get(i)
    }
}

impl MemoryLog {
    pub fn new(options: LogOptions) -> Self {
        MemoryLog {
            options,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the log half-updated in a way that
        // matters for a test double, so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LogStore for MemoryLog {
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<Appended>, LogError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(LogError::Closed);
        }
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let hash = id_hash(&r.id);
            let dup = inner.ids.get(&hash).and_then(|offsets| {
                offsets.iter().rev().copied().find(|&o| {
                    inner.get(o).is_some_and(|old| {
                        old.id == r.id
                            && old.source == r.source
                            && old.received_at_ms > r.received_at_ms - self.options.dedup_window_ms
                    })
                })
            });
            if let Some(offset) = dup {
                out.push(Appended::Duplicate { offset });
                continue;
            }
            let offset = inner.next;
            inner.next += 1;
            inner.ids.entry(hash).or_default().push(offset);
            inner.records.push_back(Record {
                offset,
                received_at_ms: r.received_at_ms,
                source: r.source,
                id: r.id,
                payload: r.payload,
                matched_rules: r.matched_rules,
            });
            out.push(Appended::New { offset });
        }
        Ok(out)
    }

    async fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        let inner = self.lock();
        let Some(first) = inner.records.front().map(|r| r.offset) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
        Ok(inner.records.iter().skip(skip).take(max).cloned().collect())
    }

    async fn find(&self, id: &str, source: Option<&str>) -> Result<Vec<Record>, LogError> {
        let inner = self.lock();
        let Some(offsets) = inner.ids.get(&id_hash(id)) else {
            return Ok(Vec::new());
        };
        Ok(offsets
            .iter()
            .rev()
            .filter_map(|&o| inner.get(o))
            .filter(|r| r.id == id && source.is_none_or(|s| r.source == s))
            .cloned()
            .collect())
    }

    fn bounds(&self) -> Bounds {
        let inner = self.lock();
        Bounds {
            first: inner.records.front().map(|r| r.offset),
            next: inner.next,
        }
    }

    async fn remove_before(&self, cutoff_ms: i64, keep_from: u64) -> Result<u64, LogError> {
        let mut inner = self.lock();
        let mut removed = 0;
        while inner
            .records
            .front()
            .is_some_and(|r| r.received_at_ms < cutoff_ms && r.offset < keep_from)
        {
            inner.records.pop_front();
            removed += 1;
        }
        let first = inner.records.front().map_or(inner.next, |r| r.offset);
        inner.ids.retain(|_, offsets| {
            offsets.retain(|&o| o >= first);
            !offsets.is_empty()
        });
        Ok(removed)
    }

    async fn close(&self) -> Result<(), LogError> {
        self.lock().closed = true;
        Ok(())
    }
}
