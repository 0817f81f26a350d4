//! Segment files: the shared index of record offsets, the writer (the group-commit sink) and
//! recovery.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use std::sync::Arc as StdArc;

use dsp_core::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::format::{
    self, FRAME_HEADER_LEN, FrameError, HEADER_LEN, MAX_RECORD_LIMIT, check_frame, frame_header,
    frame_len,
};
use crate::group::{Batch, Sink};

/// Bytes read at a time by recovery and iterators.
pub(crate) const CHUNK: usize = 4 << 20;

/// One segment as seen by readers.
#[derive(Debug)]
pub(crate) struct SegmentInfo {
    pub(crate) first_index: u64,
    pub(crate) path: StdArc<Path>,
    pub(crate) file: Arc<File>,
    /// File offset of each record's frame.
    pub(crate) offsets: Vec<u64>,
    /// End of the last written frame.
    pub(crate) end: u64,
}

/// Where one record is.
pub(crate) struct Location {
    pub(crate) file: Arc<File>,
    pub(crate) path: StdArc<Path>,
    pub(crate) offset: u64,
    pub(crate) len: usize,
    /// End of the written part of the record's segment.
    pub(crate) segment_end: u64,
}

/// The segments and the offsets of their records; shared by the writer and readers.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) segments: VecDeque<SegmentInfo>,
    /// Bumped by every suffix truncation, so read-ahead buffers know to drop their bytes.
    pub(crate) generation: u64,
}

impl Index {
    pub(crate) fn first_index(&self) -> u64 {
        self.segments.front().map_or(0, |s| s.first_index)
    }

    pub(crate) fn next_index(&self) -> u64 {
        self.segments
            .back()
            .map_or(0, |s| s.first_index + s.offsets.len() as u64)
    }

    pub(crate) fn locate(&self, index: u64) -> Option<Location> {
        if index < self.first_index() || index >= self.next_index() {
            return None;
        }
        let at = self
            .segments
            .partition_point(|s| s.first_index <= index)
            .checked_sub(1)?;
        let seg = &self.segments[at];
        let i = usize::try_from(index - seg.first_index).ok()?;
        let offset = *seg.offsets.get(i)?;
        let end = seg.offsets.get(i + 1).copied().unwrap_or(seg.end);
        Some(Location {
            file: seg.file.clone(),
            path: seg.path.clone(),
            offset,
            len: usize::try_from(end - offset).ok()?,
            segment_end: seg.end,
        })
    }
}

pub(crate) type SharedIndex = Arc<RwLock<Index>>;

pub(crate) fn read_index(index: &SharedIndex) -> Result<RwLockReadGuard<'_, Index>> {
    index
        .read()
        .map_err(|_| Error::Poisoned("wal index lock poisoned".to_owned()))
}

fn write_index(index: &SharedIndex) -> Result<RwLockWriteGuard<'_, Index>> {
    index
        .write()
        .map_err(|_| Error::Poisoned("wal index lock poisoned".to_owned()))
}

#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Creates an empty segment crash-safely: header written and synced under a temporary name,
/// renamed into place, directory synced. A crash at any point leaves either no segment or a
/// complete empty one (plus possibly a temporary file, removed by the next open).
pub(crate) fn create_segment(dir: &Path, first_index: u64) -> Result<(File, PathBuf)> {
    let name = format::segment_name(first_index);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{first_index:020}{}", format::TMP_SUFFIX));
    {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        write_all_at(&f, &format::encode_header(first_index), 0)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok((open_rw(&path)?, path))
}

/// The writing side: the active segment, rolled at the size limit. Only the group-commit
/// leader (or an exclusive operation) touches it.
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) segment_size: u64,
    pub(crate) index: SharedIndex,
    pub(crate) active: Arc<File>,
    pub(crate) active_len: u64,
    pub(crate) active_count: u64,
    /// Length of the active file: `active_len` plus preallocated (zero) space.
    pub(crate) allocated: u64,
}

/// The active segment file is extended in steps of this many bytes, so appends overwrite
/// space inside the file instead of growing it: an `fdatasync` then has no file-size change
/// to journal. The unused zero tail is recognised on open.
pub(crate) const PREALLOCATE: u64 = 4 << 20;

impl Writer {
    fn roll(&mut self, first_index: u64) -> Result<()> {
        // The sealed segment must be complete (and trimmed of preallocated space) on disk
        // before its successor exists, so that only the last segment can ever have a torn or
        // zero tail.
        if self.allocated != self.active_len {
            self.active.set_len(self.active_len)?;
        }
        self.active.sync_data()?;
        let (file, path) = create_segment(&self.dir, first_index)?;
        let file = Arc::new(file);
        write_index(&self.index)?.segments.push_back(SegmentInfo {
            first_index,
            path: path.into(),
            file: file.clone(),
            offsets: Vec::new(),
            end: HEADER_LEN,
        });
        self.active = file;
        self.active_len = HEADER_LEN;
        self.active_count = 0;
        self.allocated = HEADER_LEN;
        #[cfg(feature = "tracing")]
        tracing::debug!(first_index, "dsp-wal rolled to a new segment");
        Ok(())
    }

    /// Removes every record after `index`: whole segments newest first (syncing the directory
    /// after each, so a crash never leaves a gap), then the tail of the segment holding
    /// `index`, synced.
    pub(crate) fn truncate_suffix(&mut self, index: u64) -> Result<(Result<()>, Option<u64>)> {
        let (first, next) = {
            let idx = read_index(&self.index)?;
            (idx.first_index(), idx.next_index())
        };
        if index.saturating_add(1) < first {
            return Ok((Err(Error::IndexBelowFirst { index, first }), None));
        }
        if index.saturating_add(1) >= next {
            return Ok((Ok(()), None));
        }
        loop {
            let path = {
                let mut idx = write_index(&self.index)?;
                let removable = idx.segments.len() > 1
                    && idx.segments.back().is_some_and(|s| s.first_index > index);
                if !removable {
                    break;
                }
                idx.segments.pop_back().map(|s| s.path)
            };
            if let Some(path) = path {
                fs::remove_file(&path)?;
                sync_dir(&self.dir)?;
            }
        }
        let (file, new_len, keep) = {
            let mut idx = write_index(&self.index)?;
            idx.generation += 1;
            let Some(seg) = idx.segments.back_mut() else {
                return Err(Error::Poisoned("wal has no segment".to_owned()));
            };
            let keep = usize::try_from(index + 1 - seg.first_index)
                .map_err(|_| Error::Poisoned("index overflow".to_owned()))?;
            let new_len = seg.offsets.get(keep).copied().unwrap_or(seg.end);
            seg.offsets.truncate(keep);
            seg.end = new_len;
            (seg.file.clone(), new_len, keep)
        };
        file.set_len(new_len)?;
        file.sync_all()?;
        self.active = file;
        self.active_len = new_len;
        self.active_count = keep as u64;
        self.allocated = new_len;
        Ok((Ok(()), Some(index + 1)))
    }

    /// Deletes, oldest first, every segment whose records are all below `low_water_mark`; the
    /// last segment is always kept. Returns the new first index.
    pub(crate) fn truncate_prefix(&mut self, low_water_mark: u64) -> Result<u64> {
        loop {
            let path = {
                let mut idx = write_index(&self.index)?;
                if idx.segments.len() < 2 || idx.segments[1].first_index > low_water_mark {
                    break;
                }
                idx.segments.pop_front().map(|s| s.path)
            };
            if let Some(path) = path {
                fs::remove_file(&path)?;
                sync_dir(&self.dir)?;
            }
        }
        Ok(read_index(&self.index)?.first_index())
    }
}

impl Sink for Writer {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        if self.active_len >= self.segment_size && self.active_count > 0 {
            self.roll(batch.first_index)?;
        }
        let base = self.active_len;
        let end = base + batch.bytes.len() as u64;
        if end > self.allocated {
            let allocated = end.div_ceil(PREALLOCATE) * PREALLOCATE;
            self.active.set_len(allocated)?;
            self.allocated = allocated;
        }
        write_all_at(&self.active, &batch.bytes, base)?;
        {
            let mut idx = write_index(&self.index)?;
            if let Some(seg) = idx.segments.back_mut() {
                seg.offsets.extend(batch.offsets.iter().map(|o| o + base));
                seg.end = end;
            }
        }
        self.active_len = end;
        self.active_count += batch.offsets.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.active.sync_data()?;
        Ok(())
    }
}

/// What recovery removed from the end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The (last) segment that was cut.
    pub segment: PathBuf,
    /// Offset the segment was truncated to (where the first bad frame started).
    pub offset: u64,
    /// The index the first bad frame should have had: the log now continues from here.
    pub index: u64,
    /// Bytes removed.
    pub dropped_bytes: u64,
    /// Record frames (complete or partial) found in the removed bytes; zero-filled space counts
    /// as none. None of them can have been acknowledged under [`Durability::Always`](crate::Durability).
    pub dropped_records: u64,
    /// Why the first removed frame was rejected.
    pub reason: FrameError,
}

/// What [`Wal::open`](crate::Wal::open) found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The directory held no segment: a new log was created.
    pub created: bool,
    /// Segment files in the log.
    pub segments: usize,
    /// Records in the log.
    pub records: u64,
    /// Index of the first record (or of the next one if the log is empty).
    pub first_index: u64,
    /// Index the next appended record gets.
    pub next_index: u64,
    /// The torn or corrupt tail that was truncated, if any.
    pub torn_tail: Option<TornTail>,
    /// Leftover temporary files of an interrupted segment roll that were removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Zero bytes after the last record of the last segment: space preallocated by the
    /// writer and never written (or an append of which nothing reached the disk). They hold
    /// no record, are not a torn tail, and are kept for the next appends.
    pub unused_tail_bytes: u64,
}

/// Result of scanning one segment.
struct Scan {
    offsets: Vec<u64>,
    end: u64,
    torn: Option<TornTail>,
    /// Zero bytes after the last record of the last segment (preallocated, never written).
    unused: u64,
}

/// Makes sure `buf` (holding file bytes from `*start`) covers `[pos, pos + want)`, clipped at
/// `file_len`, reading a large chunk when it does not.
fn fill(
    file: &File,
    buf: &mut Vec<u8>,
    start: &mut u64,
    pos: u64,
    want: usize,
    file_len: u64,
) -> io::Result<()> {
    let want_end = (pos + want as u64).min(file_len);
    if pos >= *start && want_end <= *start + buf.len() as u64 {
        return Ok(());
    }
    let read_end = (pos + want.max(CHUNK) as u64).min(file_len);
    let n = (read_end - pos) as usize;
    buf.resize(n, 0);
    read_exact_at(file, buf, pos)?;
    *start = pos;
    Ok(())
}

/// Looks for a valid frame (index at least `index`) anywhere after the start of `tail`.
fn find_valid_after(tail: &[u8], index: u64) -> Option<(usize, u64)> {
    let max_index = index.saturating_add((tail.len() / FRAME_HEADER_LEN) as u64);
    let mut off = 8;
    while off + FRAME_HEADER_LEN <= tail.len() {
        let h = frame_header(&tail[off..]);
        if h.index >= index
            && h.index <= max_index
            && h.len <= MAX_RECORD_LIMIT
            && off + frame_len(h.len) <= tail.len()
            && check_frame(&tail[off..], h.index).is_ok()
        {
            return Some((off, h.index));
        }
        off += 8;
    }
    None
}

/// Counts frames (complete or not) in a dropped tail; zero-filled space counts as none.
fn count_frames(tail: &[u8]) -> u64 {
    let mut off = 0;
    let mut count = 0;
    while off < tail.len() {
        let rest = &tail[off..];
        if rest.iter().take(FRAME_HEADER_LEN).all(|&b| b == 0) {
            break;
        }
        count += 1;
        if rest.len() < FRAME_HEADER_LEN {
            break;
        }
        let h = frame_header(rest);
        if h.len > MAX_RECORD_LIMIT {
            break;
        }
        off += frame_len(h.len);
    }
    count
}

fn scan_segment(file: &File, path: &Path, first_index: u64, is_last: bool) -> Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut header = [0u8; HEADER_LEN as usize];
    if file_len < HEADER_LEN {
        return Err(Error::BadSegment {
            path: path.to_owned(),
            reason: "shorter than a segment header",
        });
    }
    read_exact_at(file, &mut header, 0)?;
    let header_first = format::decode_header(&header).map_err(|reason| Error::BadSegment {
        path: path.to_owned(),
        reason,
    })?;
    if header_first != first_index {
        return Err(Error::BadSegment {
            path: path.to_owned(),
            reason: "first index in the header does not match the file name",
        });
    }
    let mut offsets = Vec::new();
    let mut buf = Vec::new();
    let mut start = 0u64;
    let mut pos = HEADER_LEN;
    let mut index = first_index;
    while pos < file_len {
        fill(file, &mut buf, &mut start, pos, FRAME_HEADER_LEN, file_len)?;
        let mut here = &buf[(pos - start) as usize..];
        if here.len() >= FRAME_HEADER_LEN {
            let len = frame_header(here).len;
            if len <= MAX_RECORD_LIMIT {
                fill(file, &mut buf, &mut start, pos, frame_len(len), file_len)?;
                here = &buf[(pos - start) as usize..];
            }
        }
        match check_frame(here, index) {
            Ok(total) => {
                offsets.push(pos);
                pos += total as u64;
                index += 1;
            }
            Err(kind) => {
                return bad_frame(file, path, pos, index, kind, file_len, is_last, offsets);
            }
        }
    }
    Ok(Scan {
        offsets,
        end: pos,
        torn: None,
        unused: 0,
    })
}

#[allow(clippy::too_many_arguments)]
fn bad_frame(
    file: &File,
    path: &Path,
    pos: u64,
    index: u64,
    kind: FrameError,
    file_len: u64,
    is_last: bool,
    offsets: Vec<u64>,
) -> Result<Scan> {
    if !is_last {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            offset: pos,
            index,
            reason: format!("{kind} in a sealed (not last) segment"),
        });
    }
    let mut tail = vec![0u8; (file_len - pos) as usize];
    read_exact_at(file, &mut tail, pos)?;
    if tail.iter().all(|&b| b == 0) {
        // Preallocated space the log never wrote (or a write of which nothing reached the
        // disk): no record is lost, the writer continues at `pos`.
        return Ok(Scan {
            offsets,
            end: pos,
            torn: None,
            unused: file_len - pos,
        });
    }
    if let Some((off, found)) = find_valid_after(&tail, index) {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            offset: pos,
            index,
            reason: format!(
                "{kind}, followed by a valid record (index {found}) at offset {}",
                pos + off as u64
            ),
        });
    }
    let torn = TornTail {
        segment: path.to_owned(),
        offset: pos,
        index,
        dropped_bytes: file_len - pos,
        dropped_records: count_frames(&tail),
        reason: kind,
    };
    #[cfg(feature = "tracing")]
    tracing::warn!(?torn, "dsp-wal truncating a torn tail");
    file.set_len(pos)?;
    file.sync_all()?;
    Ok(Scan {
        offsets,
        end: pos,
        torn: Some(torn),
        unused: 0,
    })
}

/// Scans sealed segments on up to `available_parallelism` threads; results in segment order.
fn scan_sealed(files: &[File], found: &[(u64, PathBuf)]) -> Vec<Option<Result<Scan>>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    if threads <= 1 {
        return files
            .iter()
            .zip(found)
            .map(|(file, (first, path))| Some(scan_segment(file, path, *first, false)))
            .collect();
    }
    let per = files.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(per)
            .zip(found.chunks(per))
            .map(|(files, found)| {
                s.spawn(move || {
                    files
                        .iter()
                        .zip(found)
                        .map(|(file, (first, path))| Some(scan_segment(file, path, *first, false)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(scans) => scans,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Opened and recovered segments.
pub(crate) struct Recovered {
    pub(crate) index: Index,
    pub(crate) report: RecoveryReport,
}

/// Lists, checks and repairs the segments of `dir` (which the caller has locked).
pub(crate) fn recover(dir: &Path, new_first_index: u64) -> Result<Recovered> {
    let mut report = RecoveryReport::default();
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(format::TMP_SUFFIX) {
            fs::remove_file(entry.path())?;
            report.removed_temp_files.push(entry.path());
            continue;
        }
        match format::parse_segment_name(name) {
            Some(Ok(first)) => found.push((first, entry.path())),
            Some(Err(())) => {
                return Err(Error::BadSegment {
                    path: entry.path(),
                    reason: "segment file name is not 20 decimal digits",
                });
            }
            None => {}
        }
    }
    if !report.removed_temp_files.is_empty() {
        sync_dir(dir)?;
    }
    if found.is_empty() {
        create_segment(dir, new_first_index)?;
        found.push((
            new_first_index,
            dir.join(format::segment_name(new_first_index)),
        ));
        report.created = true;
    }
    found.sort_unstable();
    let files = found
        .iter()
        .map(|(_, path)| open_rw(path))
        .collect::<io::Result<Vec<File>>>()?;
    // Sealed segments are only read: verify them in parallel. The last one may be repaired,
    // so it is scanned after everything before it checked out.
    let sealed = found.len() - 1;
    let mut scans = scan_sealed(&files[..sealed], &found[..sealed]);
    let mut index = Index::default();
    let mut expected: Option<(u64, PathBuf)> = None;
    for (i, ((first, path), file)) in found.into_iter().zip(files).enumerate() {
        if let Some((expected, prev)) = expected.take()
            && expected != first
        {
            return Err(Error::MissingSegment {
                path: prev,
                expected,
                found: first,
            });
        }
        let scan = match scans.get_mut(i).and_then(Option::take) {
            Some(scan) => scan?,
            None => scan_segment(&file, &path, first, true)?,
        };
        expected = Some((first + scan.offsets.len() as u64, path.clone()));
        if scan.torn.is_some() {
            report.torn_tail = scan.torn;
        }
        report.unused_tail_bytes = scan.unused;
        index.segments.push_back(SegmentInfo {
            first_index: first,
            path: path.into(),
            file: Arc::new(file),
            offsets: scan.offsets,
            end: scan.end,
        });
    }
    report.segments = index.segments.len();
    report.first_index = index.first_index();
    report.next_index = index.next_index();
    report.records = report.next_index - report.first_index;
    Ok(Recovered { index, report })
}
