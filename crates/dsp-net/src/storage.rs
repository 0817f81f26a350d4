//! Durable storage for a node's [`Output::Persist`](dsp_core::Output::Persist) operations.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Durable persistence for one node's persist operations.
///
/// The runtime calls [`Storage::load`] once when the node starts (its result rebuilds the node,
/// rule 7 of the contract) and then [`Storage::append`] from a dedicated blocking thread, with
/// operations in the order the node emitted them. Several operations may be appended in one call
/// (group commit).
pub trait Storage<T>: Send + 'static {
    /// Every durable operation, in the order appended.
    ///
    /// # Errors
    /// Corruption or I/O failure; the node does not start.
    fn load(&mut self) -> Result<Vec<T>>;

    /// Appends `ops`; they must be durable when this returns `Ok`.
    ///
    /// # Errors
    /// Any failure: the runtime then stops the node (fail-stop) without carrying out anything
    /// that depends on `ops`.
    fn append(&mut self, ops: &[T]) -> Result<()>;
}

impl<T, S: Storage<T> + ?Sized> Storage<T> for Box<S> {
    fn load(&mut self) -> Result<Vec<T>> {
        (**self).load()
    }

    fn append(&mut self, ops: &[T]) -> Result<()> {
        (**self).append(ops)
    }
}

/// Storage in memory, shared between clones: "durable" for as long as one clone lives.
///
/// Use it in tests and for protocols that need no durability; give a clone to a restarted node
/// to simulate a restart that kept its disk.
pub struct MemStorage<T> {
    ops: Arc<Mutex<Vec<T>>>,
}

impl<T> MemStorage<T> {
    /// Empty storage.
    pub fn new() -> Self {
        Self {
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The number of operations stored.
    pub fn len(&self) -> usize {
        self.ops
            .lock()
            .map(|v| v.len())
            .unwrap_or_else(|p| p.into_inner().len())
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> MemStorage<T> {
    /// A copy of the stored operations.
    pub fn snapshot(&self) -> Vec<T> {
        match self.ops.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl<T> Clone for MemStorage<T> {
    fn clone(&self) -> Self {
        Self {
            ops: Arc::clone(&self.ops),
        }
    }
}

impl<T> Default for MemStorage<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for MemStorage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemStorage")
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Clone + Send + 'static> Storage<T> for MemStorage<T> {
    fn load(&mut self) -> Result<Vec<T>> {
        Ok(self.snapshot())
    }

    fn append(&mut self, ops: &[T]) -> Result<()> {
        match self.ops.lock() {
            Ok(mut v) => v.extend_from_slice(ops),
            Err(p) => p.into_inner().extend_from_slice(ops),
        }
        Ok(())
    }
}

/// Record header: payload length (u32 LE) and crc32c (u32 LE) of the length bytes and payload.
const RECORD_HEADER: usize = 8;

/// An append-only file of postcard records, each `len u32 | crc32c u32 | payload`, synced with
/// `sync_data` before [`Storage::append`] returns.
///
/// [`Storage::load`] truncates a torn tail (a last record cut short or damaged by a crash during
/// a write) and reports damage before the tail as [`Error::StorageCorrupt`]: the node then does not
/// start, because silently dropping durable state would break the contract.
pub struct FileStorage<T> {
    path: PathBuf,
    file: File,
    max_record: usize,
    buf: Vec<u8>,
    _ops: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for FileStorage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field("path", &self.path)
            .finish()
    }
}

impl<T> FileStorage<T> {
    /// Opens (creating if needed) the file at `path`, and syncs its directory so that the file
    /// itself survives a power loss (an `fsync` of a new file does not make its directory entry
    /// durable). Records up to 64 MiB are accepted.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or its directory cannot be synced.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        sync_parent_dir(&path)?;
        Ok(Self {
            path,
            file,
            max_record: 64 << 20,
            buf: Vec::new(),
            _ops: PhantomData,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes the directory entry of `path` durable (on Unix; elsewhere directories cannot be synced
/// this way and this does nothing).
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Storage<T> for FileStorage<T> {
    fn load(&mut self) -> Result<Vec<T>> {
        let mut bytes = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut bytes)?;
        let mut ops = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let torn = |reason: &str| {
                tracing::warn!(path = %self.path.display(), offset = at, reason, "truncating torn tail");
            };
            if rest.len() < RECORD_HEADER {
                torn("partial header");
                break;
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let stored = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            let end = RECORD_HEADER.saturating_add(len);
            if end > rest.len() {
                // A length reaching past the end of the file is what a crash mid-append leaves.
                torn("record runs past end of file");
                break;
            }
            let computed =
                crc32c::crc32c_append(crc32c::crc32c(&rest[..4]), &rest[RECORD_HEADER..end]);
            let corrupt = |reason: String| Error::StorageCorrupt {
                offset: at as u64,
                reason,
            };
            if computed != stored || len > self.max_record {
                if end == rest.len() {
                    torn("last record fails its checksum");
                    break;
                }
                return Err(corrupt(format!(
                    "checksum mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
                )));
            }
            let op = postcard::from_bytes(&rest[RECORD_HEADER..end])
                .map_err(|e| corrupt(format!("undecodable record: {e}")))?;
            ops.push(op);
            at += end;
        }
        if at < bytes.len() {
            self.file.set_len(at as u64)?;
            self.file.sync_all()?;
        }
        Ok(ops)
    }

    fn append(&mut self, ops: &[T]) -> Result<()> {
        self.buf.clear();
        for op in ops {
            let start = self.buf.len();
            self.buf.extend_from_slice(&[0; RECORD_HEADER]);
            self.buf = postcard::to_extend(op, std::mem::take(&mut self.buf))?;
            let len = self.buf.len() - start - RECORD_HEADER;
            let len32 = u32::try_from(len)
                .ok()
                .filter(|&l| l as usize <= self.max_record)
                .ok_or_else(|| Error::Storage(format!("record of {len} bytes is too large")))?;
            self.buf[start..start + 4].copy_from_slice(&len32.to_le_bytes());
            let crc = crc32c::crc32c_append(
                crc32c::crc32c(&len32.to_le_bytes()),
                &self.buf[start + RECORD_HEADER..],
            );
            self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(path: &Path) -> FileStorage<String> {
        FileStorage::open(path).unwrap()
    }

    #[test]
    fn file_storage_round_trips_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops");
        let mut s = reopen(&path);
        assert!(s.load().unwrap().is_empty());
        s.append(&["a".to_owned(), "b".to_owned()]).unwrap();
        s.append(&["c".to_owned()]).unwrap();
        drop(s);
        assert_eq!(reopen(&path).load().unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops");
        let mut s = reopen(&path);
        s.append(&["one".to_owned(), "two".to_owned()]).unwrap();
        drop(s);
        let full = std::fs::metadata(&path).unwrap().len();
        // Cut the last record at every possible point.
        for cut in 1..(RECORD_HEADER as u64 + 4) {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(full - cut).unwrap();
            drop(f);
            let mut s = reopen(&path);
            assert_eq!(s.load().unwrap(), ["one"], "cut {cut}");
            s.append(&["two".to_owned()]).unwrap();
            drop(s);
            assert_eq!(reopen(&path).load().unwrap(), ["one", "two"]);
        }
    }

    #[test]
    fn damaged_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops");
        let mut s = reopen(&path);
        s.append(&["one".to_owned(), "two".to_owned()]).unwrap();
        drop(s);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(reopen(&path).load().unwrap(), ["one"]);
    }

    #[test]
    fn mid_file_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops");
        let mut s = reopen(&path);
        s.append(&["one".to_owned(), "two".to_owned(), "three".to_owned()])
            .unwrap();
        drop(s);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[RECORD_HEADER] ^= 0x01; // first payload byte of the first record
        std::fs::write(&path, &bytes).unwrap();
        let err = reopen(&path).load().unwrap_err();
        assert!(
            matches!(err, Error::StorageCorrupt { offset: 0, .. }),
            "{err}"
        );
        // Nothing was truncated.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn boxed_storage_is_storage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s: Box<dyn Storage<String>> =
            Box::new(FileStorage::<String>::open(dir.path().join("ops")).unwrap());
        s.append(&["x".to_owned()]).unwrap();
        assert_eq!(s.load().unwrap(), ["x"]);
    }

    #[test]
    fn mem_storage_clones_share_state() {
        let mut a = MemStorage::new();
        let mut b = a.clone();
        a.append(&[1u32, 2]).unwrap();
        assert_eq!(b.load().unwrap(), [1, 2]);
        assert_eq!(a.len(), 2);
    }
}
