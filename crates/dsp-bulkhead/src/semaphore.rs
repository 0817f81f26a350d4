//! The semaphore bulkhead: a lock-free permit counter, RAII permits, an optional FIFO wait queue.

use std::fmt;
use std::sync::Arc;

use dsp_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::{BulkheadConfig, Error, Result, WhenFull};

/// Why a call was rejected, as reported in [`BulkheadEvent::CallRejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// Every permit was taken (or the wait queue was full).
    Full,
    /// The call waited the configured maximum.
    WaitTimedOut,
}

/// Something a bulkhead did, reported to the listener given to
/// [`SemaphoreBulkhead::with_listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkheadEvent<'a> {
    /// A call got a permit.
    CallPermitted {
        /// The bulkhead's name.
        name: &'a str,
    },
    /// A call was rejected.
    CallRejected {
        /// The bulkhead's name.
        name: &'a str,
        /// Why.
        reason: RejectReason,
    },
    /// A permit was released (the call finished, failed or was cancelled).
    CallFinished {
        /// The bulkhead's name.
        name: &'a str,
    },
}

/// A subscriber to [`BulkheadEvent`]s. It runs inline on the caller's thread, so keep it cheap
/// (bump a counter, push to a channel).
pub type Listener = Arc<dyn Fn(&BulkheadEvent<'_>) + Send + Sync>;

/// A point-in-time view of a bulkhead's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// The configured maximum number of concurrent calls.
    pub max_concurrent: usize,
    /// Permits free right now.
    pub available_permits: usize,
    /// Calls holding a permit right now.
    pub in_flight: usize,
    /// Calls waiting in the queue right now.
    pub waiting: usize,
    /// Calls rejected so far (full, queue full or timed out).
    pub rejected: u64,
    /// The longest the wait queue has been.
    pub max_observed_queue: usize,
}

pub(crate) struct Inner {
    name: Arc<str>,
    config: BulkheadConfig,
    available: AtomicUsize,
    rejected: AtomicU64,
    max_observed_queue: AtomicUsize,
    listener: Option<Listener>,
    #[cfg(feature = "tokio")]
    waiters: crate::wait::WaitQueue,
}

impl Inner {
    /// Takes one permit if one is free: a compare-and-swap loop, no lock.
    #[inline]
    fn try_take(&self) -> bool {
        let mut cur = self.available.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return false;
            }
            // SeqCst: pairs with the waiter count in `wait` so a release never misses a waiter.
            match self.available.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    #[inline]
    fn release(self: &Arc<Self>) {
        self.release_permit();
        self.emit(|name| BulkheadEvent::CallFinished { name });
    }

    /// Returns one permit, handing it straight to a queued waiter if there is one.
    #[inline]
    fn release_permit(self: &Arc<Self>) {
        self.available.fetch_add(1, Ordering::SeqCst);
        #[cfg(feature = "tokio")]
        if self.waiters.has_waiters() {
            crate::wait::hand_off(self);
        }
    }

    #[inline]
    fn emit(&self, event: impl FnOnce(&str) -> BulkheadEvent<'_>) {
        if let Some(listener) = &self.listener {
            listener(&event(&self.name));
        }
    }

    pub(crate) fn reject(&self, reason: RejectReason) -> Error {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.emit(|name| BulkheadEvent::CallRejected { name, reason });
        #[cfg(feature = "tracing")]
        tracing::debug!(bulkhead = %self.name, ?reason, "bulkhead rejected a call");
        match reason {
            RejectReason::Full => Error::BulkheadFull {
                name: self.name.clone(),
                max_concurrent: self.config.max_concurrent,
            },
            RejectReason::WaitTimedOut => Error::WaitTimedOut {
                name: self.name.clone(),
                waited: match self.config.when_full {
                    WhenFull::Wait { max_wait, .. } => max_wait,
                    WhenFull::Reject => std::time::Duration::ZERO,
                },
            },
        }
    }

    /// Fast path shared by every acquisition: a free permit and nobody queued ahead.
    #[inline]
    pub(crate) fn try_take_fair(&self) -> bool {
        #[cfg(feature = "tokio")]
        if self.waiters.has_waiters() {
            return false;
        }
        self.try_take()
    }

    pub(crate) fn permitted(&self) {
        self.emit(|name| BulkheadEvent::CallPermitted { name });
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn take_for_waiter(&self) -> bool {
        self.try_take()
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn observe_queue(&self, len: usize) {
        self.max_observed_queue.fetch_max(len, Ordering::Relaxed);
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn waiters(&self) -> &crate::wait::WaitQueue {
        &self.waiters
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn config(&self) -> &BulkheadConfig {
        &self.config
    }
}

/// A semaphore bulkhead: at most `max_concurrent` calls at once, the rest rejected or queued
/// (chosen explicitly with [`WhenFull`]).
///
/// Acquiring is a compare-and-swap on an atomic counter (no lock, no allocation); permits are
/// RAII guards released on drop, including when the future holding one is cancelled. With the
/// `tokio` feature, [`WhenFull::Wait`] queues callers in FIFO order and a released permit is
/// handed directly to the oldest waiter. Cloning shares the bulkhead.
///
/// ```
/// use dsp_bulkhead::{BulkheadConfig, Error, SemaphoreBulkhead};
///
/// let bulkhead = SemaphoreBulkhead::new("payments", BulkheadConfig::reject(1))?;
/// let permit = bulkhead.try_acquire()?;
/// let err = bulkhead.try_acquire().unwrap_err();
/// assert_eq!(err, Error::BulkheadFull { name: "payments".into(), max_concurrent: 1 });
/// drop(permit);
/// assert_eq!(bulkhead.try_call(|| 40 + 2)?, 42);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct SemaphoreBulkhead {
    pub(crate) inner: Arc<Inner>,
}

impl SemaphoreBulkhead {
    /// A bulkhead named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn new(name: impl Into<Arc<str>>, config: BulkheadConfig) -> Result<Self> {
        Self::build(name.into(), config, None)
    }

    /// A bulkhead that reports every [`BulkheadEvent`] to `listener`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn with_listener(
        name: impl Into<Arc<str>>,
        config: BulkheadConfig,
        listener: Listener,
    ) -> Result<Self> {
        Self::build(name.into(), config, Some(listener))
    }

    fn build(name: Arc<str>, config: BulkheadConfig, listener: Option<Listener>) -> Result<Self> {
        config.validate()?;
        Ok(SemaphoreBulkhead {
            inner: Arc::new(Inner {
                name,
                config,
                available: AtomicUsize::new(config.max_concurrent),
                rejected: AtomicU64::new(0),
                max_observed_queue: AtomicUsize::new(0),
                listener,
                #[cfg(feature = "tokio")]
                waiters: crate::wait::WaitQueue::new(),
            }),
        })
    }

    /// Takes a permit if one is free and nobody is queued, without waiting (whatever the
    /// [`WhenFull`] policy).
    ///
    /// # Errors
    /// [`Error::BulkheadFull`].
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>> {
        if self.inner.try_take_fair() {
            self.inner.permitted();
            Ok(Permit { bulkhead: self })
        } else {
            Err(self.inner.reject(RejectReason::Full))
        }
    }

    /// [`SemaphoreBulkhead::try_acquire`] returning a permit that owns a handle to the bulkhead
    /// (for moving into a task).
    ///
    /// # Errors
    /// [`Error::BulkheadFull`].
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit> {
        if self.inner.try_take_fair() {
            self.inner.permitted();
            Ok(OwnedPermit::new(self.inner.clone()))
        } else {
            Err(self.inner.reject(RejectReason::Full))
        }
    }

    /// Runs `f` under a permit, without waiting.
    ///
    /// # Errors
    /// [`Error::BulkheadFull`]; `f` did not run.
    pub fn try_call<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _permit = self.try_acquire()?;
        Ok(f())
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The bulkhead's configuration.
    pub fn config(&self) -> &BulkheadConfig {
        &self.inner.config
    }

    /// Permits free right now.
    pub fn available_permits(&self) -> usize {
        self.inner.available.load(Ordering::Relaxed)
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> BulkheadMetrics {
        let available = self.available_permits();
        BulkheadMetrics {
            max_concurrent: self.inner.config.max_concurrent,
            available_permits: available,
            in_flight: self.inner.config.max_concurrent.saturating_sub(available),
            #[cfg(feature = "tokio")]
            waiting: self.inner.waiters.len(),
            #[cfg(not(feature = "tokio"))]
            waiting: 0,
            rejected: self.inner.rejected.load(Ordering::Relaxed),
            max_observed_queue: self.inner.max_observed_queue.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for SemaphoreBulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreBulkhead")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("available_permits", &self.available_permits())
            .finish()
    }
}

/// A permit borrowed from a [`SemaphoreBulkhead`]; released when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit<'a> {
    bulkhead: &'a SemaphoreBulkhead,
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.inner.release();
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("bulkhead", &self.bulkhead.inner.name)
            .finish()
    }
}

/// A permit that owns a handle to its [`SemaphoreBulkhead`]; released when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedPermit {
    inner: Arc<Inner>,
    armed: bool,
}

impl OwnedPermit {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        OwnedPermit { inner, armed: true }
    }

    /// Gives the permit back to the counter without emitting events (a hand-off that found its
    /// waiter gone).
    #[cfg(feature = "tokio")]
    pub(crate) fn defuse_and_return(mut self) {
        self.armed = false;
        self.inner.release_permit();
    }

    /// The name of the bulkhead the permit belongs to.
    pub fn bulkhead_name(&self) -> &str {
        &self.inner.name
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if self.armed {
            self.inner.release();
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("bulkhead", &self.inner.name)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn rejects_when_full_and_recovers_on_release() {
        let b = SemaphoreBulkhead::new("db", BulkheadConfig::reject(2)).unwrap();
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire_owned().unwrap();
        assert_eq!(b.metrics().in_flight, 2);
        let e = b.try_acquire().unwrap_err();
        assert_eq!(
            e,
            Error::BulkheadFull {
                name: "db".into(),
                max_concurrent: 2
            }
        );
        assert_eq!(e.bulkhead_name(), Some("db"));
        assert!(e.is_rejection());
        drop(p1);
        assert_eq!(b.available_permits(), 1);
        drop(p2);
        let m = b.metrics();
        assert_eq!((m.available_permits, m.in_flight, m.rejected), (2, 0, 1));
    }

    #[test]
    fn try_call_releases_even_when_the_closure_panics() {
        let b = SemaphoreBulkhead::new("p", BulkheadConfig::reject(1)).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            b.try_call(|| panic!("boom")).ok();
        }));
        assert!(r.is_err());
        assert_eq!(b.available_permits(), 1);
    }

    #[test]
    fn listener_sees_permitted_rejected_finished() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let listener: Listener = Arc::new(move |e: &BulkheadEvent<'_>| {
            let tag = match e {
                BulkheadEvent::CallPermitted { name } => format!("permit {name}"),
                BulkheadEvent::CallRejected { name, reason } => format!("reject {name} {reason:?}"),
                BulkheadEvent::CallFinished { name } => format!("finish {name}"),
            };
            s.lock().unwrap().push(tag);
        });
        let b = SemaphoreBulkhead::with_listener("x", BulkheadConfig::reject(1), listener).unwrap();
        let p = b.try_acquire().unwrap();
        let _ = b.try_acquire();
        drop(p);
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["permit x", "reject x Full", "finish x"]
        );
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(SemaphoreBulkhead::new("z", BulkheadConfig::reject(0)).is_err());
        let c = BulkheadConfig::wait(1, std::time::Duration::ZERO, 1);
        assert!(matches!(
            SemaphoreBulkhead::new("z", c),
            Err(Error::InvalidConfig(_))
        ));
        let c = BulkheadConfig::wait(1, std::time::Duration::from_secs(1), 0);
        assert!(c.validate().is_err());
        assert!(BulkheadConfig::default().validate().is_ok());
    }

    #[test]
    fn permits_never_exceed_max_under_threads() {
        let b = SemaphoreBulkhead::new("t", BulkheadConfig::reject(3)).unwrap();
        let current = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        if let Ok(_p) = b.try_acquire() {
                            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            current.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(b.available_permits(), 3);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use dsp_core::sync::{model, thread};

    use super::*;

    #[test]
    fn loom_permits_never_exceed_max() {
        model(|| {
            let b = match SemaphoreBulkhead::new("loom", BulkheadConfig::reject(2)) {
                Ok(b) => b,
                Err(e) => panic!("{e}"),
            };
            let holders = dsp_core::sync::Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    let holders = holders.clone();
                    thread::spawn(move || {
                        if let Ok(p) = b.try_acquire() {
                            let n = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(n <= 2, "{n} holders of 2 permits");
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(p);
                        }
                    })
                })
                .collect();
            for h in handles {
                let _ = h.join();
            }
            assert_eq!(b.available_permits(), 2);
        });
    }
}
