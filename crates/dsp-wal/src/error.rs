//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong opening, writing or reading a [`Wal`](crate::Wal).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system IO error. If it came from a write or a sync of the log, the log is
    /// poisoned: later calls return [`Error::Poisoned`] and the log must be reopened (whatever
    /// reached the disk is then recovered).
    #[error(transparent)]
    Io(#[from] io::Error),

    /// The configuration was rejected by [`WalConfig::validate`](crate::WalConfig::validate).
    /// Nothing was opened or changed.
    #[error("invalid config: {0}")]
    InvalidConfig(&'static str),

    /// A record is larger than [`WalConfig::max_record_size`](crate::WalConfig). Nothing was
    /// appended (for a batch: no record of the batch was appended).
    #[error("record of {len} bytes exceeds the maximum record size of {max} bytes")]
    RecordTooLarge {
        /// Length of the rejected record.
        len: usize,
        /// The configured maximum.
        max: usize,
    },

    /// Another process (or another `Wal` in this process) holds the directory's `LOCK` file.
    /// Nothing was changed.
    #[error("wal directory {} is locked by another process", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },

    /// A file named like a segment (`<20 digits>.wal`) does not start with a valid segment
    /// header, or its name does not match the header. Nothing was changed.
    #[error("bad segment file {}: {reason}", path.display())]
    BadSegment {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A record before the tail of the log is corrupt: either in a segment that is not the last
    /// one, or followed by a valid record. Such damage cannot come from a crash, so it is never
    /// truncated silently. Nothing was changed.
    #[error(
        "corrupt record in {} at offset {offset} (expected index {index}): {reason}",
        path.display()
    )]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record in that file.
        offset: u64,
        /// The index the record at that position should have.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A segment is missing: one segment ends before the next one starts. Nothing was changed.
    #[error(
        "missing segment: {} ends at index {expected} but the next segment starts at {found}",
        path.display()
    )]
    MissingSegment {
        /// The segment before the gap.
        path: PathBuf,
        /// The first index the next segment should have.
        expected: u64,
        /// The first index the next segment has.
        found: u64,
    },

    /// `truncate_suffix` was asked to keep fewer records than the log retains at its front
    /// (the index is below `first_index() - 1`). Nothing was changed.
    #[error("index {index} is below the first retained index {first}")]
    IndexBelowFirst {
        /// The requested index.
        index: u64,
        /// The first retained index.
        first: u64,
    },

    /// An earlier write or sync failed; the log refuses further work because the state of the
    /// file after a failed `fdatasync` is unknown. Reopen the log to recover it.
    #[error("wal is poisoned by an earlier io error: {0}")]
    Poisoned(String),

    /// The log was closed.
    #[error("wal is closed")]
    Closed,
}
