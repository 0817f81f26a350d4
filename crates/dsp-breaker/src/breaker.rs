//! The breaker: a lock-free closed path, transitions under a lock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dsp_core::sync::Mutex;
use dsp_core::sync::atomic::{AtomicU64, Ordering};
use dsp_core::{Clock, Instant, SystemClock};

use crate::config::BreakerConfig;
use crate::event::{
    BreakerEvent, BreakerListener, Classify, DefaultClassifier, Listeners, Metrics, Mode, Outcome,
    State,
};
use crate::window::{CachePadded, Totals, Window};
use crate::{BreakerError, Error, Result};

const STATE_BITS: u32 = 8;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const PPM: u64 = 1_000_000;

#[inline]
const fn tag_of(word: u64) -> u64 {
    word & STATE_MASK
}

#[inline]
const fn gen_of(word: u64) -> u64 {
    word >> STATE_BITS
}

const CLOSED: u64 = State::Closed.tag();
const OPEN: u64 = State::Open.tag();
const HALF_OPEN: u64 = State::HalfOpen.tag();
const DISABLED: u64 = State::Disabled.tag();
const METRICS_ONLY: u64 = State::MetricsOnly.tag();

/// Half-open trial slots: `generation(32) << 32 | issued(32)`.
#[inline]
const fn slots_word(gen_: u64, issued: u64) -> u64 {
    (gen_ & 0xFFFF_FFFF) << 32 | issued
}

/// Half-open results: `generation(16) << 48 | slow(16) << 32 | failures(16) << 16 | done(16)`.
#[inline]
const fn results_tag(gen_: u64) -> u64 {
    (gen_ & 0xFFFF) << 48
}

fn rate_ppm(rate: f64) -> u64 {
    // Rates are validated to (0, 1]; round so that 0.5 is exactly 500_000.
    (rate * PPM as f64).round() as u64
}

#[inline]
fn over(count: u64, calls: u64, threshold_ppm: u64) -> bool {
    count.saturating_mul(PPM) >= threshold_ppm.saturating_mul(calls)
}

/// Mutable state that only transitions touch.
#[derive(Debug, Default)]
struct Transitions {
    consecutive_trips: u32,
}

#[derive(Debug)]
pub(crate) struct Inner<C> {
    /// `generation << 8 | state tag`; read by every call, written only under `transitions`.
    state: CachePadded<AtomicU64>,
    window: Window,
    trial_slots: CachePadded<AtomicU64>,
    trial_results: CachePadded<AtomicU64>,
    /// Nanos: end of the open state.
    open_until: AtomicU64,
    /// Nanos: when half-open began.
    half_open_since: AtomicU64,
    rejected: AtomicU64,
    transitions: Mutex<Transitions>,
    config: BreakerConfig,
    failure_ppm: u64,
    slow_ppm: u64,
    slow_nanos: Option<u64>,
    /// Count window and no slow-call detection: closed successes take the shortest path.
    fast_closed: bool,
    trials: u64,
    clock: C,
    listeners: Listeners,
}

/// A circuit breaker. Cloning is cheap and clones share one breaker.
///
/// The closed state takes no lock and allocates nothing: a permit is one atomic load, and
/// recording a result is one `fetch_add` on the current window bucket (plus reading the clock
/// when slow-call detection or a time window is configured). Only state transitions take a lock.
#[derive(Debug)]
pub struct Breaker<C: Clock = SystemClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for Breaker<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Builds a [`Breaker`] with a clock and listeners.
#[derive(Debug)]
pub struct BreakerBuilder<C: Clock = SystemClock> {
    config: BreakerConfig,
    clock: C,
    listeners: Listeners,
}

impl BreakerBuilder<SystemClock> {
    fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            clock: SystemClock,
            listeners: Listeners(Vec::new()),
        }
    }
}

impl<C: Clock> BreakerBuilder<C> {
    /// Uses `clock` for open durations, slow calls and time windows.
    pub fn clock<C2: Clock>(self, clock: C2) -> BreakerBuilder<C2> {
        BreakerBuilder {
            config: self.config,
            clock,
            listeners: self.listeners,
        }
    }

    /// Adds an event listener.
    pub fn listener(mut self, listener: impl BreakerListener + 'static) -> Self {
        self.listeners.0.push(Arc::new(listener));
        self
    }

    /// Adds a shared event listener.
    pub fn shared_listener(mut self, listener: Arc<dyn BreakerListener>) -> Self {
        self.listeners.0.push(listener);
        self
    }

    /// Validates the configuration and builds the breaker.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the configuration is invalid.
    pub fn build(self) -> Result<Breaker<C>> {
        let config = self.config;
        config.validate()?;
        let window = Window::new(&config.window);
        let window_needs_clock = window.needs_clock();
        let inner = Inner {
            state: CachePadded(AtomicU64::new(CLOSED)),
            window,
            trial_slots: CachePadded(AtomicU64::new(0)),
            trial_results: CachePadded(AtomicU64::new(0)),
            open_until: AtomicU64::new(0),
            half_open_since: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            transitions: Mutex::new(Transitions::default()),
            failure_ppm: rate_ppm(config.failure_rate_threshold),
            slow_ppm: config
                .slow_call
                .map_or(PPM + 1, |s| rate_ppm(s.rate_threshold)),
            slow_nanos: config
                .slow_call
                .map(|s| u64::try_from(s.duration.as_nanos()).unwrap_or(u64::MAX)),
            fast_closed: config.slow_call.is_none() && !window_needs_clock,
            trials: u64::from(config.half_open_trials),
            config,
            clock: self.clock,
            listeners: self.listeners,
        };
        Ok(Breaker {
            inner: Arc::new(inner),
        })
    }
}

impl Breaker<SystemClock> {
    /// A breaker on the system clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the configuration is invalid.
    pub fn new(config: BreakerConfig) -> Result<Self> {
        BreakerBuilder::new(config).build()
    }

    /// A builder, to set a clock or listeners.
    pub fn builder(config: BreakerConfig) -> BreakerBuilder<SystemClock> {
        BreakerBuilder::new(config)
    }
}

impl<C: Clock> Breaker<C> {
    /// A breaker on the given clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the configuration is invalid.
    pub fn with_clock(config: BreakerConfig, clock: C) -> Result<Self> {
        BreakerBuilder::new(config).clock(clock).build()
    }

    /// Asks for permission to make one call.
    ///
    /// The returned [`Permit`] must be completed with [`Permit::success`],
    /// [`Permit::failure`] or [`Permit::record`]; dropping it counts as
    /// [`Outcome::Ignored`] (a half-open trial slot is handed back).
    ///
    /// # Errors
    /// [`Error::Rejected`] when open, forced open, or when every half-open trial slot is taken.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>> {
        let (word, start) = self.inner.acquire()?;
        Ok(Permit {
            inner: &self.inner,
            word,
            start,
            armed: true,
        })
    }

    /// Like [`Breaker::try_acquire`], but the permit owns a handle to the breaker (`'static`),
    /// for futures that must not borrow it.
    ///
    /// # Errors
    /// As [`Breaker::try_acquire`].
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit<C>> {
        let (word, start) = self.inner.acquire()?;
        Ok(OwnedPermit {
            breaker: self.clone(),
            word,
            start,
            armed: true,
        })
    }

    /// Runs `f` through the breaker; `Ok` counts as success, `Err` as failure.
    ///
    /// If the returned future is dropped before `f`'s future completes, the call counts as
    /// ignored (a half-open trial slot is released).
    ///
    /// # Errors
    /// [`BreakerError::Rejected`] if refused, [`BreakerError::Inner`] with `f`'s error.
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(BreakerError::Rejected)?;
        match f().await {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.failure();
                Err(BreakerError::Inner(e))
            }
        }
    }

    /// Runs `f` through the breaker, counting its result as `classifier` says.
    ///
    /// # Errors
    /// As [`Breaker::call`].
    pub async fn call_with<K, F, Fut, T, E>(
        &self,
        classifier: K,
        f: F,
    ) -> Result<T, BreakerError<E>>
    where
        K: Classify<T, E>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(BreakerError::Rejected)?;
        let result = f().await;
        permit.record(classifier.classify(&result));
        result.map_err(BreakerError::Inner)
    }

    /// Runs a synchronous `f` through the breaker; `Ok` counts as success, `Err` as failure.
    ///
    /// # Errors
    /// As [`Breaker::call`].
    #[inline]
    pub fn call_sync<F, T, E>(&self, f: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Result<T, E>,
    {
        let permit = self.try_acquire().map_err(BreakerError::Rejected)?;
        let result = f();
        permit.record(DefaultClassifier.classify(&result));
        result.map_err(BreakerError::Inner)
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_tag(tag_of(self.inner.state.0.load(Ordering::Acquire)))
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Switches mode; [`Mode::Normal`] restarts the state machine closed with an empty window
    /// and forgets consecutive trips.
    pub fn set_mode(&self, mode: Mode) {
        let to = match mode {
            Mode::Normal => State::Closed,
            Mode::Disabled => State::Disabled,
            Mode::ForcedOpen => State::ForcedOpen,
            Mode::MetricsOnly => State::MetricsOnly,
        };
        self.inner.force(to);
    }

    /// Back to closed with an empty window (same as `set_mode(Mode::Normal)`).
    pub fn reset(&self) {
        self.set_mode(Mode::Normal);
    }

    /// Opens the breaker now, as a trip would (the open duration then lets trials through).
    pub fn trip(&self) {
        self.inner.force(State::Open);
    }

    /// A snapshot of the breaker's counters.
    pub fn metrics(&self) -> Metrics {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let word = inner.state.0.load(Ordering::Acquire);
        let state = State::from_tag(tag_of(word));
        let t = inner.window.totals(now);
        let rate = |n: u64| (t.calls > 0).then(|| n as f64 / t.calls as f64);
        let consecutive_trips = inner
            .transitions
            .lock()
            .map(|g| g.consecutive_trips)
            .unwrap_or_default();
        let open_remaining = (state == State::Open).then(|| {
            Instant::from_nanos(inner.open_until.load(Ordering::Acquire))
                .saturating_duration_since(now)
        });
        Metrics {
            state,
            window_calls: t.calls,
            window_failures: t.failures,
            window_slow_calls: t.slow,
            failure_rate: rate(t.failures),
            slow_call_rate: rate(t.slow),
            rejected_calls: inner.rejected.load(Ordering::Relaxed),
            consecutive_trips,
            open_remaining,
        }
    }
}

impl<C: Clock> Inner<C> {
    #[inline]
    fn needs_start(&self) -> bool {
        self.slow_nanos.is_some()
    }

    /// Returns the state word the permit belongs to and its start time.
    #[inline]
    fn acquire(&self) -> Result<(u64, Instant)> {
        let word = self.state.0.load(Ordering::Acquire);
        if tag_of(word) == CLOSED && !self.needs_start() {
            return Ok((word, Instant::ZERO));
        }
        self.acquire_slow()
    }

    #[inline(never)]
    fn acquire_slow(&self) -> Result<(u64, Instant)> {
        loop {
            let word = self.state.0.load(Ordering::Acquire);
            match tag_of(word) {
                CLOSED | METRICS_ONLY | DISABLED => {
                    let start = if self.needs_start() {
                        self.clock.now()
                    } else {
                        Instant::ZERO
                    };
                    return Ok((word, start));
                }
                OPEN => {
                    let now = self.clock.now();
                    let until = Instant::from_nanos(self.open_until.load(Ordering::Acquire));
                    if now >= until {
                        self.transition(word, State::HalfOpen);
                        continue;
                    }
                    return Err(self.reject(State::Open, Some(until - now), now));
                }
                HALF_OPEN => match self.take_trial_slot(word) {
                    TrialSlot::Taken => {
                        let start = if self.needs_start() {
                            self.clock.now()
                        } else {
                            Instant::ZERO
                        };
                        return Ok((word, start));
                    }
                    TrialSlot::Stale => continue,
                    TrialSlot::Full => {
                        let now = self.clock.now();
                        if let Some(max) = self.config.max_wait_in_half_open {
                            let since =
                                Instant::from_nanos(self.half_open_since.load(Ordering::Acquire));
                            if now.saturating_duration_since(since) >= max {
                                self.transition(word, State::Open);
                                continue;
                            }
                        }
                        return Err(self.reject(State::HalfOpen, None, now));
                    }
                },
                tag => {
                    return Err(self.reject(State::from_tag(tag), None, self.clock.now()));
                }
            }
        }
    }

    #[cold]
    fn reject(&self, state: State, retry_after: Option<Duration>, now: Instant) -> Error {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.emit(&BreakerEvent::Rejected { state, at: now });
        Error::Rejected { state, retry_after }
    }

    fn take_trial_slot(&self, word: u64) -> TrialSlot {
        let gen_ = gen_of(word);
        let mut cur = self.trial_slots.0.load(Ordering::Acquire);
        loop {
            if cur >> 32 != gen_ & 0xFFFF_FFFF {
                return TrialSlot::Stale;
            }
            let issued = cur & 0xFFFF_FFFF;
            if issued >= self.trials {
                return TrialSlot::Full;
            }
            match self.trial_slots.0.compare_exchange_weak(
                cur,
                slots_word(gen_, issued + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return TrialSlot::Taken,
                Err(actual) => cur = actual,
            }
        }
    }

    fn release_trial_slot(&self, word: u64) {
        let gen_ = gen_of(word);
        let mut cur = self.trial_slots.0.load(Ordering::Acquire);
        loop {
            let issued = cur & 0xFFFF_FFFF;
            if cur >> 32 != gen_ & 0xFFFF_FFFF || issued == 0 {
                return;
            }
            match self.trial_slots.0.compare_exchange_weak(
                cur,
                slots_word(gen_, issued - 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Records the result of a permit taken in state `word`.
    #[inline]
    fn finish(&self, word: u64, start: Instant, outcome: Outcome, took: Option<Duration>) {
        // The hot path: a success in the closed state of a count window without slow-call
        // detection is one load and one `fetch_add`.
        if self.fast_closed && outcome == Outcome::Success && tag_of(word) == CLOSED {
            if self.state.0.load(Ordering::Relaxed) == word {
                self.window.record_success();
            }
            return;
        }
        self.finish_slow(word, start, outcome, took);
    }

    #[inline(never)]
    fn finish_slow(&self, word: u64, start: Instant, outcome: Outcome, took: Option<Duration>) {
        match tag_of(word) {
            CLOSED | METRICS_ONLY => {
                if outcome == Outcome::Ignored {
                    return;
                }
                // A call that outlived its state (the breaker tripped meanwhile) is not counted.
                if self.state.0.load(Ordering::Relaxed) != word {
                    return;
                }
                let need_now = self.slow_nanos.is_some() || self.window.needs_clock();
                let now = if need_now {
                    self.clock.now()
                } else {
                    Instant::ZERO
                };
                let slow = self.is_slow(start, now, took);
                let failure = outcome == Outcome::Failure;
                self.window.record(now, failure, slow, |t| {
                    if tag_of(word) == CLOSED && self.should_trip(t) {
                        self.transition(word, State::Open);
                    }
                });
            }
            HALF_OPEN => {
                if outcome == Outcome::Ignored {
                    self.release_trial_slot(word);
                    return;
                }
                let now = if self.slow_nanos.is_some() {
                    self.clock.now()
                } else {
                    Instant::ZERO
                };
                let slow = self.is_slow(start, now, took);
                self.record_trial(word, outcome == Outcome::Failure, slow);
            }
            _ => {}
        }
    }

    #[inline]
    fn is_slow(&self, start: Instant, now: Instant, took: Option<Duration>) -> bool {
        match self.slow_nanos {
            None => false,
            Some(limit) => {
                let d = took.unwrap_or_else(|| now.saturating_duration_since(start));
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX) >= limit
            }
        }
    }

    fn should_trip(&self, t: Totals) -> bool {
        t.calls >= u64::from(self.config.minimum_calls)
            && (over(t.failures, t.calls, self.failure_ppm) || over(t.slow, t.calls, self.slow_ppm))
    }

    fn record_trial(&self, word: u64, failure: bool, slow: bool) {
        let tag = results_tag(gen_of(word));
        let mut cur = self.trial_results.0.load(Ordering::Acquire);
        loop {
            if cur & (0xFFFF << 48) != tag {
                return;
            }
            let done = (cur & 0xFFFF) + 1;
            let fails = ((cur >> 16) & 0xFFFF) + u64::from(failure);
            let slows = ((cur >> 32) & 0xFFFF) + u64::from(slow);
            if done > self.trials {
                return;
            }
            let next = tag | slows << 32 | fails << 16 | done;
            match self.trial_results.0.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if done == self.trials {
                        let bad =
                            over(fails, done, self.failure_ppm) || over(slows, done, self.slow_ppm);
                        self.transition(word, if bad { State::Open } else { State::Closed });
                    }
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Moves from the state in `expected` to `to`, unless another thread moved first.
    fn transition(&self, expected: u64, to: State) -> bool {
        let from;
        let now = self.clock.now();
        {
            let Ok(mut t) = self.transitions.lock() else {
                return false;
            };
            let cur = self.state.0.load(Ordering::Acquire);
            if cur != expected {
                return false;
            }
            from = State::from_tag(tag_of(cur));
            self.enter(&mut t, gen_of(cur) + 1, to, now);
        }
        self.announce(from, to, now);
        true
    }

    /// Moves to `to` whatever the current state (operator action).
    fn force(&self, to: State) {
        let now = self.clock.now();
        let from;
        {
            let Ok(mut t) = self.transitions.lock() else {
                return;
            };
            let cur = self.state.0.load(Ordering::Acquire);
            from = State::from_tag(tag_of(cur));
            if to == State::Closed {
                t.consecutive_trips = 0;
            }
            self.enter(&mut t, gen_of(cur) + 1, to, now);
        }
        self.announce(from, to, now);
    }

    /// Prepares `to`'s bookkeeping and publishes the new state word. Caller holds the lock.
    fn enter(&self, t: &mut Transitions, gen_: u64, to: State, now: Instant) {
        match to {
            State::Open => {
                t.consecutive_trips = t.consecutive_trips.saturating_add(1);
                let d = self.config.open_duration_for(t.consecutive_trips);
                self.open_until
                    .store((now + d).as_nanos(), Ordering::Release);
            }
            State::HalfOpen => {
                self.trial_slots
                    .0
                    .store(slots_word(gen_, 0), Ordering::Release);
                self.trial_results
                    .0
                    .store(results_tag(gen_), Ordering::Release);
                self.half_open_since
                    .store(now.as_nanos(), Ordering::Release);
            }
            State::Closed => {
                t.consecutive_trips = 0;
                self.window.reset();
            }
            State::MetricsOnly => self.window.reset(),
            _ => {}
        }
        self.state
            .0
            .store(gen_ << STATE_BITS | to.tag(), Ordering::Release);
    }

    fn announce(&self, from: State, to: State, at: Instant) {
        #[cfg(feature = "tracing")]
        tracing::info!(?from, ?to, "circuit breaker state transition");
        self.emit(&BreakerEvent::StateTransition { from, to, at });
    }

    fn emit(&self, event: &BreakerEvent) {
        for l in &self.listeners.0 {
            l.on_event(event);
        }
    }
}

enum TrialSlot {
    Taken,
    Full,
    Stale,
}

/// Permission for one call, borrowed from a [`Breaker`].
///
/// Complete it with [`success`](Permit::success), [`failure`](Permit::failure) or
/// [`record`](Permit::record). **Dropping it uncompleted counts as [`Outcome::Ignored`]**: nothing
/// is recorded and a half-open trial slot is handed back, so a cancelled call can neither trip
/// nor close the breaker and never leaks a trial slot.
#[derive(Debug)]
#[must_use = "a permit that is dropped counts as an ignored call"]
pub struct Permit<'a, C: Clock = SystemClock> {
    inner: &'a Inner<C>,
    word: u64,
    start: Instant,
    armed: bool,
}

impl<C: Clock> Permit<'_, C> {
    /// Records a success (slow if it took at least the slow-call duration).
    #[inline]
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// Records a failure.
    #[inline]
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// Records `outcome`, timing the call with the breaker's clock.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.armed = false;
        self.inner.finish(self.word, self.start, outcome, None);
    }

    /// Records `outcome` for a call that took `took` (measured by the caller).
    pub fn record_with_duration(mut self, outcome: Outcome, took: Duration) {
        self.armed = false;
        self.inner
            .finish(self.word, self.start, outcome, Some(took));
    }

    /// The state the permit was granted in.
    pub fn state(&self) -> State {
        State::from_tag(tag_of(self.word))
    }
}

impl<C: Clock> Drop for Permit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if self.armed && tag_of(self.word) == HALF_OPEN {
            self.inner.release_trial_slot(self.word);
        }
    }
}

/// A [`Permit`] that owns a handle to its breaker (for `'static` futures, e.g. tower).
///
/// Dropping it uncompleted counts as [`Outcome::Ignored`], like [`Permit`].
#[derive(Debug)]
#[must_use = "a permit that is dropped counts as an ignored call"]
pub struct OwnedPermit<C: Clock = SystemClock> {
    breaker: Breaker<C>,
    word: u64,
    start: Instant,
    armed: bool,
}

impl<C: Clock> OwnedPermit<C> {
    /// Records a success.
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// Records a failure.
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// Records `outcome`, timing the call with the breaker's clock.
    pub fn record(mut self, outcome: Outcome) {
        self.armed = false;
        self.breaker
            .inner
            .finish(self.word, self.start, outcome, None);
    }

    /// Records `outcome` for a call that took `took`.
    pub fn record_with_duration(mut self, outcome: Outcome, took: Duration) {
        self.armed = false;
        self.breaker
            .inner
            .finish(self.word, self.start, outcome, Some(took));
    }

    /// The state the permit was granted in.
    pub fn state(&self) -> State {
        State::from_tag(tag_of(self.word))
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    fn drop(&mut self) {
        if self.armed && tag_of(self.word) == HALF_OPEN {
            self.breaker.inner.release_trial_slot(self.word);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use dsp_core::ManualClock;
    use dsp_core::sync::atomic::AtomicUsize;
    use dsp_core::sync::{Arc as LArc, model, thread};

    use super::*;
    use crate::WindowConfig;

    fn half_open_breaker(trials: u32) -> Breaker<ManualClock> {
        let clock = ManualClock::new();
        let config = BreakerConfig {
            window: WindowConfig::Count {
                size: 1,
                buckets: 1,
            },
            minimum_calls: 1,
            half_open_trials: trials,
            open_duration: Duration::from_secs(1),
            max_open_duration: Duration::from_secs(1),
            ..BreakerConfig::default()
        };
        let b = Breaker::with_clock(config, clock.clone()).unwrap();
        b.trip();
        clock.advance(Duration::from_secs(1));
        b
    }

    #[test]
    fn loom_half_open_admits_exactly_configured_trials() {
        model(|| {
            let b = half_open_breaker(2);
            let admitted = LArc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    let admitted = admitted.clone();
                    thread::spawn(move || {
                        if let Ok(p) = b.try_acquire() {
                            admitted.fetch_add(1, Ordering::SeqCst);
                            // Hold the slot: leak-free because record consumes it.
                            p.success();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            // Two trials completed successfully: the breaker closed, and no third trial got in
            // while half-open (a third permit could only come from the closed state).
            let n = admitted.load(Ordering::SeqCst);
            assert!(n == 2 || n == 3, "admitted {n}");
            assert_eq!(b.state(), State::Closed);
        });
    }

    #[test]
    fn loom_half_open_slots_never_exceed_limit_while_held() {
        model(|| {
            let b = half_open_breaker(1);
            let t = {
                let b = b.clone();
                thread::spawn(move || b.try_acquire().map(std::mem::forget).is_ok())
            };
            let mine = b.try_acquire().map(std::mem::forget).is_ok();
            let theirs = t.join().unwrap();
            assert!(mine ^ theirs, "exactly one trial admitted: {mine} {theirs}");
            assert_eq!(b.state(), State::HalfOpen);
        });
    }

    #[test]
    fn loom_concurrent_failures_trip_once() {
        model(|| {
            let clock = ManualClock::new();
            let trips = LArc::new(AtomicUsize::new(0));
            let t2 = trips.clone();
            let config = BreakerConfig {
                window: WindowConfig::Count {
                    size: 2,
                    buckets: 2,
                },
                minimum_calls: 2,
                ..BreakerConfig::default()
            };
            let b = Breaker::builder(config)
                .clock(clock)
                .listener(move |e: &BreakerEvent| {
                    if let BreakerEvent::StateTransition {
                        to: State::Open, ..
                    } = e
                    {
                        t2.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .build()
                .unwrap();
            let h = {
                let b = b.clone();
                thread::spawn(move || {
                    let _ = b.call_sync(|| Err::<(), ()>(()));
                })
            };
            let _ = b.call_sync(|| Err::<(), ()>(()));
            h.join().unwrap();
            assert_eq!(b.state(), State::Open);
            assert_eq!(trips.load(Ordering::SeqCst), 1);
        });
    }
}
