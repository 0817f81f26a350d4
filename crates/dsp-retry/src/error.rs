//! The crate's error type.

/// Errors of the retry crate (configuration only: a retried operation's own error is returned
/// as is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; nothing was built and no state changed.
    #[error("invalid retry config: {0}")]
    InvalidConfig(&'static str),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
