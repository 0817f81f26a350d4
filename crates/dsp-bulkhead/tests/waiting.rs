//! Async acquisition, queueing, timeouts and cancellation safety, under paused tokio time.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dsp_bulkhead::{BulkheadConfig, Error, PoolBulkhead, PoolConfig, SemaphoreBulkhead};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn reject_mode_rejects_without_waiting() {
    let b = SemaphoreBulkhead::new("svc", BulkheadConfig::reject(1)).unwrap();
    let _p = b.acquire().await.unwrap();
    let start = tokio::time::Instant::now();
    let e = b.call(|| async { 1 }).await.unwrap_err();
    assert!(matches!(
        e,
        Error::BulkheadFull {
            max_concurrent: 1,
            ..
        }
    ));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn waiter_gets_the_released_permit() {
    let b = SemaphoreBulkhead::new("svc", BulkheadConfig::wait(1, ms(500), 4)).unwrap();
    let p = b.acquire().await.unwrap();
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.call(|| async { 7 }).await });
    tokio::time::sleep(ms(100)).await;
    assert_eq!(b.metrics().waiting, 1);
    drop(p);
    assert_eq!(waiter.await.unwrap().unwrap(), 7);
    let m = b.metrics();
    assert_eq!(
        (m.available_permits, m.waiting, m.max_observed_queue),
        (1, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn wait_times_out_with_the_bulkhead_name() {
    let b = SemaphoreBulkhead::new("slow-db", BulkheadConfig::wait(1, ms(250), 4)).unwrap();
    let _p = b.acquire().await.unwrap();
    let start = tokio::time::Instant::now();
    let e = b.acquire().await.unwrap_err();
    assert_eq!(
        e,
        Error::WaitTimedOut {
            name: "slow-db".into(),
            waited: ms(250)
        }
    );
    assert_eq!(start.elapsed(), ms(250));
    assert_eq!(b.metrics().waiting, 0);
    assert_eq!(b.metrics().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn full_queue_rejects_at_once() {
    let b = SemaphoreBulkhead::new("q", BulkheadConfig::wait(1, ms(1000), 1)).unwrap();
    let _p = b.acquire().await.unwrap();
    let b2 = b.clone();
    let queued = tokio::spawn(async move { b2.acquire().await.map(drop) });
    tokio::task::yield_now().await;
    assert_eq!(b.metrics().waiting, 1);
    assert!(matches!(b.acquire().await, Err(Error::BulkheadFull { .. })));
    queued.abort();
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_fifo_order() {
    let b = SemaphoreBulkhead::new("fifo", BulkheadConfig::wait(1, ms(10_000), 8)).unwrap();
    let p = b.acquire().await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let b = b.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            b.call(|| async {
                order.lock().unwrap().push(i);
                tokio::time::sleep(ms(10)).await;
            })
            .await
            .unwrap();
        }));
        tokio::task::yield_now().await;
    }
    drop(p);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn dropped_waiting_future_never_leaks_a_permit() {
    let b = SemaphoreBulkhead::new("c", BulkheadConfig::wait(2, ms(1000), 16)).unwrap();
    let p1 = b.acquire().await.unwrap();
    let p2 = b.acquire().await.unwrap();
    // Several waiters, cancelled at different moments: before any release, and racing a
    // release (the permit is handed over while the waiter is being dropped).
    let b2 = b.clone();
    let w1 = tokio::spawn(async move { b2.acquire().await.map(drop) });
    let b3 = b.clone();
    let w2 = tokio::spawn(async move {
        let _p = b3.acquire().await;
        std::future::pending::<()>().await;
    });
    tokio::task::yield_now().await;
    assert_eq!(b.metrics().waiting, 2);
    w1.abort();
    let _ = w1.await;
    assert_eq!(b.metrics().waiting, 1);
    drop(p1); // handed to w2, which holds it forever
    tokio::task::yield_now().await;
    assert_eq!(b.available_permits(), 0);
    w2.abort();
    let _ = w2.await;
    drop(p2);
    assert_eq!(b.available_permits(), 2, "every permit came back");
    assert_eq!(b.metrics().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_call_future_releases_its_permit() {
    let b = SemaphoreBulkhead::new("d", BulkheadConfig::reject(1)).unwrap();
    let fut = b.call(|| tokio::time::sleep(ms(1000)));
    let r = tokio::time::timeout(ms(10), fut).await;
    assert!(r.is_err());
    assert_eq!(b.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_select_with_a_racing_release_keeps_the_count_right() {
    let b = SemaphoreBulkhead::new("r", BulkheadConfig::wait(1, ms(100), 8)).unwrap();
    for round in 0..20u64 {
        let p = b.acquire().await.unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.acquire().await.map(drop) });
        tokio::time::sleep(ms(round * 7 % 120)).await;
        drop(p);
        let _ = waiter.await.unwrap();
        assert_eq!(b.available_permits(), 1, "round {round}");
        assert_eq!(b.metrics().waiting, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_never_exceed_max_under_contention() {
    let b =
        SemaphoreBulkhead::new("m", BulkheadConfig::wait(3, Duration::from_secs(30), 64)).unwrap();
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (b, current, peak) = (b.clone(), current.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                b.call(|| async {
                    let n = current.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    current.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(b.available_permits(), 3);
}

#[tokio::test(start_paused = true)]
async fn pool_runs_jobs_and_rejects_when_queue_full() {
    let pool = PoolBulkhead::new(
        "reports",
        PoolConfig {
            workers: 1,
            queue_capacity: 2,
        },
    )
    .unwrap();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let running = pool.submit(async move {
        let _ = release_rx.await;
        1
    });
    let running = running.unwrap();
    // Let the worker pick up the first job so the queue is empty again.
    tokio::task::yield_now().await;
    tokio::time::sleep(ms(1)).await;
    assert_eq!(pool.metrics().active, 1);
    let q1 = pool.submit(async { 2 }).unwrap();
    let q2 = pool.submit(async { 3 }).unwrap();
    let e = pool.submit(async { 4 }).unwrap_err();
    assert_eq!(
        e,
        Error::QueueFull {
            name: "reports".into(),
            capacity: 2
        }
    );
    assert!(e.is_rejection());
    assert_eq!(pool.metrics().queued, 2);
    release_tx.send(()).unwrap();
    assert_eq!(running.await.unwrap(), 1);
    assert_eq!(q1.await.unwrap(), 2);
    assert_eq!(q2.await.unwrap(), 3);
    let m = pool.metrics();
    assert_eq!((m.rejected, m.max_observed_queue), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn pool_survives_a_panicking_job_and_cancels_dropped_jobs() {
    let pool = PoolBulkhead::new(
        "p",
        PoolConfig {
            workers: 1,
            queue_capacity: 4,
        },
    )
    .unwrap();
    let bad = pool.submit(async { panic!("job panicked on purpose") });
    let bad: Result<(), _> = bad.unwrap().await;
    assert_eq!(bad.unwrap_err(), Error::JobLost { name: "p".into() });
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let long = pool
        .submit(async move {
            tokio::time::sleep(ms(1000)).await;
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    tokio::time::sleep(ms(10)).await;
    drop(long); // cancels the running job
    assert_eq!(pool.submit(async { 5 }).unwrap().await.unwrap(), 5);
    tokio::time::sleep(ms(2000)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn pool_outside_a_runtime_is_a_typed_error() {
    assert_eq!(
        PoolBulkhead::new("x", PoolConfig::default()).unwrap_err(),
        Error::NoRuntime
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bad = PoolConfig {
        workers: 0,
        queue_capacity: 1,
    };
    assert!(matches!(
        PoolBulkhead::with_handle("x", bad, rt.handle()),
        Err(Error::InvalidConfig(_))
    ));
}
