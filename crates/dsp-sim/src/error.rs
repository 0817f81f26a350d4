//! The error type of `dsp-sim`.

use dsp_core::{Instant, NodeId};

/// Errors returned by `dsp-sim`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range. Nothing was built or changed.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The same node id was given twice to [`Sim::new`](crate::Sim::new). Nothing was built.
    #[error("duplicate node id {0}")]
    DuplicateNode(NodeId),
    /// A user invariant failed after a step. The simulation stopped at that step; its state is
    /// left as it was so the test can inspect it.
    #[error(
        "invariant {name:?} violated at step {step} (t={at:?}): {message} \
         (replay with DSP_SIM_SEED={seed})"
    )]
    InvariantViolated {
        /// The invariant's name, as given to [`Sim::add_invariant`](crate::Sim::add_invariant).
        name: String,
        /// What the invariant reported.
        message: String,
        /// The seed of the run, to replay it.
        seed: u64,
        /// The step after which the invariant failed.
        step: u64,
        /// The virtual time of that step.
        at: Instant,
    },
    /// The run processed more than [`SimConfig::max_steps`](crate::SimConfig::max_steps) events.
    /// The simulation stopped; its state is intact.
    #[error("step limit of {limit} exceeded at t={at:?} (replay with DSP_SIM_SEED={seed})")]
    StepLimit {
        /// The configured limit.
        limit: u64,
        /// The seed of the run.
        seed: u64,
        /// The virtual time when the limit was hit.
        at: Instant,
    },
    /// One or more seeds of [`run_seeds`](crate::run_seeds) failed.
    #[error("{} of {total} seeds failed; first: seed {} ({}) (replay with DSP_SIM_SEED=<seed>)",
        failures.len(),
        failures.first().map_or(0, |f| f.0),
        failures.first().map_or("", |f| f.1.as_str()))]
    SeedsFailed {
        /// Each failing seed with its error message, in seed order.
        failures: Vec<(u64, String)>,
        /// How many seeds ran.
        total: u64,
    },
    /// A [`History`](crate::lin::History) was given an inconsistent operation (unknown, already
    /// returned, or returning before its call). The history was not changed.
    #[error("invalid history: {0}")]
    InvalidHistory(String),
    /// A test body passed to [`run_seeds`](crate::run_seeds) reported a failure of its own.
    #[error("{0}")]
    Failed(String),
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
