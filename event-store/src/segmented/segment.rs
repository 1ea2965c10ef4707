//! One segment: a `.log` file of frames plus, once sealed, its `.idx` (frame positions) and
//! `.ids` (sorted id hashes) files. The active segment keeps both indexes in memory.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame;
use super::ids::{self, Bloom};
use crate::log::{LogError, Record, id_hash};

pub(super) struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    pub count: u64,
    /// Bytes of valid frames.
    pub bytes: u64,
    pub first_ts: i64,
    pub max_ts: i64,
    pub index: Index,
}

pub(super) enum Index {
    Active {
        positions: Vec<u64>,
        /// First offset per id hash; further offsets with the same hash in `more`.
        ids: HashMap<u64, u64>,
        more: Vec<(u64, u64)>,
    },
    Sealed {
        idx: Arc<File>,
        ids: Arc<File>,
        bloom: Bloom,
    },
}

pub(super) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn side_path(log: &Path, ext: &str) -> PathBuf {
    log.with_extension(ext)
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Segment {
    /// Creates an empty active segment file, durable in its directory.
    pub fn create(dir: &Path, base: u64) -> Result<Segment, LogError> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        sync_dir(dir)?;
        Ok(Segment::empty(base, path, file))
    }

    /// An active segment with no records yet.
    fn empty(base: u64, path: PathBuf, file: File) -> Segment {
        Segment {
            base,
            path,
            file: Arc::new(file),
            count: 0,
            bytes: 0,
            first_ts: 0,
            max_ts: i64::MIN,
            index: Index::Active {
                positions: Vec::new(),
                ids: HashMap::new(),
                more: Vec::new(),
            },
        }
    }

    /// Opens a segment found on disk. A sealed segment is loaded from its index files; an
    /// unsealed one is scanned, and a torn or corrupt tail is cut off.
    pub fn open(path: PathBuf, base: u64) -> Result<Segment, LogError> {
        let sealed = side_path(&path, "ids").exists() && side_path(&path, "idx").exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if sealed {
            return Self::load_sealed(path, base, file);
        }
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let mut seg = Segment::empty(base, path, file);
        let mut pos = 0usize;
        let cut = loop {
            let Some(len) = frame::frame_len(&bytes[pos..]) else {
                break (pos < bytes.len()).then(|| "torn frame header".to_owned());
            };
            let len = match len {
                Ok(len) if pos + len <= bytes.len() => len,
                Ok(_) => break Some("torn frame".to_owned()),
                Err(reason) => break Some(reason),
            };
            match frame::decode_fields(&bytes[pos..pos + len]) {
                Ok(f) if f.offset == base + seg.count => {
                    let (offset, ts, hash) = (f.offset, f.received_at_ms, id_hash(f.id));
                    seg.push(pos as u64, len as u64, offset, ts, hash);
                }
                Ok(f) => {
                    break Some(format!(
                        "frame holds offset {}, expected {}",
                        f.offset,
                        base + seg.count
                    ));
                }
                Err(reason) => break Some(reason),
            }
            pos += len;
        };
        if let Some(reason) = cut {
            tracing::warn!(
                path = %seg.path.display(),
                position = pos,
                dropped_bytes = bytes.len() - pos,
                %reason,
                "cutting the log's unacknowledged tail"
            );
            seg.file.set_len(pos as u64).map_err(io_err(&seg.path))?;
            seg.file.sync_all().map_err(io_err(&seg.path))?;
        }
        Ok(seg)
    }

    fn load_sealed(path: PathBuf, base: u64, file: File) -> Result<Segment, LogError> {
        let idx_path = side_path(&path, "idx");
        let ids_path = side_path(&path, "ids");
        let idx = File::open(&idx_path).map_err(io_err(&idx_path))?;
        let pairs = ids::decode_pairs(&fs::read(&ids_path).map_err(io_err(&ids_path))?);
        let count = idx.metadata().map_err(io_err(&idx_path))?.len() / 8;
        let bytes = file.metadata().map_err(io_err(&path))?.len();
        let mut seg = Segment {
            base,
            file: Arc::new(file),
            count,
            bytes,
            first_ts: 0,
            max_ts: i64::MIN,
            index: Index::Sealed {
                idx: Arc::new(idx),
                ids: Arc::new(File::open(&ids_path).map_err(io_err(&ids_path))?),
                bloom: Bloom::new(pairs.iter().map(|(h, _)| *h)),
            },
            path,
        };
        if count > 0 {
            seg.first_ts = seg.read_at(base)?.received_at_ms;
            seg.max_ts = seg.read_at(base + count - 1)?.received_at_ms;
        }
        Ok(seg)
    }

    /// Records a frame just written (or found by a scan).
    pub fn push(&mut self, position: u64, len: u64, offset: u64, ts: i64, hash: u64) {
        if let Index::Active {
            positions,
            ids,
            more,
        } = &mut self.index
        {
            positions.push(position);
            if let Some(&first) = ids.get(&hash) {
                if first != offset {
                    more.push((hash, offset));
                }
            } else {
                ids.insert(hash, offset);
            }
        }
        if self.count == 0 {
            self.first_ts = ts;
        }
        self.count += 1;
        self.bytes = position + len;
        self.max_ts = self.max_ts.max(ts);
    }

    /// Writes the index files of an active segment, making it sealed on disk. The in-memory
    /// switch happens in [`Segment::into_sealed`].
    pub fn write_seal_files(&self) -> Result<(), LogError> {
        let Index::Active {
            positions,
            ids,
            more,
        } = &self.index
        else {
            return Ok(());
        };
        let idx: Vec<u8> = positions.iter().flat_map(|p| p.to_le_bytes()).collect();
        let mut pairs: Vec<(u64, u64)> = ids
            .iter()
            .map(|(h, o)| (*h, *o))
            .chain(more.iter().copied())
            .collect();
        pairs.sort_unstable();
        write_durably(&side_path(&self.path, "idx"), &idx)?;
        // `.ids` last: its presence is what marks the segment sealed.
        write_durably(&side_path(&self.path, "ids"), &ids::encode_pairs(&pairs))?;
        Ok(())
    }

    pub fn remove_files(&self) {
        for path in [
            self.path.clone(),
            side_path(&self.path, "idx"),
            side_path(&self.path, "ids"),
        ] {
            if let Err(e) = fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a retired segment file");
            }
        }
    }

    pub fn end(&self) -> u64 {
        self.base + self.count
    }

    /// The file position of the frame holding `offset` (which must be in this segment), or
    /// the end of the data for `offset == end()`.
    pub fn position(&self, offset: u64) -> Result<u64, LogError> {
        if offset >= self.end() {
            return Ok(self.bytes);
        }
        let i = offset - self.base;
        match &self.index {
            Index::Active { positions, .. } => Ok(positions[i as usize]),
            Index::Sealed { idx, .. } => {
                let mut buf = [0; 8];
                idx.read_exact_at(&mut buf, i * 8)
                    .map_err(io_err(&self.path))?;
                Ok(u64::from_le_bytes(buf))
            }
        }
    }

    /// Reads the records in `[from, to)`, all of which must be in this segment.
    pub fn read_range(&self, from: u64, to: u64) -> Result<Vec<Record>, LogError> {
        let start = self.position(from)?;
        let end = self.position(to)?;
        let len =
            usize::try_from(end - start).map_err(|_| self.corrupt(start, "range too large"))?;
        let mut buf = vec![0; len];
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(io_err(&self.path))?;
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut pos = 0;
        while pos < buf.len() {
            let at = start + pos as u64;
            let len = match frame::frame_len(&buf[pos..]) {
                Some(Ok(len)) if pos + len <= buf.len() => len,
                Some(Err(reason)) => return Err(self.corrupt(at, &reason)),
                _ => return Err(self.corrupt(at, "frame runs past its range")),
            };
            let record =
                frame::decode(&buf[pos..pos + len]).map_err(|reason| self.corrupt(at, &reason))?;
            out.push(record);
            pos += len;
        }
        Ok(out)
    }

    pub fn read_at(&self, offset: u64) -> Result<Record, LogError> {
        self.read_range(offset, offset + 1)?
            .pop()
            .ok_or_else(|| self.corrupt(0, "no record at offset"))
    }

    /// Offsets in this segment whose id hash is `hash` (may include hash collisions).
    pub fn candidates(&self, hash: u64) -> Result<Vec<u64>, LogError> {
        match &self.index {
            Index::Active { ids, more, .. } => Ok(ids
                .get(&hash)
                .copied()
                .into_iter()
                .chain(more.iter().filter(|(h, _)| *h == hash).map(|(_, o)| *o))
                .collect()),
            Index::Sealed { ids, bloom, .. } => {
                if !bloom.may_contain(hash) {
                    return Ok(Vec::new());
                }
                ids::search(ids, self.count, hash).map_err(io_err(&self.path))
            }
        }
    }

    fn corrupt(&self, position: u64, reason: &str) -> LogError {
        LogError::Corrupt {
            path: self.path.display().to_string(),
            position,
            reason: reason.to_owned(),
        }
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}
