//! tower integration tests for the rate-limit and concurrency-limit layers, under paused time.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use dsp_core::ManualClock;
use dsp_throttle::{
    Aimd, ConcurrencyLimitLayer, ConcurrencyLimiter, Error, Quota, RateLimitLayer, RateLimiter,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

async fn echo(x: u32) -> Result<u32, std::convert::Infallible> {
    Ok(x)
}

#[tokio::test(start_paused = true)]
async fn rate_limit_layer_sheds_excess_with_a_typed_error() {
    let clock = ManualClock::new();
    let limiter = Arc::new(RateLimiter::with_clock(
        Quota::per_second(2).unwrap(),
        clock.clone(),
    ));
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service_fn(echo);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    match err.downcast_ref::<Error>() {
        Some(Error::RateLimited(n)) => assert_eq!(n.wait_time(), Duration::from_millis(500)),
        other => panic!("unexpected {other:?}"),
    }
    clock.advance(Duration::from_millis(500));
    assert_eq!(svc.ready().await.unwrap().call(4).await.unwrap(), 4);
}

#[tokio::test(start_paused = true)]
async fn polling_ready_without_calling_consumes_no_quota() {
    let clock = ManualClock::new();
    let limiter = Arc::new(RateLimiter::with_clock(
        Quota::per_second(1).unwrap(),
        clock,
    ));
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service_fn(echo);
    for _ in 0..5 {
        svc.ready().await.unwrap();
    }
    assert_eq!(svc.call(7).await.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn concurrency_layer_rejects_above_limit_and_frees_on_cancel() {
    let limiter =
        ConcurrencyLimiter::new(Aimd::new(2, 1, 4, 0.5, Duration::from_secs(10))).unwrap();
    let slow = service_fn(|d: u64| async move {
        tokio::time::sleep(Duration::from_millis(d)).await;
        Ok::<_, std::convert::Infallible>(d)
    });
    let mut svc = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(limiter.clone()))
        .service(slow);
    let a = svc.ready().await.unwrap().call(100);
    let b = svc.ready().await.unwrap().call(100);
    let c = svc.ready().await.unwrap().call(100).await.unwrap_err();
    assert!(matches!(
        c.downcast_ref::<Error>(),
        Some(Error::ConcurrencyLimited { limit: 2 })
    ));
    assert_eq!(limiter.in_flight(), 2);
    // Cancelling one request frees its slot without a sample.
    drop(b);
    assert_eq!(limiter.in_flight(), 1);
    assert_eq!(a.await.unwrap(), 100);
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(limiter.limit(), 3, "a well-used success grows the limit");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_shrink_the_concurrency_limit() {
    let limiter =
        ConcurrencyLimiter::new(Aimd::new(8, 1, 8, 0.5, Duration::from_secs(10))).unwrap();
    let failing = service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("overloaded")) });
    let mut svc = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(limiter.clone()))
        .service(failing);
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(err.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(limiter.limit(), 4);
}
