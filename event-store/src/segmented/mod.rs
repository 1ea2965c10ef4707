//! The embedded log: a directory of segment files written by one thread with group commit.
//!
//! All appends go through a single writer thread. It drains every request that is waiting,
//! writes their frames with one `write`, makes them durable with one `fdatasync`, and only
//! then publishes them to readers and acknowledges them. Concurrent publishers therefore
//! share fsyncs: the cost of durability is paid per group, not per event.
//!
//! Recovery relies on two facts: a frame is acknowledged only after the fsync that covers
//! it, and a frame carries its own offset and CRC. So on open, the first frame that is torn,
//! fails its CRC or holds the wrong offset marks the end of what was acknowledged, and
//! everything from there on is cut off.

mod frame;
mod ids;
mod segment;
mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::log::{
    Appended, Bounds, LogError, LogOptions, LogStats, LogStore, NewRecord, Record, id_hash,
};
use segment::{Segment, io_err};
use writer::Command;

/// The length of the frame that starts `buf`, from its header (`None` if `buf` is shorter
/// than a header). Public only so that `event-store/fuzz` can fuzz frame decoding; not API.
#[doc(hidden)]
pub fn frame_len(buf: &[u8]) -> Option<Result<usize, String>> {
    frame::frame_len(buf)
}

/// Decodes `buf`, exactly one frame as read back from a segment file, checking its length
/// and CRC. Public only so that `event-store/fuzz` can fuzz frame decoding; not API.
#[doc(hidden)]
pub fn decode_frame(buf: &[u8]) -> Result<Record, String> {
    frame::decode(buf)
}

/// Options of the embedded log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentedOptions {
    pub log: LogOptions,
    /// A segment is sealed once it holds this many bytes.
    pub segment_bytes: u64,
    /// ... or once its first record is this old, so retention can drop it in time.
    pub segment_max_age: Duration,
}

impl Default for SegmentedOptions {
    fn default() -> Self {
        SegmentedOptions {
            log: LogOptions::default(),
            segment_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(3600),
        }
    }
}

/// The embedded, file-backed `LogStore`.
pub struct SegmentedLog {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
}

pub(crate) struct Shared {
    dir: PathBuf,
    options: SegmentedOptions,
    state: RwLock<State>,
    records: AtomicU64,
    syncs: AtomicU64,
}

struct State {
    /// Oldest first; the last one is the active segment.
    segments: Vec<Segment>,
    closed: bool,
}

impl State {
    fn active(&self) -> &Segment {
        // `open` always leaves an active segment, and nothing removes the last one.
        &self.segments[self.segments.len() - 1]
    }

    fn bounds(&self) -> Bounds {
        let next = self.active().end();
        let first = self.segments.iter().find(|s| s.count > 0).map(|s| s.base);
        Bounds { first, next }
    }

    fn segment_of(&self, offset: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.end() <= offset);
        self.segments
            .get(i)
            .filter(|s| s.base <= offset && offset < s.end())
    }
}

impl Shared {
    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Updates happen in small, non-panicking critical sections; a poisoned lock still
        // holds a consistent state.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Records with this id (and source), newest first, among those with
    /// `received_at_ms >= min_ts`.
    fn find(&self, id: &str, source: Option<&str>, min_ts: i64) -> Result<Vec<Record>, LogError> {
        let hash = id_hash(id);
        let mut found = Vec::new();
        for seg in self.segments.iter().rev() {
            if seg.count == 0 {
                continue;
            }
            if seg.max_ts < min_ts {
                break;
            }
            let mut candidates = seg.candidates(hash)?;
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            for offset in candidates {
                let r = seg.read_at(offset)?;
                if r.id == id && source.is_none_or(|s| r.source == s) && r.received_at_ms >= min_ts
                {
                    found.push(r);
                }
            }
        }
        Ok(found)
    }
}

impl SegmentedLog {
    /// Opens (creating if needed) the log in `dir`, recovering from any crash.
    pub fn open(dir: &Path, options: SegmentedOptions) -> Result<SegmentedLog, LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut bases: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len() + 1);
        for base in bases {
            let seg = Segment::open(segment::log_path(dir, base), base)?;
            if let Some(prev) = segments.last().map(Segment::end)
                && prev != base
            {
                return Err(LogError::Corrupt {
                    path: seg.path.display().to_string(),
                    position: 0,
                    reason: format!(
                        "segment starts at offset {base}, the one before ends at {prev}"
                    ),
                });
            }
            segments.push(seg);
        }
        // Seal every segment but the last, rebuilding index files a crash may have lost.
        let last = segments.len().saturating_sub(1);
        for (i, seg) in segments.iter_mut().enumerate() {
            if i < last && matches!(seg.index, segment::Index::Active { .. }) {
                seg.write_seal_files()?;
                *seg = Segment::open(seg.path.clone(), seg.base)?;
            }
        }
        let needs_active = segments
            .last()
            .is_none_or(|s| matches!(s.index, segment::Index::Sealed { .. }));
        if needs_active {
            let base = segments.last().map_or(0, Segment::end);
            segments.push(Segment::create(dir, base)?);
        }
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            options,
            state: RwLock::new(State {
                segments,
                closed: false,
            }),
            records: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        });
        let tx = writer::spawn(shared.clone())?;
        Ok(SegmentedLog { shared, tx })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, LogError>>) -> Command,
    ) -> Result<T, LogError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| LogError::Closed)?;
        rx.await.map_err(|_| LogError::Closed)?
    }
}

#[async_trait]
impl LogStore for SegmentedLog {
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<Appended>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.call(|reply| Command::Append { records, reply }).await
    }

    async fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        let state = self.shared.read_state();
        let mut out = Vec::new();
        let mut at = state.bounds().first.map_or(from, |first| from.max(first));
        while out.len() < max {
            let Some(seg) = state.segment_of(at) else {
                break;
            };
            let to = seg.end().min(at + (max - out.len()) as u64);
            out.extend(seg.read_range(at, to)?);
            at = to;
        }
        Ok(out)
    }

    async fn find(&self, id: &str, source: Option<&str>) -> Result<Vec<Record>, LogError> {
        self.shared.read_state().find(id, source, i64::MIN)
    }

    fn bounds(&self) -> Bounds {
        self.shared.read_state().bounds()
    }

    async fn remove_before(&self, cutoff_ms: i64, keep_from: u64) -> Result<u64, LogError> {
        self.call(|reply| Command::RemoveBefore {
            cutoff_ms,
            keep_from,
            reply,
        })
        .await
    }

    fn stats(&self) -> LogStats {
        LogStats {
            records: self.shared.records.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) -> Result<(), LogError> {
        if self.shared.read_state().closed {
            return Ok(());
        }
        self.call(|reply| Command::Close { reply }).await
    }
}

#[cfg(test)]
mod tests;
