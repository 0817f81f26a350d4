//! Configuration of the semaphore bulkhead and of the dedicated pool.

use std::time::Duration;

use crate::{Error, Result};

/// What a semaphore bulkhead does when every permit is taken. There is no default hidden in a
/// zero duration: the choice is explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Reject at once with [`Error::BulkheadFull`].
    Reject,
    /// Queue (FIFO) for at most `max_wait`, then fail with [`Error::WaitTimedOut`]; at most
    /// `max_waiting` calls queue, further ones are rejected with [`Error::BulkheadFull`].
    /// Waiting needs the `tokio` feature and a runtime with timers enabled (the deadline is a
    /// `tokio::time` timer); the synchronous `try_*` methods always reject.
    Wait {
        /// Longest time a call waits for a permit.
        max_wait: Duration,
        /// Longest queue.
        max_waiting: usize,
    },
}

/// Settings of a [`SemaphoreBulkhead`](crate::SemaphoreBulkhead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Maximum number of calls running at once. Default 25.
    pub max_concurrent: usize,
    /// Behaviour when full. Default [`WhenFull::Reject`].
    pub when_full: WhenFull,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: 25,
            when_full: WhenFull::Reject,
        }
    }
}

impl BulkheadConfig {
    /// A bulkhead of `max_concurrent` calls that rejects when full.
    pub fn reject(max_concurrent: usize) -> Self {
        BulkheadConfig {
            max_concurrent,
            when_full: WhenFull::Reject,
        }
    }

    /// A bulkhead of `max_concurrent` calls that queues up to `max_waiting` calls for at most
    /// `max_wait` each.
    pub fn wait(max_concurrent: usize, max_wait: Duration, max_waiting: usize) -> Self {
        BulkheadConfig {
            max_concurrent,
            when_full: WhenFull::Wait {
                max_wait,
                max_waiting,
            },
        }
    }

    /// Checks the invariants.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    pub fn validate(&self) -> Result<()> {
        if self.max_concurrent == 0 {
            return Err(Error::InvalidConfig("max_concurrent must be at least 1"));
        }
        if self.max_concurrent > usize::MAX / 4 {
            return Err(Error::InvalidConfig("max_concurrent is too large"));
        }
        if let WhenFull::Wait {
            max_wait,
            max_waiting,
        } = self.when_full
        {
            if max_wait.is_zero() {
                return Err(Error::InvalidConfig(
                    "max_wait must be non-zero (use WhenFull::Reject to reject at once)",
                ));
            }
            if max_waiting == 0 {
                return Err(Error::InvalidConfig(
                    "max_waiting must be at least 1 (use WhenFull::Reject to reject at once)",
                ));
            }
        }
        Ok(())
    }
}

/// Settings of a `PoolBulkhead` (feature `tokio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Number of worker tasks; each runs one job at a time. Default 4.
    pub workers: usize,
    /// Jobs that may wait for a worker; further submissions are rejected. Default 64.
    pub queue_capacity: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            workers: 4,
            queue_capacity: 64,
        }
    }
}

impl PoolConfig {
    /// Checks the invariants.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 {
            return Err(Error::InvalidConfig("a pool needs at least one worker"));
        }
        if self.queue_capacity == 0 {
            return Err(Error::InvalidConfig(
                "a pool queue needs a capacity of at least 1",
            ));
        }
        if self.workers > 65_536 || self.queue_capacity > (1 << 30) {
            return Err(Error::InvalidConfig(
                "pool workers or queue capacity too large",
            ));
        }
        Ok(())
    }
}
