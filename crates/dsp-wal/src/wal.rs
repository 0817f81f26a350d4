//! The [`Wal`]: open, append, read, iterate, truncate.

use std::fs::{self, File, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use std::sync::Arc as StdArc;

use dsp_core::sync::{Arc, RwLock};

use crate::config::{Durability, WalConfig};
use crate::error::{Error, Result};
use crate::format::{self, FRAME_HEADER_LEN, check_frame, frame_header};
use crate::group::{GroupCommit, SyncPolicy};
use crate::segment::{
    self, CHUNK, Location, RecoveryReport, SharedIndex, Writer, read_exact_at, read_index,
};

/// Name of the lock file in a log directory.
const LOCK_FILE: &str = "LOCK";

/// A segmented write-ahead log with group commit. See the [crate docs](crate).
///
/// All methods take `&self`: share the log between threads with an `Arc` (or by reference in
/// scoped threads). Appends from many threads are batched into one write and one
/// `fdatasync`.
pub struct Wal {
    group: Arc<GroupCommit<Writer>>,
    index: SharedIndex,
    config: WalConfig,
    dir: PathBuf,
    flusher: Option<std::thread::JoinHandle<()>>,
    _lock: File,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish()
    }
}

impl Wal {
    /// Opens the log in `dir` (created if missing), recovering it: a torn or corrupt tail of
    /// the last segment is truncated and described in the returned [`RecoveryReport`];
    /// anything else that is wrong is an error and nothing is changed.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], [`Error::Locked`] if another `Wal` holds the directory,
    /// [`Error::BadSegment`], [`Error::Corrupt`], [`Error::MissingSegment`], [`Error::Io`].
    pub fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<(Self, RecoveryReport)> {
        config.validate()?;
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir)?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: dir }),
            Err(fs::TryLockError::Error(e)) => return Err(Error::Io(e)),
        }
        let recovered = segment::recover(&dir, config.first_index)?;
        let report = recovered.report;
        let index = recovered.index;
        let (active, active_len, active_count) = match index.segments.back() {
            Some(s) => (s.file.clone(), s.end, s.offsets.len() as u64),
            None => return Err(Error::Poisoned("recovery produced no segment".to_owned())),
        };
        let allocated = active.metadata()?.len();
        let next_index = index.next_index();
        let index: SharedIndex = Arc::new(RwLock::new(index));
        let writer = Writer {
            dir: dir.clone(),
            segment_size: config.segment_size,
            index: index.clone(),
            active,
            active_len,
            active_count,
            allocated,
        };
        let policy = match config.durability {
            Durability::Always => SyncPolicy::Always,
            Durability::Batched { max_bytes, .. } => SyncPolicy::Threshold(max_bytes),
            Durability::Never => SyncPolicy::Never,
        };
        let group = Arc::new(GroupCommit::new(writer, next_index, policy));
        let flusher = match config.durability {
            Durability::Batched { max_delay, .. } => {
                let group = group.clone();
                Some(
                    std::thread::Builder::new()
                        .name("dsp-wal-flusher".to_owned())
                        .spawn(move || {
                            while let Ok(true) = group.wait_unsynced() {
                                if !matches!(group.sleep_unless_closed(max_delay), Ok(true)) {
                                    break;
                                }
                                if group.sync().is_err() {
                                    break;
                                }
                            }
                        })?,
                )
            }
            _ => None,
        };
        #[cfg(feature = "tracing")]
        tracing::info!(dir = %dir.display(), ?report, "dsp-wal opened");
        Ok((
            Self {
                group,
                index,
                config,
                dir,
                flusher,
                _lock: lock,
            },
            report,
        ))
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &WalConfig {
        &self.config
    }

    /// Appends one record and returns its index, once the record is written (and, under
    /// [`Durability::Always`], durable).
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] (nothing appended), [`Error::Io`] / [`Error::Poisoned`] if a
    /// write or sync failed (the record may or may not survive a reopen).
    pub fn append(&self, record: &[u8]) -> Result<u64> {
        self.check_len(record.len())?;
        let crc = format::payload_crc(record);
        self.group.append(1, |index, batch| {
            batch.offsets.push(batch.bytes.len() as u64);
            format::encode_frame(&mut batch.bytes, index, record, crc);
        })
    }

    /// Appends records with consecutive indexes, atomically with respect to other appenders
    /// (no other record lands between them), and returns their index range. After a crash a
    /// batch that was not acknowledged may survive partially (a prefix of it).
    ///
    /// # Errors
    /// As [`append`](Self::append); if any record is too large nothing is appended.
    pub fn append_batch<R: AsRef<[u8]>>(&self, records: &[R]) -> Result<Range<u64>> {
        let mut crcs = Vec::with_capacity(records.len());
        for r in records {
            self.check_len(r.as_ref().len())?;
            crcs.push(format::payload_crc(r.as_ref()));
        }
        if records.is_empty() {
            let next = self.group.next_index()?;
            return Ok(next..next);
        }
        let first = self.group.append(records.len() as u64, |first, batch| {
            for (i, (r, crc)) in records.iter().zip(&crcs).enumerate() {
                batch.offsets.push(batch.bytes.len() as u64);
                format::encode_frame(&mut batch.bytes, first + i as u64, r.as_ref(), *crc);
            }
        })?;
        Ok(first..first + records.len() as u64)
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.config.max_record_size {
            return Err(Error::RecordTooLarge {
                len,
                max: self.config.max_record_size,
            });
        }
        Ok(())
    }

    /// Makes every record appended before this call durable (one shared `fdatasync`).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Poisoned`].
    pub fn sync(&self) -> Result<()> {
        self.group.sync()
    }

    /// Reads the record at `index`; `None` if it is not in the log (below
    /// [`first_index`](Self::first_index) or not yet written). A record is readable once it is
    /// written to the operating system, which can be shortly before its `append` returns.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the bytes on disk no longer match their checksum, [`Error::Io`].
    pub fn read(&self, index: u64) -> Result<Option<Bytes>> {
        let Some(loc) = read_index(&self.index)?.locate(index) else {
            return Ok(None);
        };
        let mut buf = vec![0u8; loc.len];
        read_exact_at(&loc.file, &mut buf, loc.offset)?;
        let payload = decode(&buf, index, &loc)?;
        Ok(Some(Bytes::from(buf).slice(payload)))
    }

    /// Iterates the records from `index` (or from the first retained one if `index` is
    /// lower). The iterator reads ahead in large chunks and sees records appended while it
    /// runs: it ends (returns `None`) when it reaches the end of the log as of that `next`
    /// call, and can be polled again later.
    pub fn iter_from(&self, index: u64) -> WalIter {
        WalIter {
            index: self.index.clone(),
            next: index,
            chunk: None,
            failed: false,
        }
    }

    /// Index of the first retained record (or of the next record if the log is empty). After
    /// [`truncate_prefix`](Self::truncate_prefix) this can be below the low-water mark,
    /// because only whole segments are deleted.
    pub fn first_index(&self) -> u64 {
        read_index(&self.index).map_or(0, |i| i.first_index())
    }

    /// Index of the last readable record, `None` if the log is empty.
    pub fn last_index(&self) -> Option<u64> {
        read_index(&self.index).ok().and_then(|i| {
            let next = i.next_index();
            (next > i.first_index()).then(|| next - 1)
        })
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        read_index(&self.index).map_or(0, |i| i.segments.len())
    }

    /// Deletes every segment whose records are all below `low_water_mark` (the last segment
    /// is always kept) and returns the new [`first_index`](Self::first_index). Records at or
    /// above the mark are never removed; some below it usually remain. Each deletion is made
    /// durable before the next, oldest first, so a crash leaves a contiguous log.
    ///
    /// # Errors
    /// [`Error::Io`] (the log is then poisoned), [`Error::Poisoned`], [`Error::Closed`].
    pub fn truncate_prefix(&self, low_water_mark: u64) -> Result<u64> {
        self.group
            .exclusive(|w| Ok((Ok(w.truncate_prefix(low_water_mark)?), None)))
    }

    /// Removes every record after `index`, durably: when it returns, a crash cannot bring
    /// them back, and the next append gets `index + 1`. Records appended concurrently are
    /// written before the truncation (and removed by it if above `index`) or after it.
    /// `truncate_suffix(first_index() - 1)` empties the log.
    ///
    /// # Errors
    /// [`Error::IndexBelowFirst`] (nothing changed), [`Error::Io`] (the log is then poisoned;
    /// after a crash or reopen the truncation may be partly done, removing a suffix of the
    /// records above `index`), [`Error::Poisoned`], [`Error::Closed`].
    pub fn truncate_suffix(&self, index: u64) -> Result<()> {
        self.group.exclusive(|w| w.truncate_suffix(index))
    }

    /// Syncs and closes the log, reporting a failure of the final sync (dropping the log
    /// syncs too, but ignores errors).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Poisoned`].
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.group.close();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.group.sync()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _result = self.shutdown();
        #[cfg(feature = "tracing")]
        if let Err(e) = _result {
            tracing::error!(error = %e, "dsp-wal final sync failed");
        }
    }
}

/// Checks a frame read back from disk; returns the payload's range in `buf`.
fn decode(buf: &[u8], index: u64, loc: &Location) -> Result<Range<usize>> {
    check_frame(buf, index).map_err(|kind| Error::Corrupt {
        path: loc.path.to_path_buf(),
        offset: loc.offset,
        index,
        reason: kind.to_string(),
    })?;
    let len = frame_header(buf).len;
    Ok(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len)
}

fn buf_of(chunk: &Option<Chunk>) -> &[u8] {
    chunk.as_ref().map_or(&[], |c| &c.bytes[..])
}

/// Iterator over `(index, record)` returned by [`Wal::iter_from`].
pub struct WalIter {
    index: SharedIndex,
    next: u64,
    chunk: Option<Chunk>,
    failed: bool,
}

/// Read-ahead: bytes of one segment from file offset `start`; `pos` is where the next frame
/// should start.
struct Chunk {
    path: StdArc<Path>,
    start: u64,
    bytes: Bytes,
    pos: usize,
    /// The index generation the bytes were read under.
    generation: u64,
}

impl std::fmt::Debug for WalIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalIter").field("next", &self.next).finish()
    }
}

impl WalIter {
    /// Index of the record the next call to `next` returns.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Decodes the next record from the read-ahead chunk if it is wholly there.
    fn next_in_chunk(&mut self) -> Result<Option<(u64, Bytes)>> {
        let Some(chunk) = &mut self.chunk else {
            return Ok(None);
        };
        let rest = &chunk.bytes[chunk.pos..];
        if rest.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let header = frame_header(rest);
        if header.index != self.next
            || header.len > format::MAX_RECORD_LIMIT
            || format::frame_len(header.len) > rest.len()
        {
            return Ok(None);
        }
        let total = check_frame(rest, self.next).map_err(|kind| Error::Corrupt {
            path: chunk.path.to_path_buf(),
            offset: chunk.start + chunk.pos as u64,
            index: self.next,
            reason: kind.to_string(),
        })?;
        let at = chunk.pos + FRAME_HEADER_LEN;
        let record = chunk.bytes.slice(at..at + header.len);
        chunk.pos += total;
        let index = self.next;
        self.next += 1;
        Ok(Some((index, record)))
    }

    fn step(&mut self) -> Result<Option<(u64, Bytes)>> {
        let (first, generation) = {
            let idx = read_index(&self.index)?;
            (idx.first_index(), idx.generation)
        };
        if self.next < first {
            self.next = first;
            self.chunk = None;
        }
        if self
            .chunk
            .as_ref()
            .is_some_and(|c| c.generation != generation)
        {
            self.chunk = None;
        }
        if let Some(item) = self.next_in_chunk()? {
            return Ok(Some(item));
        }
        let Some(loc) = read_index(&self.index)?.locate(self.next) else {
            return Ok(None);
        };
        let end = loc.offset + loc.len as u64;
        let read_end = loc
            .segment_end
            .min(loc.offset + CHUNK.max(loc.len) as u64)
            .max(end);
        // Reuse the previous chunk's allocation when the caller kept no record of it.
        let mut buf = match self.chunk.take().map(|c| c.bytes.try_into_mut()) {
            Some(Ok(mut old)) => {
                old.clear();
                old
            }
            _ => BytesMut::new(),
        };
        buf.resize((read_end - loc.offset) as usize, 0);
        read_exact_at(&loc.file, &mut buf, loc.offset)?;
        self.chunk = Some(Chunk {
            path: loc.path.clone(),
            start: loc.offset,
            bytes: buf.freeze(),
            pos: 0,
            generation,
        });
        // A whole frame is at the start of the chunk: a parse failure is corruption.
        decode(&buf_of(&self.chunk)[..loc.len], self.next, &loc)?;
        self.next_in_chunk()
    }
}

impl Iterator for WalIter {
    type Item = Result<(u64, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
