//! Configuration: segment size, record size limit and durability mode.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::MAX_RECORD_LIMIT;

/// When an append becomes durable, and what survives a crash.
///
/// In every mode an append assigns its index, then its frame is written to the operating
/// system (`pwrite`) before the call returns, so a *process* crash (SIGKILL, panic, abort) never
/// loses a record whose append returned. The modes differ in what survives a *machine* crash
/// (power loss, kernel panic), which only `fdatasync` protects against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every append returns only after an `fdatasync` that covers its record. Concurrent
    /// appenders share one `fdatasync` (group commit). After any crash, every record whose
    /// append returned `Ok` is present.
    Always,
    /// Appends return once written to the operating system. A background thread syncs at most
    /// `max_delay` after unsynced data appears, and the append that brings the unsynced bytes
    /// to `max_bytes` or more syncs before it returns. After a machine crash, records appended
    /// within the last `max_delay` (plus the time of one `fdatasync`) may be lost, and never
    /// more than about `max_bytes` of them; what is lost is always a suffix of the log.
    Batched {
        /// Longest time a written record waits for its `fdatasync`.
        max_delay: Duration,
        /// Unsynced bytes that force a sync by the appender.
        max_bytes: u64,
    },
    /// No automatic `fdatasync` (for tests and rebuildable data). A machine crash loses
    /// everything since the last explicit [`Wal::sync`](crate::Wal::sync), segment roll or
    /// close; what is lost is always a suffix of the log.
    Never,
}

/// Configuration of a [`Wal`](crate::Wal).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalConfig {
    /// A segment is rolled (a new file started) once it holds at least this many bytes. A
    /// segment can exceed it by one group-commit batch. Default 64 MiB; at least 4 KiB.
    pub segment_size: u64,
    /// Largest record accepted, in bytes. Default 16 MiB; at most 1 GiB, at least 1.
    pub max_record_size: usize,
    /// The durability mode. Default [`Durability::Always`].
    pub durability: Durability,
    /// Index of the first record of a newly created log (ignored when the log exists).
    /// Default 1.
    pub first_index: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            max_record_size: 16 << 20,
            durability: Durability::Always,
            first_index: 1,
        }
    }
}

impl WalConfig {
    /// Sets [`segment_size`](Self::segment_size).
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets [`max_record_size`](Self::max_record_size).
    #[must_use]
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes;
        self
    }

    /// Sets [`durability`](Self::durability).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`first_index`](Self::first_index).
    #[must_use]
    pub fn first_index(mut self, index: u64) -> Self {
        self.first_index = index;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a field is out of range.
    pub fn validate(&self) -> Result<()> {
        if self.segment_size < 4096 {
            return Err(Error::InvalidConfig(
                "segment_size must be at least 4096 bytes",
            ));
        }
        if self.max_record_size == 0 {
            return Err(Error::InvalidConfig("max_record_size must be at least 1"));
        }
        if self.max_record_size > MAX_RECORD_LIMIT {
            return Err(Error::InvalidConfig(
                "max_record_size must be at most 1 GiB",
            ));
        }
        if self.first_index == u64::MAX {
            return Err(Error::InvalidConfig("first_index must be below u64::MAX"));
        }
        if let Durability::Batched {
            max_delay,
            max_bytes,
        } = self.durability
        {
            if max_delay.is_zero() {
                return Err(Error::InvalidConfig(
                    "batched durability needs a non-zero max_delay (use Durability::Always)",
                ));
            }
            if max_bytes == 0 {
                return Err(Error::InvalidConfig(
                    "batched durability needs a non-zero max_bytes (use Durability::Always)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(WalConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_configs_are_rejected() {
        let bad = [
            WalConfig::default().segment_size(0),
            WalConfig::default().segment_size(100),
            WalConfig::default().max_record_size(0),
            WalConfig::default().max_record_size(MAX_RECORD_LIMIT + 1),
            WalConfig::default().first_index(u64::MAX),
            WalConfig::default().durability(Durability::Batched {
                max_delay: Duration::ZERO,
                max_bytes: 1,
            }),
            WalConfig::default().durability(Durability::Batched {
                max_delay: Duration::from_millis(1),
                max_bytes: 0,
            }),
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(Error::InvalidConfig(_))),
                "{config:?}"
            );
        }
    }
}
