//! The async API: [`AsyncWal`], behind the `tokio` feature.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::WalConfig;
use crate::error::{Error, Result};
use crate::segment::RecoveryReport;
use crate::wal::Wal;

/// A cloneable async handle to a [`Wal`].
///
/// Every blocking call (writes, `fdatasync`, reads) runs on tokio's blocking pool through
/// `spawn_blocking`, never on a runtime worker thread, and joins the same group commit as
/// synchronous appenders: many concurrent `append(..).await`s share one `fdatasync`.
#[derive(Clone, Debug)]
pub struct AsyncWal {
    wal: Arc<Wal>,
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Io(std::io::Error::other(e))
}

impl AsyncWal {
    /// Wraps an open log.
    pub fn new(wal: Wal) -> Self {
        Self { wal: Arc::new(wal) }
    }

    /// Opens (and recovers) the log in `dir` on the blocking pool. See [`Wal::open`].
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub async fn open(
        dir: impl Into<PathBuf>,
        config: WalConfig,
    ) -> Result<(Self, RecoveryReport)> {
        let dir = dir.into();
        let (wal, report) = tokio::task::spawn_blocking(move || Wal::open(dir, config))
            .await
            .map_err(join_error)??;
        Ok((Self::new(wal), report))
    }

    /// The synchronous log, for the non-blocking accessors (`first_index`, `last_index`, ...).
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Wal) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || f(&wal))
            .await
            .map_err(join_error)?
    }

    /// Appends one record; see [`Wal::append`].
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub async fn append(&self, record: impl Into<Bytes>) -> Result<u64> {
        let record = record.into();
        self.run(move |wal| wal.append(&record)).await
    }

    /// Appends records with consecutive indexes; see [`Wal::append_batch`].
    ///
    /// # Errors
    /// As [`Wal::append_batch`].
    pub async fn append_batch(&self, records: Vec<Bytes>) -> Result<Range<u64>> {
        self.run(move |wal| wal.append_batch(&records)).await
    }

    /// Reads one record; see [`Wal::read`].
    ///
    /// # Errors
    /// As [`Wal::read`].
    pub async fn read(&self, index: u64) -> Result<Option<Bytes>> {
        self.run(move |wal| wal.read(index)).await
    }

    /// Reads up to `max` records from `index`; see [`Wal::iter_from`].
    ///
    /// # Errors
    /// As [`Wal::read`].
    pub async fn read_from(&self, index: u64, max: usize) -> Result<Vec<(u64, Bytes)>> {
        self.run(move |wal| wal.iter_from(index).take(max).collect())
            .await
    }

    /// Makes everything appended so far durable; see [`Wal::sync`].
    ///
    /// # Errors
    /// As [`Wal::sync`].
    pub async fn sync(&self) -> Result<()> {
        self.run(Wal::sync).await
    }

    /// See [`Wal::truncate_prefix`].
    ///
    /// # Errors
    /// As [`Wal::truncate_prefix`].
    pub async fn truncate_prefix(&self, low_water_mark: u64) -> Result<u64> {
        self.run(move |wal| wal.truncate_prefix(low_water_mark))
            .await
    }

    /// See [`Wal::truncate_suffix`].
    ///
    /// # Errors
    /// As [`Wal::truncate_suffix`].
    pub async fn truncate_suffix(&self, index: u64) -> Result<()> {
        self.run(move |wal| wal.truncate_suffix(index)).await
    }
}
