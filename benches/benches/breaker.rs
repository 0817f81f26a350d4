//! Circuit breaker closed-path overhead per call on a no-op operation: dsp-breaker beside
//! failsafe and recloser (sync APIs, 1 and 2 threads), dsp-breaker's tower layer beside
//! tower-resilience's circuit breaker layer (tokio, 1 and 2 threads), plus dsp-breaker's async
//! paths polled without a runtime.
//!
//! The 2-thread cases use `iter_custom`: two std threads each make `iters` calls on one shared
//! breaker, and the reported time is the wall time of the run divided by `iters`, i.e. the time
//! per call on each thread while the other thread hammers the same breaker.
//!
//! `Breaker::closed_call_tower` wraps the same no-op `service_fn` in each breaker's tower layer
//! and drives it with `ServiceExt::ready().await` + `call().await` inside one `block_on` on a
//! current-thread tokio runtime (built outside the timed region). Both breakers use a count
//! window of 100 calls, a 50% failure-rate threshold and no slow-call detection; every call
//! succeeds, so both stay closed (asserted after each run). In the 2-thread case each thread
//! owns a clone of the layered service (clones share one breaker in both crates) and its own
//! current-thread runtime; each thread times its own loop and the slower one is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsp_breaker::{Breaker, BreakerConfig, CircuitBreakerLayer};
use failsafe::CircuitBreaker as _;
use tower::{Layer, Service, ServiceExt, service_fn};

fn noop() -> Result<u64, ()> {
    Ok(black_box(1))
}

/// Runs `call` `iters` times on each of two threads, started together; returns the wall time.
fn two_threads<B: Sync>(breaker: &B, iters: u64, call: fn(&B)) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..iters {
                        call(breaker);
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        start.elapsed()
    })
}

fn dsp_call(b: &Breaker) {
    black_box(b.call_sync(noop)).unwrap();
}

fn dsp_guard(b: &Breaker) {
    let permit = b.try_acquire().unwrap();
    black_box(noop()).unwrap();
    permit.success();
}

type Failsafe = failsafe::StateMachine<
    failsafe::failure_policy::OrElse<
        failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::EqualJittered>,
        failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::EqualJittered>,
    >,
    (),
>;

fn failsafe_call(b: &Failsafe) {
    black_box(b.call(noop)).unwrap();
}

fn recloser_call(b: &recloser::Recloser) {
    black_box(b.call(noop)).unwrap();
}

fn closed_call(c: &mut Criterion) {
    let dsp = Breaker::new(BreakerConfig::default()).unwrap();
    let failsafe: Failsafe = failsafe::Config::new().build();
    let recloser = recloser::Recloser::default();

    let mut g = c.benchmark_group("Breaker::closed_call");
    g.throughput(Throughput::Elements(1));
    g.bench_function("1-thread/no-breaker", |b| {
        b.iter(|| black_box(noop()).unwrap())
    });
    g.bench_function("1-thread/dsp-breaker", |b| b.iter(|| dsp_call(&dsp)));
    g.bench_function("1-thread/dsp-breaker-guard", |b| b.iter(|| dsp_guard(&dsp)));
    g.bench_function("1-thread/failsafe", |b| b.iter(|| failsafe_call(&failsafe)));
    g.bench_function("1-thread/recloser", |b| b.iter(|| recloser_call(&recloser)));
    g.bench_function("2-threads/dsp-breaker", |b| {
        b.iter_custom(|iters| two_threads(&dsp, iters, dsp_call))
    });
    g.bench_function("2-threads/dsp-breaker-guard", |b| {
        b.iter_custom(|iters| two_threads(&dsp, iters, dsp_guard))
    });
    g.bench_function("2-threads/failsafe", |b| {
        b.iter_custom(|iters| two_threads(&failsafe, iters, failsafe_call))
    });
    g.bench_function("2-threads/recloser", |b| {
        b.iter_custom(|iters| two_threads(&recloser, iters, recloser_call))
    });
    g.finish();
}

/// Polls a future that must complete without waiting (the operations here are all ready).
fn poll_ready<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a no-op future was pending"),
    }
}

fn async_paths(c: &mut Criterion) {
    let dsp = Breaker::new(BreakerConfig::default()).unwrap();
    let mut svc = CircuitBreakerLayer::new(dsp.clone()).layer(service_fn(|x: u64| {
        std::future::ready(Ok::<_, std::io::Error>(x))
    }));
    let mut bare = service_fn(|x: u64| std::future::ready(Ok::<_, std::io::Error>(x)));

    let mut g = c.benchmark_group("Breaker::closed_call_async");
    g.throughput(Throughput::Elements(1));
    g.bench_function("1-thread/dsp-breaker-call", |b| {
        b.iter(|| poll_ready(dsp.call(|| std::future::ready(noop()))).unwrap())
    });
    g.bench_function("1-thread/dsp-breaker-tower", |b| {
        b.iter(|| {
            poll_ready(std::future::poll_fn(|cx| svc.poll_ready(cx))).unwrap();
            poll_ready(svc.call(black_box(1))).unwrap()
        })
    });
    g.bench_function("1-thread/no-breaker-tower", |b| {
        b.iter(|| {
            poll_ready(std::future::poll_fn(|cx| bare.poll_ready(cx))).unwrap();
            poll_ready(bare.call(black_box(1))).unwrap()
        })
    });
    g.finish();
}

/// The no-op inner service every tower case wraps.
fn noop_service(x: u64) -> std::future::Ready<Result<u64, std::io::Error>> {
    std::future::ready(Ok(x))
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Makes `iters` calls through `svc` (`ready().await` then `call().await`); returns the time.
async fn drive<S>(svc: &mut S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for i in 0..iters {
        let out = svc.ready().await.unwrap().call(black_box(i)).await.unwrap();
        black_box(out);
    }
    start.elapsed()
}

/// Two threads, each with its own current-thread runtime and its own clone of `svc`, make
/// `iters` calls each, started together; returns the slower thread's loop time.
fn two_threads_tower<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let mut svc = svc.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    let rt = current_thread_runtime();
                    barrier.wait();
                    rt.block_on(drive(&mut svc, iters))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

fn tower_paths(c: &mut Criterion) {
    let rt = current_thread_runtime();

    let dsp = Breaker::new(BreakerConfig::default()).unwrap();
    let mut dsp_svc = CircuitBreakerLayer::new(dsp.clone()).layer(service_fn(noop_service));

    let tr_layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .sliding_window_size(100)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut tr_svc = tr_layer.layer(service_fn(noop_service));

    let mut bare = service_fn(noop_service);

    let mut g = c.benchmark_group("Breaker::closed_call_tower");
    g.throughput(Throughput::Elements(1));
    g.bench_function("1-thread/no-breaker", |b| {
        b.iter_custom(|iters| rt.block_on(drive(&mut bare, iters)))
    });
    g.bench_function("1-thread/dsp-breaker", |b| {
        b.iter_custom(|iters| rt.block_on(drive(&mut dsp_svc, iters)))
    });
    g.bench_function("1-thread/tower-resilience", |b| {
        b.iter_custom(|iters| rt.block_on(drive(&mut tr_svc, iters)))
    });
    g.bench_function("2-threads/dsp-breaker", |b| {
        b.iter_custom(|iters| two_threads_tower(&dsp_svc, iters))
    });
    g.bench_function("2-threads/tower-resilience", |b| {
        b.iter_custom(|iters| two_threads_tower(&tr_svc, iters))
    });
    g.finish();

    // Every call succeeded: neither breaker may have left the closed state.
    assert_eq!(dsp.state(), dsp_breaker::State::Closed);
    assert_eq!(
        tr_svc.state_sync(),
        tower_resilience::circuitbreaker::CircuitState::Closed
    );
}

criterion_group!(benches, closed_call, async_paths, tower_paths);
criterion_main!(benches);
