//! The error type of `dsp-bulkhead`.

use std::sync::Arc;
use std::time::Duration;

/// Errors returned by `dsp-bulkhead`. Rejections carry the name of the bulkhead that refused,
/// so a caller (or an HTTP layer mapping them to 503) can tell dependencies apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every permit is taken and the bulkhead rejects rather than queues (or its wait queue is
    /// full). Nothing changed apart from the rejection counter.
    #[error("bulkhead {name:?} is full ({max_concurrent} concurrent calls)")]
    BulkheadFull {
        /// The bulkhead's name.
        name: Arc<str>,
        /// Its maximum number of concurrent calls.
        max_concurrent: usize,
    },
    /// A queued call waited the configured maximum without getting a permit. The call left the
    /// queue; nothing else changed apart from the rejection counter.
    #[error("bulkhead {name:?}: no permit after waiting {waited:?}")]
    WaitTimedOut {
        /// The bulkhead's name.
        name: Arc<str>,
        /// How long the call waited.
        waited: Duration,
    },
    /// A dedicated-pool bulkhead's queue is full. The job was not queued and will not run.
    #[error("bulkhead pool {name:?} queue is full ({capacity} queued jobs)")]
    QueueFull {
        /// The pool's name.
        name: Arc<str>,
        /// The queue's capacity.
        capacity: usize,
    },
    /// The pool was shut down before the job could be queued. The job will not run.
    #[error("bulkhead pool {name:?} is shut down")]
    PoolClosed {
        /// The pool's name.
        name: Arc<str>,
    },
    /// A queued job never produced a result: it panicked, or the pool shut down before running
    /// it.
    #[error("job in bulkhead pool {name:?} did not complete (panicked or pool shut down)")]
    JobLost {
        /// The pool's name.
        name: Arc<str>,
    },
    /// A dedicated pool was created outside a tokio runtime. Nothing was created.
    #[error("a bulkhead pool needs a tokio runtime")]
    NoRuntime,
    /// A registry already holds its maximum number of bulkheads; none was created.
    #[error("bulkhead registry is full ({capacity} bulkheads)")]
    RegistryFull {
        /// The registry's capacity.
        capacity: usize,
    },
    /// A configuration value is invalid. Nothing was created.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

impl Error {
    /// The name of the bulkhead or pool that produced this error, if any.
    pub fn bulkhead_name(&self) -> Option<&str> {
        match self {
            Error::BulkheadFull { name, .. }
            | Error::WaitTimedOut { name, .. }
            | Error::QueueFull { name, .. }
            | Error::PoolClosed { name }
            | Error::JobLost { name } => Some(name),
            _ => None,
        }
    }

    /// Whether this is a rejection caused by load (full, timed out, queue full), as opposed to
    /// a configuration or lifecycle error. Useful to keep bulkhead rejections from tripping a
    /// circuit breaker.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Error::BulkheadFull { .. } | Error::WaitTimedOut { .. } | Error::QueueFull { .. }
        )
    }
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
