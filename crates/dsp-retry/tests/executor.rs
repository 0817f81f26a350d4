//! The retry and hedging executors under paused tokio time.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dsp_core::Clock;
use dsp_retry::{
    BackoffConfig, BackoffKind, BudgetConfig, CallOptions, Decision, HedgeConfig, HedgeDelay,
    Hedger, Retrier, RetryBudget, RetryPolicy, TokioClock, retry,
};

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        backoff: BackoffConfig {
            kind: BackoffKind::Constant,
            base: Duration::from_millis(100),
            ..BackoffConfig::default()
        },
        max_attempts,
        max_elapsed: None,
        seed: 42,
    }
}

fn retrier(max_attempts: u32) -> Retrier<TokioClock> {
    Retrier::with_clock(policy(max_attempts), TokioClock::new()).unwrap()
}

fn budget(capacity: u64) -> Arc<RetryBudget> {
    Arc::new(
        RetryBudget::new(BudgetConfig {
            capacity,
            ..BudgetConfig::default()
        })
        .unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn retries_until_success_sleeping_backoff_between_attempts() {
    let r = retrier(5);
    let calls = AtomicU32::new(0);
    let start = tokio::time::Instant::now();
    let out = retry(&r, || {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move { if n < 3 { Err(n) } else { Ok(n) } }
    })
    .await;
    assert_eq!(out, Ok(3));
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn returns_last_error_after_max_attempts() {
    let r = retrier(3);
    let calls = AtomicU32::new(0);
    let out: Result<(), u32> = retry(&r, || {
        std::future::ready(Err(calls.fetch_add(1, Ordering::SeqCst) + 1))
    })
    .await;
    assert_eq!(out, Err(3));
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_call_is_attempted_once() {
    let r = retrier(5);
    let calls = AtomicU32::new(0);
    let out: Result<(), ()> = r
        .run(
            CallOptions::non_idempotent(),
            |_| Decision::Retry,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Err(()))
            },
        )
        .await;
    assert!(out.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn never_sleeps_past_the_deadline() {
    let r = retrier(10);
    let deadline = r.clock().now() + Duration::from_millis(250);
    let start = tokio::time::Instant::now();
    let calls = AtomicU32::new(0);
    let out: Result<(), u32> = r
        .run(
            CallOptions::idempotent().with_deadline(deadline),
            |_| Decision::Retry,
            || std::future::ready(Err(calls.fetch_add(1, Ordering::SeqCst) + 1)),
        )
        .await;
    // Attempts at 0, 100 and 200 ms; one at 300 ms would pass the deadline.
    assert_eq!(out, Err(3));
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let r = retrier(3);
    let start = tokio::time::Instant::now();
    let calls = AtomicU32::new(0);
    let out = r
        .run(
            CallOptions::idempotent(),
            |_: &&str| Decision::RetryAfter(Duration::from_secs(2)),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n == 0 { Err("429") } else { Ok(()) } }
            },
        )
        .await;
    assert_eq!(out, Ok(()));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn dont_retry_classification_stops_at_once() {
    let r = retrier(5);
    let calls = AtomicU32::new(0);
    let out: Result<(), &str> = r
        .run(
            CallOptions::idempotent(),
            |_| Decision::DontRetry,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Err("400"))
            },
        )
        .await;
    assert_eq!(out, Err("400"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn exhausted_budget_stops_retries() {
    let b = budget(10);
    let r = retrier(10).with_budget(b.clone());
    let calls = AtomicU32::new(0);
    let out: Result<(), ()> = retry(&r, || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err(()))
    })
    .await;
    assert!(out.is_err());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "10 tokens pay for two retries of 5"
    );
    assert_eq!(b.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn timeouts_cost_more_budget() {
    let b = budget(20);
    let r = retrier(10).with_budget(b.clone());
    let calls = AtomicU32::new(0);
    let _: Result<(), ()> = r
        .run(
            CallOptions::idempotent(),
            |_| Decision::RetryTimeout,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Err(()))
            },
        )
        .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "20 tokens pay for two timeout retries of 10"
    );
}

#[tokio::test(start_paused = true)]
async fn successful_retry_refunds_and_first_try_success_deposits() {
    let b = budget(10);
    let r = retrier(3).with_budget(b.clone());
    assert!(b.try_withdraw(5));
    let calls = AtomicU32::new(0);
    let out = retry(&r, || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move { if n == 0 { Err(()) } else { Ok(()) } }
    })
    .await;
    assert_eq!(out, Ok(()));
    assert_eq!(b.available(), 5, "the successful retry's tokens came back");
    retry(&r, || async { Ok::<_, ()>(()) }).await.unwrap();
    assert_eq!(b.available(), 6, "a first-try success deposits one token");
}

#[tokio::test(start_paused = true)]
async fn dropping_retry_mid_sleep_refunds_reserved_budget() {
    let b = budget(10);
    let r = retrier(5).with_budget(b.clone());
    let fut = retry(&r, || std::future::ready(Err::<(), ()>(())));
    // The first attempt fails at once; the retry reserves 5 tokens and sleeps 100 ms.
    let timed_out = tokio::time::timeout(Duration::from_millis(50), fut).await;
    assert!(timed_out.is_err());
    assert_eq!(
        b.available(),
        10,
        "the reservation was returned when the future was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn hedge_sends_backup_after_fixed_delay_and_cancels_loser() {
    let config = HedgeConfig {
        delay: HedgeDelay::Fixed(Duration::from_millis(10)),
        max_hedges: 1,
    };
    let h = Hedger::with_clock(config, TokioClock::new()).unwrap();
    let calls = AtomicU32::new(0);
    let dropped = Arc::new(AtomicU32::new(0));
    struct OnDrop(Arc<AtomicU32>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let start = tokio::time::Instant::now();
    let out = h
        .run(CallOptions::idempotent(), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let guard = OnDrop(dropped.clone());
            async move {
                let _guard = guard;
                // The primary is slow, the hedge fast.
                let d = if n == 0 { 1_000 } else { 5 };
                tokio::time::sleep(Duration::from_millis(d)).await;
                Ok::<_, ()>(n)
            }
        })
        .await;
    assert_eq!(out, Ok(1), "the hedge won");
    assert_eq!(start.elapsed(), Duration::from_millis(15));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "both attempts dropped, the loser cancelled"
    );
    assert_eq!(h.latencies().count(), 1);
}

#[tokio::test(start_paused = true)]
async fn fast_primary_sends_no_hedge() {
    let config = HedgeConfig {
        delay: HedgeDelay::Fixed(Duration::from_millis(10)),
        max_hedges: 2,
    };
    let b = budget(10);
    let h = Hedger::with_clock(config, TokioClock::new())
        .unwrap()
        .with_budget(b.clone());
    assert!(b.try_withdraw(1));
    let calls = AtomicU32::new(0);
    let out = h
        .run(CallOptions::idempotent(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, ()>(())
            }
        })
        .await;
    assert_eq!(out, Ok(()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(b.available(), 10, "a success without hedges deposits");
}

#[tokio::test(start_paused = true)]
async fn hedges_are_paid_from_the_shared_budget() {
    let config = HedgeConfig {
        delay: HedgeDelay::Fixed(Duration::from_millis(10)),
        max_hedges: 3,
    };
    let b = budget(10);
    let h = Hedger::with_clock(config, TokioClock::new())
        .unwrap()
        .with_budget(b.clone());
    let calls = AtomicU32::new(0);
    let out = h
        .run(CallOptions::idempotent(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, ()>(())
            }
        })
        .await;
    assert_eq!(out, Ok(()));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "10 tokens pay for two hedges"
    );
    assert_eq!(b.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_calls_are_not_hedged() {
    let config = HedgeConfig {
        delay: HedgeDelay::Fixed(Duration::from_millis(1)),
        max_hedges: 3,
    };
    let h = Hedger::with_clock(config, TokioClock::new()).unwrap();
    let calls = AtomicU32::new(0);
    let out = h
        .run(CallOptions::non_idempotent(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, ()>(())
            }
        })
        .await;
    assert_eq!(out, Ok(()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn hedge_delay_follows_the_latency_percentile() {
    let config = HedgeConfig {
        delay: HedgeDelay::Percentile {
            percentile: 0.9,
            min_samples: 10,
            fallback: Duration::from_millis(50),
        },
        max_hedges: 1,
    };
    let h = Hedger::with_clock(config, TokioClock::new()).unwrap();
    assert_eq!(
        h.hedge_delay(),
        Duration::from_millis(50),
        "fallback until enough samples"
    );
    for _ in 0..10 {
        h.run(CallOptions::idempotent(), || async {
            tokio::time::sleep(Duration::from_millis(8)).await;
            Ok::<_, ()>(())
        })
        .await
        .unwrap();
    }
    let d = h.hedge_delay();
    assert!(
        d >= Duration::from_millis(8) && d <= Duration::from_millis(10),
        "{d:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn all_attempts_failing_returns_last_error() {
    let config = HedgeConfig {
        delay: HedgeDelay::Fixed(Duration::from_millis(10)),
        max_hedges: 1,
    };
    let h = Hedger::with_clock(config, TokioClock::new()).unwrap();
    let calls = AtomicU32::new(0);
    let out: Result<(), u32> = h
        .run(CallOptions::idempotent(), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(if n == 0 { 30 } else { 40 })).await;
                Err(n)
            }
        })
        .await;
    assert_eq!(out, Err(1));
}
