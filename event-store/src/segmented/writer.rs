//! The writer thread: group commit, segment rolls and retention, serialised in one place.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::segment::{Segment, io_err};
use super::{Shared, frame};
use crate::log::{Appended, LogError, NewRecord, id_hash};

/// Groups stop growing past this many payload bytes, to bound one fsync's latency.
const MAX_GROUP_BYTES: usize = 8 << 20;

pub(crate) enum Command {
    Append {
        records: Vec<NewRecord>,
        reply: oneshot::Sender<Result<Vec<Appended>, LogError>>,
    },
    RemoveBefore {
        cutoff_ms: i64,
        keep_from: u64,
        reply: oneshot::Sender<Result<u64, LogError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), LogError>>,
    },
}

type Reply = oneshot::Sender<Result<Vec<Appended>, LogError>>;

pub(super) fn spawn(shared: Arc<Shared>) -> Result<mpsc::Sender<Command>, LogError> {
    let (tx, rx) = mpsc::channel(1024);
    let (file, len) = {
        let state = shared.read_state();
        let active = state.active();
        (open_for_append(&active.path)?, active.bytes)
    };
    let writer = Writer {
        shared,
        file,
        len,
        failed: false,
    };
    std::thread::Builder::new()
        .name("switchyard-log".into())
        .spawn(move || writer.run(rx))
        .map_err(|source| LogError::Io {
            path: "writer thread".into(),
            source,
        })?;
    Ok(tx)
}

fn open_for_append(path: &std::path::Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

struct Writer {
    shared: Arc<Shared>,
    /// The active segment, opened for appending.
    file: File,
    /// Bytes of the active segment known to be valid and durable.
    len: u64,
    /// Set when a failed write could not be undone: nothing more is acknowledged.
    failed: bool,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group: Vec<(Vec<NewRecord>, Reply)> = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            let mut after = None;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append { records, reply } => {
                        bytes += records.iter().map(|r| r.payload.len()).sum::<usize>();
                        group.push((records, reply));
                        if bytes < MAX_GROUP_BYTES {
                            next = rx.try_recv().ok();
                        }
                    }
                    other => after = Some(other),
                }
            }
            if !group.is_empty() {
                self.commit(group);
            }
            match after {
                None | Some(Command::Append { .. }) => {}
                Some(Command::RemoveBefore {
                    cutoff_ms,
                    keep_from,
                    reply,
                }) => {
                    let _ = reply.send(self.remove_before(cutoff_ms, keep_from));
                }
                Some(Command::Close { reply }) => {
                    self.shared.write_state().closed = true;
                    let _ = reply.send(Ok(()));
                    return;
                }
            }
        }
    }

    fn commit(&mut self, group: Vec<(Vec<NewRecord>, Reply)>) {
        if self.failed {
            for (_, reply) in group {
                let _ = reply.send(Err(LogError::Closed));
            }
            return;
        }
        if let Err(e) = self.roll_if_due() {
            tracing::error!(error = %e, "could not roll the log segment");
        }
        match self.write_group(&group) {
            Ok(results) => {
                for ((_, reply), result) in group.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "log append failed");
                let message = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(LogError::Io {
                        path: self.shared.dir.display().to_string(),
                        source: std::io::Error::other(message.clone()),
                    }));
                }
            }
        }
    }

    /// Dedups, frames, writes and fsyncs one group; publishes it to readers.
    fn write_group(
        &mut self,
        group: &[(Vec<NewRecord>, Reply)],
    ) -> Result<Vec<Vec<Appended>>, LogError> {
        let window = self.shared.options.log.dedup_window_ms;
        let mut buf = Vec::new();
        // (position, frame length, offset, received_at, id hash) of each new frame.
        let mut written = Vec::new();
        let mut results = Vec::with_capacity(group.len());
        {
            let state = self.shared.read_state();
            let mut next = state.active().end();
            let mut in_group: HashMap<u64, Vec<(&str, &str, u64)>> = HashMap::new();
            for (records, _) in group {
                let mut result = Vec::with_capacity(records.len());
                for r in records {
                    let hash = id_hash(&r.id);
                    let earlier = if window <= 0 {
                        None
                    } else {
                        in_group
                            .get(&hash)
                            .and_then(|v| v.iter().find(|(s, i, _)| *s == r.source && *i == r.id))
                            .map(|(_, _, o)| *o)
                    };
                    let stored = match earlier {
                        Some(o) => Some(o),
                        None if window <= 0 => None,
                        None => state
                            .find(
                                &r.id,
                                Some(&r.source),
                                r.received_at_ms.saturating_sub(window) + 1,
                            )?
                            .first()
                            .map(|old| old.offset),
                    };
                    if let Some(offset) = stored {
                        result.push(Appended::Duplicate { offset });
                        continue;
                    }
                    let position = self.len + buf.len() as u64;
                    frame::encode(&mut buf, next, r);
                    let len = self.len + buf.len() as u64 - position;
                    written.push((position, len, next, r.received_at_ms, hash));
                    in_group
                        .entry(hash)
                        .or_default()
                        .push((&r.source, &r.id, next));
                    result.push(Appended::New { offset: next });
                    next += 1;
                }
                results.push(result);
            }
        }
        if !buf.is_empty() {
            if let Err(e) = self
                .file
                .write_all(&buf)
                .and_then(|()| self.file.sync_data())
            {
                self.undo_partial_write();
                return Err(io_err(&self.shared.dir)(e));
            }
            self.len += buf.len() as u64;
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
            self.shared
                .records
                .fetch_add(written.len() as u64, Ordering::Relaxed);
            let mut state = self.shared.write_state();
            let last = state.segments.len() - 1;
            let active = &mut state.segments[last];
            for (position, len, offset, ts, hash) in written {
                active.push(position, len, offset, ts, hash);
            }
        }
        Ok(results)
    }

    /// After a failed write the file may end in a partial frame, which recovery would take
    /// as the end of the log and so drop every later frame. Cut it off, or stop writing.
    fn undo_partial_write(&mut self) {
        let undone = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_all());
        if let Err(e) = undone {
            tracing::error!(error = %e, "could not undo a failed log write; the log stops accepting appends");
            self.failed = true;
        }
    }

    fn roll_if_due(&mut self) -> Result<(), LogError> {
        let due = {
            let state = self.shared.read_state();
            let active = state.active();
            let age_ms = switchyard_core::time::now_ms().saturating_sub(active.first_ts);
            active.bytes >= self.shared.options.segment_bytes
                || (active.count > 0
                    && age_ms > self.shared.options.segment_max_age.as_millis() as i64)
        };
        if due { self.roll() } else { Ok(()) }
    }

    /// Seals the active segment and starts a new one.
    fn roll(&mut self) -> Result<(), LogError> {
        let (path, base, end) = {
            let state = self.shared.read_state();
            let active = state.active();
            active.write_seal_files()?;
            (active.path.clone(), active.base, active.end())
        };
        let sealed = Segment::open(path, base)?;
        let fresh = Segment::create(&self.shared.dir, end)?;
        let file = open_for_append(&fresh.path)?;
        let mut state = self.shared.write_state();
        let last = state.segments.len() - 1;
        state.segments[last] = sealed;
        state.segments.push(fresh);
        self.file = file;
        self.len = 0;
        Ok(())
    }

    fn remove_before(&mut self, cutoff_ms: i64, keep_from: u64) -> Result<u64, LogError> {
        let gone = |s: &Segment| s.max_ts < cutoff_ms && s.base + s.count <= keep_from;
        let active_expired = {
            let state = self.shared.read_state();
            let active = state.active();
            active.count > 0 && gone(active)
        };
        if active_expired {
            self.roll()?;
        }
        let retired: Vec<Segment> = {
            let mut state = self.shared.write_state();
            let expired = state.segments[..state.segments.len() - 1]
                .iter()
                .take_while(|s| gone(s))
                .count();
            state.segments.drain(..expired).collect()
        };
        for seg in &retired {
            seg.remove_files();
        }
        Ok(retired.iter().map(|s| s.count).sum())
    }
}
