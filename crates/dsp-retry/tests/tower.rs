//! The tower retry layer under paused tokio time.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dsp_retry::{
    BackoffConfig, BackoffKind, Decision, Retrier, RetryLayer, RetryPolicy, TokioClock,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn retrier() -> Arc<Retrier<TokioClock>> {
    let policy = RetryPolicy {
        backoff: BackoffConfig {
            kind: BackoffKind::Exponential,
            base: Duration::from_millis(10),
            ..BackoffConfig::default()
        },
        max_attempts: 4,
        ..RetryPolicy::default()
    };
    Arc::new(Retrier::with_clock(policy, TokioClock::new()).unwrap())
}

#[derive(Clone, Debug)]
struct Req {
    idempotent: bool,
    fail_times: u32,
}

macro_rules! flaky {
    ($calls:expr) => {{
        let calls = $calls;
        service_fn(move |req: Req| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n <= req.fail_times {
                    Err("unavailable")
                } else {
                    Ok(n)
                }
            }
        })
    }};
}

#[tokio::test(start_paused = true)]
async fn layer_retries_idempotent_requests_with_backoff() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            retrier(),
            |_: &&str| Decision::Retry,
            |r: &Req| r.idempotent,
        ))
        .service(flaky!(calls.clone()));
    let start = tokio::time::Instant::now();
    let out = svc
        .ready()
        .await
        .unwrap()
        .call(Req {
            idempotent: true,
            fail_times: 2,
        })
        .await;
    assert_eq!(out, Ok(3));
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(30),
        "10 ms then 20 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn layer_sends_non_idempotent_requests_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            retrier(),
            |_: &&str| Decision::Retry,
            |r: &Req| r.idempotent,
        ))
        .service(flaky!(calls.clone()));
    let out = svc
        .ready()
        .await
        .unwrap()
        .call(Req {
            idempotent: false,
            fail_times: 2,
        })
        .await;
    assert_eq!(out, Err("unavailable"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn layer_gives_up_after_max_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            retrier(),
            |_: &&str| Decision::Retry,
            |_: &Req| true,
        ))
        .service(flaky!(calls.clone()));
    let out = svc
        .ready()
        .await
        .unwrap()
        .call(Req {
            idempotent: true,
            fail_times: 10,
        })
        .await;
    assert_eq!(out, Err("unavailable"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}
