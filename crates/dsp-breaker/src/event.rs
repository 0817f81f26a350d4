//! Events a caller can subscribe to, the result classifier and the metrics snapshot.

use std::fmt;
use std::time::Duration;

use dsp_core::Instant;

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls flow and their outcomes fill the window.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A bounded number of trial calls decide between closed and open.
    HalfOpen,
    /// Every call is permitted and nothing is recorded.
    Disabled,
    /// Every call is rejected until the mode changes.
    ForcedOpen,
    /// Every call is permitted and recorded, but the breaker never trips.
    MetricsOnly,
}

impl State {
    pub(crate) const fn tag(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::Disabled => 3,
            State::ForcedOpen => 4,
            State::MetricsOnly => 5,
        }
    }

    pub(crate) const fn from_tag(tag: u64) -> State {
        match tag {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::Disabled,
            4 => State::ForcedOpen,
            _ => State::MetricsOnly,
        }
    }
}

/// Operating modes set by an operator with [`Breaker::set_mode`](crate::Breaker::set_mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// The normal state machine, starting closed with an empty window.
    Normal,
    /// Permit everything, record nothing.
    Disabled,
    /// Reject everything.
    ForcedOpen,
    /// Permit and record everything, never trip.
    MetricsOnly,
}

/// How one call's result counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A success (it may still count as slow).
    Success,
    /// A failure.
    Failure,
    /// Not counted at all (e.g. a client error or a cancelled call); a half-open trial slot is
    /// handed back.
    Ignored,
}

/// Decides how a call's result counts.
///
/// Implemented for every `Fn(&Result<T, E>) -> Outcome` and by [`DefaultClassifier`].
pub trait Classify<T, E> {
    /// Classifies one result.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// `Ok` is a success, `Err` a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<T, E> Classify<T, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// Something that happened to a breaker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// The breaker changed state.
    StateTransition {
        /// State before.
        from: State,
        /// State after.
        to: State,
        /// When (by the breaker's clock).
        at: Instant,
    },
    /// A call was refused.
    Rejected {
        /// The refusing state.
        state: State,
        /// When (by the breaker's clock).
        at: Instant,
    },
}

/// Receives [`BreakerEvent`]s. Called synchronously on the thread that caused the event, after
/// any internal lock is released, so it may call back into the breaker; keep it short.
///
/// Implemented for every `Fn(&BreakerEvent) + Send + Sync`.
pub trait BreakerListener: Send + Sync {
    /// Handles one event.
    fn on_event(&self, event: &BreakerEvent);
}

impl<F> BreakerListener for F
where
    F: Fn(&BreakerEvent) + Send + Sync,
{
    fn on_event(&self, event: &BreakerEvent) {
        self(event)
    }
}

/// A point-in-time view of a breaker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// Current state.
    pub state: State,
    /// Calls in the closed-state window.
    pub window_calls: u64,
    /// Failures in the window.
    pub window_failures: u64,
    /// Slow calls in the window.
    pub window_slow_calls: u64,
    /// Failures / calls in the window, if it holds any call.
    pub failure_rate: Option<f64>,
    /// Slow calls / calls in the window, if it holds any call.
    pub slow_call_rate: Option<f64>,
    /// Calls refused since the breaker was built.
    pub rejected_calls: u64,
    /// Consecutive trips without closing (drives the growing open duration).
    pub consecutive_trips: u32,
    /// Time left in the open state, if open.
    pub open_remaining: Option<Duration>,
}

pub(crate) struct Listeners(pub(crate) Vec<std::sync::Arc<dyn BreakerListener>>);

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Listeners({})", self.0.len())
    }
}
