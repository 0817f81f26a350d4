//! Retry costs: backoff delay computation, the sans-IO retry decision and retry-budget
//! withdraw/deposit, the last beside tower's `TpsBudget` (1 and 2 threads).
//!
//! `Retry::budget/withdraw+deposit/*` is like with like: one successful withdrawal of one retry
//! plus one deposit per iteration, with both budgets set so a withdrawal costs what a deposit
//! gives back (dsp-retry: `retry_cost` 1, `success_deposit` 1; tower: `retry_percent` 1.0, i.e.
//! withdraw 1 and deposit 1), so the balance stays put and every withdrawal succeeds (asserted
//! in each iteration). The 2-thread cases run that loop on two std threads sharing one budget
//! and report the wall time divided by the per-thread iteration count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsp_core::{DetRng, Instant};
use dsp_retry::{
    Backoff, BackoffConfig, BackoffKind, BudgetConfig, CallOptions, Decision, Next, RetryBudget,
    RetryPolicy, RetryState,
};
use tower::retry::budget::{Budget as _, TpsBudget};

fn backoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("Retry::backoff_next");
    g.throughput(Throughput::Elements(1));
    for (name, kind) in [
        ("constant", BackoffKind::Constant),
        ("exponential", BackoffKind::Exponential),
        ("full-jitter", BackoffKind::FullJitter),
        ("decorrelated-jitter", BackoffKind::DecorrelatedJitter),
    ] {
        let config = BackoffConfig {
            kind,
            ..BackoffConfig::default()
        };
        let mut b = Backoff::new(config, DetRng::from_seed(1));
        g.bench_function(format!("{name}/dsp-retry"), |bench| {
            bench.iter(|| {
                let d = b.next_delay();
                // Keep the growth in its first steps, as a real retry loop would.
                b.reset();
                black_box(d)
            })
        });
    }
    g.finish();
}

fn decision(c: &mut Criterion) {
    let policy = RetryPolicy {
        max_elapsed: Some(Duration::from_secs(10)),
        ..Default::default()
    };
    // Creating the per-call state (seeding its RNG) is part of the cost, as in a real call.
    let mut g = c.benchmark_group("Retry::new_state+on_failure");
    g.throughput(Throughput::Elements(1));
    g.bench_function("full-jitter/dsp-retry", |b| {
        let opts = CallOptions::idempotent().with_deadline(Instant::from_millis(60_000));
        b.iter(|| {
            let mut s = RetryState::new(&policy, Instant::ZERO, opts, DetRng::from_seed(3));
            let next = s.on_failure(black_box(Instant::from_millis(5)), Decision::Retry);
            assert!(matches!(next, Next::RetryAt { .. }));
            black_box(next)
        })
    });
    g.finish();
}

fn budget(c: &mut Criterion) {
    let budget = RetryBudget::new(BudgetConfig::default()).unwrap();
    let mut g = c.benchmark_group("Retry::budget");
    g.throughput(Throughput::Elements(1));
    g.bench_function("withdraw+refund/dsp-retry", |b| {
        b.iter(|| {
            black_box(budget.withdraw(Decision::Retry))
                .unwrap()
                .refund()
        })
    });
    g.bench_function("withdraw+consume+deposit/dsp-retry", |b| {
        b.iter(|| {
            budget
                .withdraw(black_box(Decision::Retry))
                .unwrap()
                .consume();
            budget.deposit(black_box(5));
        })
    });
    g.bench_function("record_success/dsp-retry", |b| {
        b.iter(|| budget.record_success())
    });

    let dsp = RetryBudget::new(BudgetConfig {
        capacity: 500,
        retry_cost: 1,
        timeout_cost: 1,
        success_deposit: 1,
    })
    .unwrap();
    // Window 10 s, 10 retries/s reserve, one retry per deposit: withdraw 1, deposit 1.
    let tps = TpsBudget::new(Duration::from_secs(10), 10, 1.0);
    g.bench_function("withdraw+deposit/dsp-retry", |b| b.iter(|| dsp_cycle(&dsp)));
    g.bench_function("withdraw+deposit/tower-TpsBudget", |b| {
        b.iter(|| tps_cycle(&tps))
    });
    g.bench_function("2-threads/withdraw+deposit/dsp-retry", |b| {
        b.iter_custom(|iters| two_threads(&dsp, iters, dsp_cycle))
    });
    g.bench_function("2-threads/withdraw+deposit/tower-TpsBudget", |b| {
        b.iter_custom(|iters| two_threads(&tps, iters, tps_cycle))
    });
    g.finish();
}

/// One retry withdrawn (and spent), one success deposited.
fn dsp_cycle(budget: &RetryBudget) {
    budget
        .withdraw(black_box(Decision::Retry))
        .unwrap()
        .consume();
    budget.record_success();
}

/// One retry withdrawn, one success deposited.
fn tps_cycle(budget: &TpsBudget) {
    assert!(black_box(budget.withdraw()));
    budget.deposit();
}

/// Runs `call` `iters` times on each of two threads, started together; returns the wall time.
fn two_threads<B: Sync>(budget: &B, iters: u64, call: fn(&B)) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..iters {
                        call(budget);
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = std::time::Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        start.elapsed()
    })
}

criterion_group!(benches, backoff, decision, budget);
criterion_main!(benches);
