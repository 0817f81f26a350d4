//! The dedicated-pool bulkhead: its own bounded set of worker tasks and a bounded queue.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use dsp_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::{Error, PoolConfig, Result};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Debug, Default)]
struct PoolStats {
    active: AtomicUsize,
    rejected: AtomicU64,
    completed: AtomicU64,
    max_observed_queue: AtomicUsize,
}

/// A point-in-time view of a pool's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// Number of workers.
    pub workers: usize,
    /// Workers running a job right now.
    pub active: usize,
    /// Jobs waiting for a worker right now.
    pub queued: usize,
    /// The queue's capacity.
    pub queue_capacity: usize,
    /// Submissions rejected so far (queue full).
    pub rejected: u64,
    /// Jobs finished so far (completed, cancelled or panicked).
    pub completed: u64,
    /// The longest the queue has been.
    pub max_observed_queue: usize,
}

/// A dedicated-pool bulkhead: `workers` tasks take jobs from a queue of `queue_capacity`, so a
/// dependency served through the pool can never use more than `workers` concurrent executions,
/// and never more than `workers + queue_capacity` outstanding jobs.
///
/// Workers are tokio tasks spawned on the runtime given at construction; pass the handle of a
/// separate runtime ([`PoolBulkhead::with_handle`]) to isolate the dependency on its own threads.
/// Each job runs in its own task, so a panicking job loses only itself
/// ([`Error::JobLost`]). Dropping the [`JobHandle`] cancels the job, queued or running. Dropping
/// the pool (every clone) lets the workers finish the queued jobs and exit.
///
/// ```
/// use dsp_bulkhead::{PoolBulkhead, PoolConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let pool = PoolBulkhead::new("reports", PoolConfig { workers: 2, queue_capacity: 8 })?;
/// let job = pool.submit(async { 6 * 7 })?;
/// assert_eq!(job.await?, 42);
/// # Ok::<(), dsp_bulkhead::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct PoolBulkhead {
    name: Arc<str>,
    config: PoolConfig,
    tx: mpsc::Sender<Job>,
    stats: Arc<PoolStats>,
}

impl PoolBulkhead {
    /// A pool on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a runtime; [`Error::InvalidConfig`] if `config` does not
    /// validate.
    pub fn new(name: impl Into<Arc<str>>, config: PoolConfig) -> Result<Self> {
        let handle = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        Self::with_handle(name, config, &handle)
    }

    /// A pool whose workers run on `handle`'s runtime.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn with_handle(
        name: impl Into<Arc<str>>,
        config: PoolConfig,
        handle: &Handle,
    ) -> Result<Self> {
        config.validate()?;
        let (tx, rx) = mpsc::channel::<Job>(config.queue_capacity);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let stats = Arc::new(PoolStats::default());
        for _ in 0..config.workers {
            let rx = rx.clone();
            let stats = stats.clone();
            let handle2 = handle.clone();
            handle.spawn(async move {
                loop {
                    let job = { rx.lock().await.recv().await };
                    let Some(job) = job else { break };
                    stats.active.fetch_add(1, Ordering::Relaxed);
                    // A panic inside the job ends its own task only.
                    let _ = handle2.spawn(job).await;
                    stats.active.fetch_sub(1, Ordering::Relaxed);
                    stats.completed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        Ok(PoolBulkhead {
            name: name.into(),
            config,
            tx,
            stats,
        })
    }

    /// Queues `job` for a worker.
    ///
    /// # Errors
    /// [`Error::QueueFull`] if the queue is full (the job is dropped, not run);
    /// [`Error::PoolClosed`] if the workers are gone (the runtime shut down).
    pub fn submit<F, T>(&self, job: F) -> Result<JobHandle<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let wrapped: Job = Box::pin(Cancellable {
            job: Box::pin(job),
            tx: Some(tx),
        });
        match self.tx.try_send(wrapped) {
            Ok(()) => {
                let queued = self.config.queue_capacity - self.tx.capacity();
                self.stats
                    .max_observed_queue
                    .fetch_max(queued, Ordering::Relaxed);
                Ok(JobHandle {
                    rx,
                    name: self.name.clone(),
                })
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "tracing")]
                tracing::debug!(pool = %self.name, "bulkhead pool queue full");
                Err(Error::QueueFull {
                    name: self.name.clone(),
                    capacity: self.config.queue_capacity,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::PoolClosed {
                name: self.name.clone(),
            }),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> PoolMetrics {
        PoolMetrics {
            workers: self.config.workers,
            active: self.stats.active.load(Ordering::Relaxed),
            queued: self
                .config
                .queue_capacity
                .saturating_sub(self.tx.capacity()),
            queue_capacity: self.config.queue_capacity,
            rejected: self.stats.rejected.load(Ordering::Relaxed),
            completed: self.stats.completed.load(Ordering::Relaxed),
            max_observed_queue: self.stats.max_observed_queue.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for PoolBulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBulkhead")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("metrics", &self.metrics())
            .finish()
    }
}

/// Runs a job unless its [`JobHandle`] is dropped first, and sends the result.
struct Cancellable<T> {
    job: Pin<Box<dyn Future<Output = T> + Send>>,
    tx: Option<oneshot::Sender<T>>,
}

impl<T> Future for Cancellable<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(tx) = this.tx.as_mut() else {
            return Poll::Ready(());
        };
        if tx.poll_closed(cx).is_ready() {
            // The caller is gone: drop the job.
            this.tx = None;
            return Poll::Ready(());
        }
        match this.job.as_mut().poll(cx) {
            Poll::Ready(out) => {
                if let Some(tx) = this.tx.take() {
                    let _ = tx.send(out);
                }
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The result of a job submitted to a [`PoolBulkhead`]. Dropping it cancels the job.
#[must_use = "dropping the handle cancels the job"]
pub struct JobHandle<T> {
    rx: oneshot::Receiver<T>,
    name: Arc<str>,
}

impl<T> Future for JobHandle<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        Pin::new(&mut this.rx).poll(cx).map(|r| {
            r.map_err(|_| Error::JobLost {
                name: this.name.clone(),
            })
        })
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("pool", &self.name)
            .finish()
    }
}
