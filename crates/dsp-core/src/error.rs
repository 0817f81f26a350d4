//! The error type of `dsp-core`.

/// Errors returned by `dsp-core`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string could not be parsed as a [`NodeId`](crate::NodeId). Nothing changed.
    #[error("invalid node id {input:?}: expected a decimal u64, optionally prefixed with 'n'")]
    InvalidNodeId {
        /// The rejected input.
        input: String,
    },
    /// [`ManualClock::set`](crate::ManualClock::set) was asked to move monotonic time backwards.
    /// The clock was not changed.
    #[error(
        "monotonic time cannot go backwards (now {now_nanos} ns, requested {requested_nanos} ns)"
    )]
    TimeWentBackwards {
        /// The clock's current monotonic reading, in nanoseconds.
        now_nanos: u64,
        /// The rejected reading, in nanoseconds.
        requested_nanos: u64,
    },
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
