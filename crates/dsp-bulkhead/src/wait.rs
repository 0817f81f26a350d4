//! The FIFO wait queue of a semaphore bulkhead and its async acquisition (feature `tokio`).
//!
//! A waiter enqueues a oneshot sender; a release hands a whole [`OwnedPermit`] through it. If the
//! waiter is gone by then, the send fails and the permit goes back to the counter; if the waiter
//! goes away after the send, the oneshot drops the permit, which releases it. Either way a
//! cancelled wait never leaks a permit.
//!
//! Lost wake-ups are excluded by a Dekker-style pair of sequentially consistent operations: a
//! waiter increments the waiter count and then re-tries the counter; a release increments the
//! counter and then reads the waiter count. At least one of the two sees the other.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dsp_core::sync::Mutex;
use dsp_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::oneshot;

use crate::semaphore::{Inner, RejectReason};
use crate::{OwnedPermit, Result, SemaphoreBulkhead, WhenFull};

pub(crate) struct WaitQueue {
    queue: Mutex<VecDeque<(u64, oneshot::Sender<OwnedPermit>)>>,
    count: AtomicUsize,
    next_id: AtomicU64,
}

impl WaitQueue {
    pub(crate) fn new() -> Self {
        WaitQueue {
            queue: Mutex::new(VecDeque::new()),
            count: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn lock(
        &self,
    ) -> dsp_core::sync::MutexGuard<'_, VecDeque<(u64, oneshot::Sender<OwnedPermit>)>> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Gives free permits to the oldest waiters. The queue lock is never held while sending, so a
/// permit dropped inside a send (waiter gone at that instant) can re-enter here safely.
pub(crate) fn hand_off(inner: &Arc<Inner>) {
    loop {
        let tx = {
            let mut q = inner.waiters().lock();
            if q.is_empty() || !inner.take_for_waiter() {
                return;
            }
            let Some((_, tx)) = q.pop_front() else { return };
            inner.waiters().count.fetch_sub(1, Ordering::SeqCst);
            tx
        };
        let permit = OwnedPermit::new(inner.clone());
        if let Err(permit) = tx.send(permit) {
            // The waiter gave up: put the permit back and try the next one.
            permit.defuse_and_return();
        } else {
            inner.permitted();
        }
    }
}

/// Removes a waiter's queue entry when its future completes or is dropped.
struct WaitGuard<'a> {
    inner: &'a Arc<Inner>,
    id: u64,
}

impl WaitGuard<'_> {
    /// Removes the entry; `false` if a release already popped it (a permit is in the channel).
    fn remove(&self) -> bool {
        let mut q = self.inner.waiters().lock();
        if let Some(pos) = q.iter().position(|(id, _)| *id == self.id) {
            q.remove(pos);
            self.inner.waiters().count.fetch_sub(1, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

pub(crate) async fn acquire(inner: &Arc<Inner>) -> Result<OwnedPermit> {
    if inner.try_take_fair() {
        inner.permitted();
        return Ok(OwnedPermit::new(inner.clone()));
    }
    let (max_wait, max_waiting) = match inner.config().when_full {
        WhenFull::Reject => return Err(inner.reject(RejectReason::Full)),
        WhenFull::Wait {
            max_wait,
            max_waiting,
        } => (max_wait, max_waiting),
    };
    // Declared before the guard so that it is dropped after it: the guard removes the queue
    // entry first, then a permit possibly sitting in the channel is dropped (and released).
    let mut rx;
    let guard;
    {
        let waiters = inner.waiters();
        let mut q = waiters.lock();
        if q.len() >= max_waiting {
            drop(q);
            return Err(inner.reject(RejectReason::Full));
        }
        waiters.count.fetch_add(1, Ordering::SeqCst);
        if inner.take_for_waiter() {
            waiters.count.fetch_sub(1, Ordering::SeqCst);
            drop(q);
            inner.permitted();
            return Ok(OwnedPermit::new(inner.clone()));
        }
        let (tx, r) = oneshot::channel();
        rx = r;
        let id = waiters.next_id.fetch_add(1, Ordering::Relaxed);
        q.push_back((id, tx));
        inner.observe_queue(q.len());
        guard = WaitGuard { inner, id };
    }
    match tokio::time::timeout(max_wait, &mut rx).await {
        Ok(Ok(permit)) => Ok(permit),
        // The sender is only dropped after a send or when the queue entry is removed, which is
        // our own guard's job; treat it as a timeout all the same.
        Ok(Err(_)) | Err(_) => {
            if !guard.remove() {
                // A release handed us a permit just as the timer fired: keep it.
                if let Ok(permit) = rx.try_recv() {
                    return Ok(permit);
                }
            }
            Err(inner.reject(RejectReason::WaitTimedOut))
        }
    }
}

impl SemaphoreBulkhead {
    /// Takes a permit, waiting according to the [`WhenFull`] policy.
    ///
    /// Cancellation-safe: dropping the future while it waits leaves the queue and never leaks a
    /// permit (one handed over at that instant is released).
    ///
    /// # Errors
    /// [`Error::BulkheadFull`](crate::Error::BulkheadFull) when full under
    /// [`WhenFull::Reject`] or when the queue is full;
    /// [`Error::WaitTimedOut`](crate::Error::WaitTimedOut) after `max_wait`.
    pub async fn acquire(&self) -> Result<OwnedPermit> {
        acquire(&self.inner).await
    }

    /// Runs the future made by `f` under a permit (taken according to the [`WhenFull`] policy)
    /// and returns its output. The permit is released when the future completes or when the
    /// returned future is dropped.
    ///
    /// # Errors
    /// As [`SemaphoreBulkhead::acquire`]; `f` is not called on a rejection.
    pub async fn call<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let _permit = self.acquire().await?;
        Ok(f().await)
    }

    /// The configured maximum wait, if the bulkhead queues.
    pub fn max_wait(&self) -> Option<Duration> {
        match self.inner.config().when_full {
            WhenFull::Wait { max_wait, .. } => Some(max_wait),
            WhenFull::Reject => None,
        }
    }
}

/// Used by the tower service: an owned, `'static` acquisition future.
#[cfg(feature = "tower")]
pub(crate) async fn acquire_owned(bulkhead: SemaphoreBulkhead) -> Result<OwnedPermit> {
    acquire(&bulkhead.inner).await
}
