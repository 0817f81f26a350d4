//! The async executors (retry and hedging) on tokio's timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use dsp_core::sync::atomic::{AtomicU64, Ordering};
use dsp_core::{Clock, DetRng, Instant, SystemClock, WallTime};

use crate::config::{HedgeConfig, HedgeDelay, RetryPolicy};
use crate::histogram::LatencyHistogram;
use crate::policy::{CallOptions, Decision, Next, RetryState};
use crate::{Result, RetryBudget};

/// A [`Clock`] that follows tokio's clock, so paused-time tests (`start_paused = true`) see time
/// advance as timers fire.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: ::tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose zero is now (by tokio's clock).
    pub fn new() -> Self {
        Self {
            origin: ::tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn wall(&self) -> WallTime {
        WallTime::from_system_time(std::time::SystemTime::now())
    }
}

/// Runs operations with retries: a validated [`RetryPolicy`], an optional shared
/// [`RetryBudget`] and a clock for deadlines and elapsed time.
#[derive(Debug)]
pub struct Retrier<C: Clock = SystemClock> {
    policy: RetryPolicy,
    budget: Option<Arc<RetryBudget>>,
    clock: C,
    runs: AtomicU64,
}

impl Retrier<SystemClock> {
    /// A retrier on the system clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if the policy is invalid.
    pub fn new(policy: RetryPolicy) -> Result<Self> {
        Self::with_clock(policy, SystemClock)
    }
}

impl<C: Clock> Retrier<C> {
    /// A retrier on `clock`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if the policy is invalid.
    pub fn with_clock(policy: RetryPolicy, clock: C) -> Result<Self> {
        policy.validate()?;
        Ok(Self {
            policy,
            budget: None,
            clock,
            runs: AtomicU64::new(0),
        })
    }

    /// Spends retries from `budget` (shareable with other retriers and hedgers).
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The budget, if any.
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.budget.as_ref()
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// A fresh sans-IO state for one call, with its own jitter stream derived from the policy's
    /// seed and a per-retrier run counter.
    pub fn state(&self, options: CallOptions) -> RetryState {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let rng = DetRng::from_seed(self.policy.seed).fork(run);
        RetryState::new(&self.policy, self.clock.now(), options, rng)
    }

    /// Runs `f` until it succeeds or the policy gives up, returning the last error then.
    ///
    /// `classify` decides for each error whether (and how) to retry. Before sleeping, the retry
    /// reserves its cost from the budget (no tokens: give up); the reservation is refunded if
    /// the retry succeeds or this future is dropped, and spent if the retry fails. A first
    /// attempt that succeeds deposits into the budget. Attempts never start at or after
    /// `options.deadline`: the last error is returned instead of sleeping past it.
    pub async fn run<F, Fut, T, E, K>(
        &self,
        options: CallOptions,
        classify: K,
        mut f: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        K: Fn(&E) -> Decision,
    {
        let mut state = self.state(options);
        let mut token = None;
        loop {
            match f().await {
                Ok(v) => {
                    match (token.take(), &self.budget) {
                        (Some(t), _) => crate::BudgetToken::refund(t),
                        (None, Some(b)) if state.attempts() == 1 => b.record_success(),
                        _ => {}
                    }
                    return Ok(v);
                }
                Err(e) => {
                    if let Some(t) = token.take() {
                        crate::BudgetToken::consume(t);
                    }
                    let decision = classify(&e);
                    let delay = match state.on_failure(self.clock.now(), decision) {
                        Next::RetryAt { delay, .. } => delay,
                        Next::GiveUp(_reason) => {
                            #[cfg(feature = "tracing")]
                            tracing::debug!(reason = ?_reason, attempts = state.attempts(), "giving up");
                            return Err(e);
                        }
                    };
                    if let Some(b) = &self.budget {
                        match b.withdraw(decision) {
                            Some(t) => token = Some(t),
                            None => return Err(e),
                        }
                    }
                    #[cfg(feature = "tracing")]
                    tracing::debug!(attempt = state.attempts() + 1, ?delay, "retrying");
                    ::tokio::time::sleep(delay).await;
                    state.on_attempt_start();
                }
            }
        }
    }
}

/// Runs an idempotent `f` with `retrier`, retrying every error.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use dsp_retry::{BackoffConfig, BackoffKind, Retrier, RetryPolicy, retry};
///
/// let policy = RetryPolicy {
///     backoff: BackoffConfig { kind: BackoffKind::Constant, base: Duration::from_millis(1), ..Default::default() },
///     max_attempts: 3,
///     ..Default::default()
/// };
/// let retrier = Retrier::new(policy)?;
/// let mut calls = 0;
/// let r = retry(&retrier, || {
///     calls += 1;
///     let n = calls;
///     async move { if n < 3 { Err("busy") } else { Ok(n) } }
/// })
/// .await;
/// assert_eq!(r, Ok(3));
/// # Ok::<(), dsp_retry::Error>(())
/// # }).unwrap();
/// ```
pub async fn retry<C, F, Fut, T, E>(retrier: &Retrier<C>, f: F) -> Result<T, E>
where
    C: Clock,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retrier
        .run(CallOptions::idempotent(), |_: &E| Decision::Retry, f)
        .await
}

/// Sends backup requests for slow calls ("hedging"), within an optional shared budget.
///
/// The first attempt starts at once; while no attempt has succeeded, another starts after the
/// hedge delay (fixed, or a latency percentile of recent winning attempts), up to `max_hedges`
/// extra attempts, each paying `retry_cost` from the budget (no tokens: no hedge). The first
/// success wins and the other attempts are dropped (cancelled). If every attempt in flight fails
/// and no more hedges are due, the last error is returned. Non-idempotent calls are never hedged.
#[derive(Debug)]
pub struct Hedger<C: Clock = SystemClock> {
    config: HedgeConfig,
    budget: Option<Arc<RetryBudget>>,
    latencies: LatencyHistogram,
    clock: C,
}

impl Hedger<SystemClock> {
    /// A hedger on the system clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if the configuration is invalid.
    pub fn new(config: HedgeConfig) -> Result<Self> {
        Self::with_clock(config, SystemClock)
    }
}

impl<C: Clock> Hedger<C> {
    /// A hedger on `clock` (used to measure latencies).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if the configuration is invalid.
    pub fn with_clock(config: HedgeConfig, clock: C) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            budget: None,
            latencies: LatencyHistogram::default(),
            clock,
        })
    }

    /// Pays for hedges from `budget` (shareable with retriers).
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The latency histogram of winning attempts.
    pub fn latencies(&self) -> &LatencyHistogram {
        &self.latencies
    }

    /// The delay before the next backup request.
    pub fn hedge_delay(&self) -> Duration {
        match self.config.delay {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile {
                percentile,
                min_samples,
                fallback,
            } => {
                if self.latencies.count() < min_samples {
                    fallback
                } else {
                    self.latencies.percentile(percentile).unwrap_or(fallback)
                }
            }
        }
    }

    /// Runs `f`, hedging it if `options.idempotent`.
    pub async fn run<F, Fut, T, E>(&self, options: CallOptions, mut f: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let max_hedges = if options.idempotent {
            self.config.max_hedges
        } else {
            0
        };
        let mut inflight: Vec<(Instant, Pin<Box<Fut>>)> = vec![(self.clock.now(), Box::pin(f()))];
        let mut hedges = 0u32;
        let mut last_err = None;
        let mut timer = Box::pin(::tokio::time::sleep(self.hedge_delay()));
        let result = std::future::poll_fn(|cx| {
            loop {
                let mut i = 0;
                while i < inflight.len() {
                    match inflight[i].1.as_mut().poll(cx) {
                        Poll::Ready(Ok(v)) => {
                            self.latencies.record(self.clock.now() - inflight[i].0);
                            return Poll::Ready(Ok(v));
                        }
                        Poll::Ready(Err(e)) => {
                            drop(inflight.swap_remove(i));
                            last_err = Some(e);
                        }
                        Poll::Pending => i += 1,
                    }
                }
                let hedge_due = hedges < max_hedges
                    && !inflight.is_empty()
                    && timer.as_mut().poll(cx).is_ready();
                if hedge_due {
                    hedges += 1;
                    let paid = self
                        .budget
                        .as_ref()
                        .is_none_or(|b| b.try_withdraw(b.config().retry_cost));
                    if paid {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(hedge = hedges, "sending hedged request");
                        inflight.push((self.clock.now(), Box::pin(f())));
                        let next = ::tokio::time::Instant::now() + self.hedge_delay();
                        timer.as_mut().reset(next);
                        continue;
                    }
                    hedges = max_hedges;
                }
                if inflight.is_empty() {
                    return match last_err.take() {
                        Some(e) => Poll::Ready(Err(e)),
                        // Unreachable: the set empties only by failures, which set `last_err`.
                        None => Poll::Pending,
                    };
                }
                return Poll::Pending;
            }
        })
        .await;
        if result.is_ok()
            && hedges == 0
            && let Some(b) = &self.budget
        {
            b.record_success();
        }
        result
    }
}
