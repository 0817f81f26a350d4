//! The crate's error type.

use std::time::Duration;

use crate::State;

/// Errors of the circuit breaker.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; nothing was built and no state changed.
    #[error("invalid circuit breaker config: {0}")]
    InvalidConfig(&'static str),
    /// The breaker refused the call (open, forced open, or no half-open trial slot free).
    ///
    /// No call was made and the breaker's window did not change; only its rejection counter
    /// moved. `retry_after` is the time left in the open state, when known.
    #[error("circuit breaker rejected the call in state {state:?}")]
    Rejected {
        /// The state that refused the call.
        state: State,
        /// Time until the breaker lets a trial call through, when known.
        retry_after: Option<Duration>,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error of [`Breaker::call`](crate::Breaker::call): either the breaker refused the call or
/// the call itself failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker refused the call; the operation was not run. Holds an [`Error::Rejected`].
    #[error(transparent)]
    Rejected(Error),
    /// The operation ran and returned this error (it was recorded as its classifier said).
    #[error("{0}")]
    Inner(E),
}

impl<E> BreakerError<E> {
    /// `true` if the breaker refused the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, BreakerError::Rejected(_))
    }

    /// The operation's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Inner(e) => Some(e),
            BreakerError::Rejected(_) => None,
        }
    }
}
