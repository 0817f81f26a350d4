//! Bulkhead acquire + release: dsp-bulkhead beside `tokio::sync::Semaphore::try_acquire` (raw,
//! 1 and 2 threads) and, through tower, `BulkheadLayer` beside tower's `ConcurrencyLimit`
//! (`poll_ready` + `call` + polling the response to completion on a no-op service).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsp_bulkhead::{Bulkhead, BulkheadConfig, SemaphoreBulkhead};
use tower::Service;
use tower::limit::ConcurrencyLimit;

/// Large enough that no acquisition is ever refused: the benchmark measures the admit path.
const MAX: usize = 1024;

fn raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("Bulkhead::acquire_release");
    g.throughput(Throughput::Elements(1));
    let ours = SemaphoreBulkhead::new("bench", BulkheadConfig::reject(MAX)).unwrap();
    g.bench_function("1-thread/dsp-bulkhead", |b| {
        b.iter(|| {
            let p = ours.try_acquire();
            black_box(p.is_ok())
        })
    });
    let sem = tokio::sync::Semaphore::new(MAX);
    g.bench_function("1-thread/tokio-semaphore", |b| {
        b.iter(|| {
            let p = sem.try_acquire();
            black_box(p.is_ok())
        })
    });
    g.bench_function("2-threads/dsp-bulkhead", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                let p = ours.try_acquire();
                p.is_ok()
            })
        })
    });
    g.bench_function("2-threads/tokio-semaphore", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                let p = sem.try_acquire();
                p.is_ok()
            })
        })
    });
    g.finish();
}

/// Runs `f` on two threads at once for `iters` iterations each; returns the slower thread's
/// time, so criterion reports the time per operation per thread.
fn two_threads<F: Fn() -> bool + Sync>(iters: u64, f: &F) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(f());
                    }
                    start.elapsed()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.into_iter().max().unwrap_or_default()
}

/// A no-op inner service whose future is immediately ready.
#[derive(Clone, Copy)]
struct Noop;

impl Service<()> for Noop {
    type Response = ();
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<(), Self::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: ()) -> Self::Future {
        std::future::ready(Ok(()))
    }
}

/// One full request through `svc`: `poll_ready`, `call`, poll the response to completion.
fn one_call<S>(svc: &mut S, cx: &mut Context<'_>) -> bool
where
    S: Service<()>,
{
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => return false,
    }
    let fut = pin!(svc.call(()));
    matches!(fut.poll(cx), Poll::Ready(Ok(_)))
}

fn tower_layer(c: &mut Criterion) {
    let mut g = c.benchmark_group("Bulkhead::tower_call");
    g.throughput(Throughput::Elements(1));
    let mut cx = Context::from_waker(Waker::noop());
    let bulkhead = SemaphoreBulkhead::new("bench", BulkheadConfig::reject(MAX)).unwrap();
    let mut ours = Bulkhead::new(Noop, bulkhead);
    g.bench_function("dsp-bulkhead", |b| {
        b.iter(|| black_box(one_call(&mut ours, &mut cx)))
    });
    let mut theirs = ConcurrencyLimit::new(Noop, MAX);
    g.bench_function("tower-concurrency-limit", |b| {
        b.iter(|| black_box(one_call(&mut theirs, &mut cx)))
    });
    g.bench_function("no-middleware", |b| {
        let mut bare = Noop;
        b.iter(|| black_box(one_call(&mut bare, &mut cx)))
    });
    g.finish();
}

criterion_group!(benches, raw, tower_layer);
criterion_main!(benches);
