//! Generation clocks (epochs, terms) and fencing tokens.
//!
//! A generation is a number that only grows. A leader takes a new generation when it is elected
//! and stamps everything it does with it; a resource that has seen generation `g` rejects
//! anything stamped with an older one, so a deposed leader that wakes up from a long pause cannot
//! overwrite its successor's work. The number must be durable *before* it is used, or a restarted
//! node could hand out a generation it already used: [`GenerationClock`] persists through a
//! caller-supplied [`GenerationStore`] before it returns a new value.

use std::fmt;

use crate::error::{Error, Result, StoreError};
use dsp_core::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

/// An epoch, term or generation number: it only grows.
///
/// Displays as `g7`. Use [`Ord::max`] to combine two generations and [`Generation::next`] to step.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Generation(pub u64);

impl Generation {
    /// The first generation, before any has been taken.
    pub const ZERO: Generation = Generation(0);
    /// The largest generation.
    pub const MAX: Generation = Generation(u64::MAX);

    /// Creates a generation.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The numeric value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The following generation, or `None` at [`Generation::MAX`].
    pub const fn checked_next(self) -> Option<Generation> {
        match self.0.checked_add(1) {
            Some(v) => Some(Generation(v)),
            None => None,
        }
    }

    /// The following generation, saturating at [`Generation::MAX`].
    ///
    /// Saturation is only reachable by a peer that sends `u64::MAX`; code that must never reuse a
    /// generation uses [`Generation::checked_next`] or [`GenerationClock::advance`], which fail
    /// instead.
    pub const fn next(self) -> Generation {
        Generation(self.0.saturating_add(1))
    }

    /// The fencing token that carries this generation.
    pub const fn token(self) -> FencingToken {
        FencingToken(self.0)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

impl From<u64> for Generation {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl From<Generation> for u64 {
    fn from(g: Generation) -> Self {
        g.0
    }
}

/// Durable storage for the current generation, supplied by the caller.
///
/// [`store`](GenerationStore::store) must not return `Ok` until the value is durable (for a file:
/// written, `fsync`ed, and the directory synced after a rename); [`GenerationClock`] relies on it
/// to never hand out a generation that a crash could forget.
pub trait GenerationStore {
    /// Loads the last stored generation, or `None` if nothing was ever stored.
    ///
    /// # Errors
    /// Any I/O or decoding failure of the store.
    fn load(&mut self) -> std::result::Result<Option<Generation>, StoreError>;

    /// Durably stores `generation`, replacing the previous value.
    ///
    /// # Errors
    /// Any I/O failure of the store; the previous value must then still be the durable one (or
    /// the new one), never a torn mix.
    fn store(&mut self, generation: Generation) -> std::result::Result<(), StoreError>;
}

impl<S: GenerationStore + ?Sized> GenerationStore for &mut S {
    fn load(&mut self) -> std::result::Result<Option<Generation>, StoreError> {
        (**self).load()
    }
    fn store(&mut self, generation: Generation) -> std::result::Result<(), StoreError> {
        (**self).store(generation)
    }
}

impl<S: GenerationStore + ?Sized> GenerationStore for Box<S> {
    fn load(&mut self) -> std::result::Result<Option<Generation>, StoreError> {
        (**self).load()
    }
    fn store(&mut self, generation: Generation) -> std::result::Result<(), StoreError> {
        (**self).store(generation)
    }
}

/// The error of a [`MemoryGenerationStore`] told to fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected memory store failure")]
pub struct InjectedFailure;

/// An in-memory [`GenerationStore`] for tests and simulations.
///
/// Clones share one value, so a test can "restart" by opening a new [`GenerationClock`] on a
/// clone. [`set_failing`](MemoryGenerationStore::set_failing) makes every call fail, to test the
/// error paths.
#[derive(Clone, Debug, Default)]
pub struct MemoryGenerationStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    value: Option<Generation>,
    failing: bool,
    stores: u64,
}

impl MemoryGenerationStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds `generation`.
    pub fn with_value(generation: Generation) -> Self {
        let store = Self::new();
        store.lock().value = Some(generation);
        store
    }

    fn lock(&self) -> dsp_core::sync::MutexGuard<'_, MemoryInner> {
        // A poisoned lock only means another test thread panicked; the value is still sound.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stored value.
    pub fn value(&self) -> Option<Generation> {
        self.lock().value
    }

    /// How many successful `store` calls were made.
    pub fn store_count(&self) -> u64 {
        self.lock().stores
    }

    /// Makes every following `load` and `store` fail (or succeed again with `false`).
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }
}

impl GenerationStore for MemoryGenerationStore {
    fn load(&mut self) -> std::result::Result<Option<Generation>, StoreError> {
        let inner = self.lock();
        if inner.failing {
            return Err(Box::new(InjectedFailure));
        }
        Ok(inner.value)
    }

    fn store(&mut self, generation: Generation) -> std::result::Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.failing {
            return Err(Box::new(InjectedFailure));
        }
        inner.value = Some(generation);
        inner.stores += 1;
        Ok(())
    }
}

/// A generation counter that is durable before use.
///
/// ```
/// use dsp_clock::{Generation, GenerationClock, MemoryGenerationStore};
///
/// let store = MemoryGenerationStore::new();
/// let mut clock = GenerationClock::open(store.clone())?;
/// assert_eq!(clock.current(), Generation::ZERO);
/// let g = clock.advance()?; // stored before it is returned
/// assert_eq!(store.value(), Some(g));
///
/// // After a restart the clock resumes from the store and never repeats a generation.
/// let mut reopened = GenerationClock::open(store)?;
/// assert!(reopened.advance()? > g);
/// # Ok::<(), dsp_clock::Error>(())
/// ```
#[derive(Debug)]
pub struct GenerationClock<S: GenerationStore> {
    store: S,
    current: Generation,
}

impl<S: GenerationStore> GenerationClock<S> {
    /// Opens the clock, loading the current generation from `store` ([`Generation::ZERO`] if it
    /// is empty).
    ///
    /// # Errors
    /// [`Error::Store`] if loading fails.
    pub fn open(mut store: S) -> Result<Self> {
        let current = store
            .load()
            .map_err(Error::Store)?
            .unwrap_or(Generation::ZERO);
        Ok(Self { store, current })
    }

    /// The current (highest durable) generation.
    pub fn current(&self) -> Generation {
        self.current
    }

    /// The fencing token of the current generation.
    pub fn token(&self) -> FencingToken {
        self.current.token()
    }

    /// Takes the next generation: stores it durably, then returns it.
    ///
    /// # Errors
    /// [`Error::Store`] if storing fails and [`Error::CounterOverflow`] at `u64::MAX`; the clock
    /// is unchanged in both cases and no new generation may be used.
    pub fn advance(&mut self) -> Result<Generation> {
        let next = self
            .current
            .checked_next()
            .ok_or_else(|| Error::CounterOverflow { what: "generation" })?;
        self.store.store(next).map_err(Error::Store)?;
        self.current = next;
        Ok(next)
    }

    /// Raises the clock to a generation seen elsewhere (a peer's term), storing it first.
    /// Returns the current generation afterwards; a lower or equal `seen` changes nothing and
    /// does not touch the store.
    ///
    /// # Errors
    /// [`Error::Store`] if storing fails; the clock is unchanged.
    pub fn observe(&mut self, seen: Generation) -> Result<Generation> {
        if seen > self.current {
            self.store.store(seen).map_err(Error::Store)?;
            self.current = seen;
        }
        Ok(self.current)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Consumes the clock, returning the store.
    pub fn into_store(self) -> S {
        self.store
    }
}

/// A number a resource uses to reject requests from an older generation.
///
/// A holder of a lease or leadership attaches its token to every request; the resource keeps the
/// highest token it has accepted (a [`Fence`] or [`AtomicFence`]) and rejects lower ones.
/// Displays as `t7`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct FencingToken(pub u64);

impl FencingToken {
    /// The lowest token.
    pub const ZERO: FencingToken = FencingToken(0);

    /// Creates a token.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The numeric value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The generation this token carries.
    pub const fn generation(self) -> Generation {
        Generation(self.0)
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl From<Generation> for FencingToken {
    fn from(g: Generation) -> Self {
        g.token()
    }
}

impl From<u64> for FencingToken {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

/// The resource side of fencing, for a resource owned by one thread or behind the caller's lock.
///
/// Accepts a token greater than or equal to the highest accepted so far and remembers it; rejects
/// a lower one with [`Error::Stale`]. A resource that must stay fenced across its own restarts
/// persists [`Fence::highest`] with its data and rebuilds with [`Fence::with_highest`].
///
/// ```
/// use dsp_clock::{Error, Fence, FencingToken};
///
/// let mut fence = Fence::new();
/// fence.check(FencingToken(2))?;
/// fence.check(FencingToken(2))?; // the same holder may keep writing
/// let err = fence.check(FencingToken(1)).unwrap_err();
/// assert!(matches!(err, Error::Stale { presented: FencingToken(1), current: FencingToken(2) }));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    highest: FencingToken,
}

impl Fence {
    /// A fence that has seen nothing (accepts every token).
    pub const fn new() -> Self {
        Self {
            highest: FencingToken::ZERO,
        }
    }

    /// A fence that has already accepted `highest`.
    pub const fn with_highest(highest: FencingToken) -> Self {
        Self { highest }
    }

    /// The highest token accepted so far.
    pub const fn highest(&self) -> FencingToken {
        self.highest
    }

    /// Accepts `token` if it is at least the highest accepted so far, and remembers it.
    ///
    /// # Errors
    /// [`Error::Stale`] if `token` is lower; the fence is unchanged.
    pub fn check(&mut self, token: FencingToken) -> Result<()> {
        if token < self.highest {
            return Err(Error::Stale {
                presented: token,
                current: self.highest,
            });
        }
        self.highest = token;
        Ok(())
    }
}

/// A [`Fence`] shared between threads: one atomic `fetch_max` per check.
///
/// Two concurrent checks are linearizable: whichever token is higher wins, and a lower token is
/// accepted only if its check took effect before the higher one's.
#[derive(Debug, Default)]
pub struct AtomicFence {
    highest: AtomicU64,
}

impl AtomicFence {
    /// A fence that has seen nothing.
    pub fn new() -> Self {
        Self {
            highest: AtomicU64::new(0),
        }
    }

    /// A fence that has already accepted `highest`.
    pub fn with_highest(highest: FencingToken) -> Self {
        Self {
            highest: AtomicU64::new(highest.0),
        }
    }

    /// The highest token accepted so far.
    pub fn highest(&self) -> FencingToken {
        FencingToken(self.highest.load(Ordering::Acquire))
    }

    /// Accepts `token` if it is at least the highest accepted so far, and remembers it.
    ///
    /// # Errors
    /// [`Error::Stale`] if `token` is lower; the fence is unchanged.
    pub fn check(&self, token: FencingToken) -> Result<()> {
        let previous = self.highest.fetch_max(token.0, Ordering::AcqRel);
        if token.0 < previous {
            return Err(Error::Stale {
                presented: token,
                current: FencingToken(previous),
            });
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn advance_persists_before_returning() {
        let store = MemoryGenerationStore::new();
        let mut clock = GenerationClock::open(store.clone()).unwrap();
        assert_eq!(clock.current(), Generation::ZERO);
        let g1 = clock.advance().unwrap();
        assert_eq!(g1, Generation(1));
        assert_eq!(store.value(), Some(g1));
        let g2 = clock.advance().unwrap();
        assert_eq!(g2, Generation(2));
        assert_eq!(store.store_count(), 2);
    }

    #[test]
    fn reopened_clock_never_repeats_a_generation() {
        let store = MemoryGenerationStore::new();
        let mut clock = GenerationClock::open(store.clone()).unwrap();
        let used = clock.advance().unwrap();
        drop(clock);
        let mut reopened = GenerationClock::open(store).unwrap();
        assert_eq!(reopened.current(), used);
        assert!(reopened.advance().unwrap() > used);
    }

    #[test]
    fn failed_store_leaves_clock_unchanged() {
        let store = MemoryGenerationStore::with_value(Generation(5));
        let mut clock = GenerationClock::open(store.clone()).unwrap();
        store.set_failing(true);
        assert!(matches!(clock.advance(), Err(Error::Store(_))));
        assert!(matches!(clock.observe(Generation(9)), Err(Error::Store(_))));
        assert_eq!(clock.current(), Generation(5));
        store.set_failing(false);
        assert_eq!(clock.advance().unwrap(), Generation(6));
    }

    #[test]
    fn failed_load_is_a_typed_error() {
        let store = MemoryGenerationStore::new();
        store.set_failing(true);
        assert!(matches!(GenerationClock::open(store), Err(Error::Store(_))));
    }

    #[test]
    fn observe_only_raises() {
        let store = MemoryGenerationStore::new();
        let mut clock = GenerationClock::open(store.clone()).unwrap();
        assert_eq!(clock.observe(Generation(7)).unwrap(), Generation(7));
        assert_eq!(store.value(), Some(Generation(7)));
        assert_eq!(clock.observe(Generation(3)).unwrap(), Generation(7));
        assert_eq!(
            store.store_count(),
            1,
            "a lower generation must not touch the store"
        );
        assert_eq!(clock.advance().unwrap(), Generation(8));
    }

    #[test]
    fn advance_at_max_is_overflow_not_wrap() {
        let mut clock =
            GenerationClock::open(MemoryGenerationStore::with_value(Generation::MAX)).unwrap();
        assert!(matches!(
            clock.advance(),
            Err(Error::CounterOverflow { .. })
        ));
        assert_eq!(clock.current(), Generation::MAX);
        assert_eq!(Generation::MAX.next(), Generation::MAX);
        assert_eq!(Generation::MAX.checked_next(), None);
    }

    #[test]
    fn generation_and_token_display() {
        assert_eq!(Generation(7).to_string(), "g7");
        assert_eq!(FencingToken(7).to_string(), "t7");
        assert_eq!(Generation(7).token().generation(), Generation(7));
        assert_eq!(Generation(3).max(Generation(9)), Generation(9));
    }

    #[test]
    fn fence_rejects_older_tokens_and_keeps_highest() {
        let mut fence = Fence::new();
        fence.check(FencingToken(3)).unwrap();
        let err = fence.check(FencingToken(2)).unwrap_err();
        assert!(matches!(
            err,
            Error::Stale {
                presented: FencingToken(2),
                current: FencingToken(3)
            }
        ));
        assert_eq!(fence.highest(), FencingToken(3));
        fence.check(FencingToken(4)).unwrap();
        assert_eq!(fence.highest(), FencingToken(4));
    }

    #[test]
    fn atomic_fence_matches_fence() {
        let fence = AtomicFence::with_highest(FencingToken(2));
        assert!(fence.check(FencingToken(1)).is_err());
        fence.check(FencingToken(2)).unwrap();
        fence.check(FencingToken(10)).unwrap();
        assert!(matches!(
            fence.check(FencingToken(9)),
            Err(Error::Stale {
                current: FencingToken(10),
                ..
            })
        ));
        assert_eq!(fence.highest(), FencingToken(10));
    }

    #[test]
    fn atomic_fence_under_threads_keeps_maximum() {
        let fence = Arc::new(AtomicFence::new());
        let handles: Vec<_> = (1..=4u64)
            .map(|t| {
                let fence = Arc::clone(&fence);
                std::thread::spawn(move || {
                    let mut accepted = 0;
                    for i in 0..1000u64 {
                        if fence.check(FencingToken(i * 4 + t)).is_ok() {
                            accepted += 1;
                        }
                    }
                    accepted
                })
            })
            .collect();
        let accepted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(accepted >= 1);
        assert_eq!(fence.highest(), FencingToken(999 * 4 + 4));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use dsp_core::sync::{model, thread};

    #[test]
    fn loom_atomic_fence_two_holders() {
        model(|| {
            let fence = Arc::new(AtomicFence::new());
            let f1 = Arc::clone(&fence);
            let old = thread::spawn(move || f1.check(FencingToken(1)).is_ok());
            let new_ok = fence.check(FencingToken(2)).is_ok();
            let old_ok = old.join().unwrap();
            assert!(new_ok, "the highest token is always accepted");
            assert_eq!(fence.highest(), FencingToken(2));
            // The old holder's request is accepted only if it happened first; either way a
            // later check by the old holder is rejected.
            let _ = old_ok;
            assert!(fence.check(FencingToken(1)).is_err());
        });
    }
}
