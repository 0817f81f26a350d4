//! The sans-IO retry state machine: given `now` and how an attempt failed, the next delay or
//! the reason to give up.

use std::time::Duration;

use dsp_core::{DetRng, Instant};

use crate::backoff::Backoff;
use crate::config::RetryPolicy;

/// What a classifier says about a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Retry after the backoff delay (costs the budget's `retry_cost`).
    Retry,
    /// The attempt timed out: retry after the backoff delay (costs `timeout_cost`).
    RetryTimeout,
    /// The server asked to retry after this delay (`Retry-After`): it replaces the backoff delay.
    RetryAfter(Duration),
    /// Do not retry this error.
    DontRetry,
}

impl Decision {
    /// `true` unless [`Decision::DontRetry`].
    pub fn is_retry(self) -> bool {
        !matches!(self, Decision::DontRetry)
    }
}

/// Why a retry loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The classifier said the error is not retryable.
    NotRetryable,
    /// The request is not idempotent (and not marked so).
    NotIdempotent,
    /// `max_attempts` attempts were made.
    MaxAttempts,
    /// The next attempt would start after `max_elapsed`.
    MaxElapsed,
    /// The next attempt would start at or after the caller's deadline.
    Deadline,
    /// The retry budget has no tokens for another retry.
    BudgetExhausted,
}

/// The outcome of [`RetryState::on_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Sleep `delay`, then start the next attempt at `at`.
    RetryAt {
        /// When to start the next attempt.
        at: Instant,
        /// `at - now`.
        delay: Duration,
    },
    /// Stop and return the last error.
    GiveUp(GiveUp),
}

/// Per-call options: idempotency and the caller's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallOptions {
    /// Whether the operation may run more than once. Non-idempotent calls are never retried
    /// nor hedged.
    pub idempotent: bool,
    /// Never start an attempt at or after this instant (by the retrier's clock).
    pub deadline: Option<Instant>,
}

impl CallOptions {
    /// An idempotent call without deadline.
    pub fn idempotent() -> Self {
        Self {
            idempotent: true,
            deadline: None,
        }
    }

    /// A call that must not be repeated.
    pub fn non_idempotent() -> Self {
        Self {
            idempotent: false,
            deadline: None,
        }
    }

    /// Sets the deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// The retry state of one call, free of IO, clocks and sleeps.
///
/// ```
/// use std::time::Duration;
/// use dsp_core::{DetRng, Instant};
/// use dsp_retry::{BackoffConfig, BackoffKind, CallOptions, Decision, GiveUp, Next, RetryPolicy, RetryState};
///
/// let policy = RetryPolicy {
///     backoff: BackoffConfig { kind: BackoffKind::Constant, base: Duration::from_millis(10), ..Default::default() },
///     max_attempts: 2,
///     ..Default::default()
/// };
/// let mut state = RetryState::new(&policy, Instant::ZERO, CallOptions::idempotent(), DetRng::from_seed(1));
/// let next = state.on_failure(Instant::ZERO, Decision::Retry);
/// assert_eq!(next, Next::RetryAt { at: Instant::from_millis(10), delay: Duration::from_millis(10) });
/// state.on_attempt_start();
/// assert_eq!(state.on_failure(Instant::from_millis(11), Decision::Retry), Next::GiveUp(GiveUp::MaxAttempts));
/// ```
#[derive(Debug, Clone)]
pub struct RetryState {
    backoff: Backoff,
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    options: CallOptions,
    started: Instant,
    attempts: u32,
}

impl RetryState {
    /// The state of a call whose first attempt starts at `now`.
    pub fn new(policy: &RetryPolicy, now: Instant, options: CallOptions, rng: DetRng) -> Self {
        Self {
            backoff: Backoff::new(policy.backoff, rng),
            max_attempts: policy.max_attempts.max(1),
            max_elapsed: policy.max_elapsed,
            options,
            started: now,
            attempts: 1,
        }
    }

    /// Attempts started so far (the first included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Counts the start of a retry (call it when the delay of [`Next::RetryAt`] has passed).
    pub fn on_attempt_start(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
    }

    /// The latest attempt failed at `now`, classified as `decision`: when to retry, or why not.
    pub fn on_failure(&mut self, now: Instant, decision: Decision) -> Next {
        let delay = match decision {
            Decision::DontRetry => return Next::GiveUp(GiveUp::NotRetryable),
            _ if !self.options.idempotent => return Next::GiveUp(GiveUp::NotIdempotent),
            _ if self.attempts >= self.max_attempts => return Next::GiveUp(GiveUp::MaxAttempts),
            Decision::RetryAfter(d) => d,
            Decision::Retry | Decision::RetryTimeout => self.backoff.next_delay(),
        };
        let at = now + delay;
        if let Some(max) = self.max_elapsed
            && at.saturating_duration_since(self.started) > max
        {
            return Next::GiveUp(GiveUp::MaxElapsed);
        }
        if let Some(deadline) = self.options.deadline
            && at >= deadline
        {
            return Next::GiveUp(GiveUp::Deadline);
        }
        Next::RetryAt { at, delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackoffConfig, BackoffKind};

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            backoff: BackoffConfig {
                kind: BackoffKind::Constant,
                base: Duration::from_millis(100),
                ..Default::default()
            },
            max_attempts,
            max_elapsed: Some(Duration::from_secs(1)),
            seed: 1,
        }
    }

    fn state(max_attempts: u32, options: CallOptions) -> RetryState {
        RetryState::new(
            &policy(max_attempts),
            Instant::ZERO,
            options,
            DetRng::from_seed(1),
        )
    }

    #[test]
    fn non_idempotent_calls_are_not_retried() {
        let mut s = state(5, CallOptions::non_idempotent());
        assert_eq!(
            s.on_failure(Instant::ZERO, Decision::Retry),
            Next::GiveUp(GiveUp::NotIdempotent)
        );
    }

    #[test]
    fn non_retryable_errors_stop_at_once() {
        let mut s = state(5, CallOptions::idempotent());
        assert_eq!(
            s.on_failure(Instant::ZERO, Decision::DontRetry),
            Next::GiveUp(GiveUp::NotRetryable)
        );
    }

    #[test]
    fn retry_after_replaces_backoff_delay() {
        let mut s = state(5, CallOptions::idempotent());
        let d = Duration::from_millis(300);
        assert_eq!(
            s.on_failure(Instant::ZERO, Decision::RetryAfter(d)),
            Next::RetryAt {
                at: Instant::from_millis(300),
                delay: d
            }
        );
    }

    #[test]
    fn gives_up_rather_than_sleep_past_deadline() {
        let opts = CallOptions::idempotent().with_deadline(Instant::from_millis(150));
        let mut s = state(5, opts);
        assert!(matches!(
            s.on_failure(Instant::ZERO, Decision::Retry),
            Next::RetryAt { .. }
        ));
        s.on_attempt_start();
        assert_eq!(
            s.on_failure(Instant::from_millis(100), Decision::Retry),
            Next::GiveUp(GiveUp::Deadline)
        );
    }

    #[test]
    fn gives_up_after_max_elapsed() {
        let mut s = state(100, CallOptions::idempotent());
        assert_eq!(
            s.on_failure(Instant::from_millis(950), Decision::Retry),
            Next::GiveUp(GiveUp::MaxElapsed)
        );
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut s = state(3, CallOptions::idempotent());
        for _ in 0..2 {
            assert!(matches!(
                s.on_failure(Instant::ZERO, Decision::Retry),
                Next::RetryAt { .. }
            ));
            s.on_attempt_start();
        }
        assert_eq!(s.attempts(), 3);
        assert_eq!(
            s.on_failure(Instant::ZERO, Decision::Retry),
            Next::GiveUp(GiveUp::MaxAttempts)
        );
    }
}
