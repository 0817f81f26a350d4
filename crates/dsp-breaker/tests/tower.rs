//! The tower layer under paused tokio time.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tower")]

use std::time::Duration;

use dsp_breaker::{
    Breaker, BreakerConfig, CircuitBreakerLayer, Error, Outcome, State, WindowConfig,
};
use dsp_core::ManualClock;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn config() -> BreakerConfig {
    BreakerConfig {
        window: WindowConfig::Count {
            size: 4,
            buckets: 4,
        },
        minimum_calls: 4,
        half_open_trials: 1,
        open_duration: Duration::from_secs(5),
        max_open_duration: Duration::from_secs(5),
        ..BreakerConfig::default()
    }
}

async fn flaky(fail: bool) -> Result<&'static str, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    if fail {
        Err(std::io::Error::other("boom"))
    } else {
        Ok("ok")
    }
}

#[tokio::test(start_paused = true)]
async fn layer_opens_and_rejects_without_calling_inner() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config(), clock.clone()).unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(service_fn(move |fail: bool| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            flaky(fail)
        }));
    for _ in 0..4 {
        let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }
    assert_eq!(breaker.state(), State::Open);
    let err = svc.ready().await.unwrap().call(false).await.unwrap_err();
    let err = err
        .downcast::<Error>()
        .expect("rejection is a dsp_breaker::Error");
    assert!(matches!(
        *err,
        Error::Rejected {
            state: State::Open,
            ..
        }
    ));
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "inner not called"
    );

    clock.advance(Duration::from_secs(5));
    assert_eq!(svc.ready().await.unwrap().call(false).await.unwrap(), "ok");
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn layer_classifier_ignores_chosen_errors() {
    let breaker = Breaker::with_clock(config(), ManualClock::new()).unwrap();
    let layer = CircuitBreakerLayer::with_classifier(
        breaker.clone(),
        |r: &Result<&'static str, std::io::Error>| {
            if r.is_ok() {
                Outcome::Success
            } else {
                Outcome::Ignored
            }
        },
    );
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(flaky));
    for _ in 0..8 {
        assert!(svc.ready().await.unwrap().call(true).await.is_err());
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropped_response_future_releases_half_open_slot() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config(), clock.clone()).unwrap();
    breaker.trip();
    clock.advance(Duration::from_secs(5));
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(service_fn(flaky));
    let fut = svc.ready().await.unwrap().call(false);
    // The only trial slot is taken by `fut`.
    let err = svc.ready().await.unwrap().call(false).await.unwrap_err();
    assert!(err.downcast_ref::<Error>().is_some());
    drop(fut);
    assert_eq!(svc.ready().await.unwrap().call(false).await.unwrap(), "ok");
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn timeouts_below_the_breaker_count_as_failures() {
    let breaker = Breaker::with_clock(config(), ManualClock::new()).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(service_fn(|fail: bool| async move {
            let r: Result<&str, Box<dyn std::error::Error + Send + Sync>> =
                match tokio::time::timeout(Duration::from_millis(5), flaky(fail)).await {
                    Ok(r) => r.map_err(Into::into),
                    Err(elapsed) => Err(elapsed.into()),
                };
            r
        }));
    for _ in 0..4 {
        assert!(svc.ready().await.unwrap().call(false).await.is_err());
    }
    assert_eq!(breaker.state(), State::Open);
}

/// The error a capacity-limiting layer (a bulkhead, a load shedder) returns when it refuses work.
#[derive(Debug)]
struct Overloaded;

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("overloaded")
    }
}

impl std::error::Error for Overloaded {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::test(start_paused = true)]
async fn local_rejections_below_the_breaker_do_not_trip_it_when_classified_ignored() {
    let breaker = Breaker::with_clock(config(), ManualClock::new()).unwrap();
    let ignore_overload = |r: &Result<&'static str, BoxError>| match r {
        Ok(_) => Outcome::Success,
        Err(e) if e.is::<Overloaded>() => Outcome::Ignored,
        Err(_) => Outcome::Failure,
    };
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::with_classifier(
            breaker.clone(),
            ignore_overload,
        ))
        .service(service_fn(|_: ()| async {
            Err::<&'static str, BoxError>(Overloaded.into())
        }));
    for _ in 0..8 {
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert!(err.is::<Overloaded>());
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "local rejections say nothing about the dependency"
    );

    // With the default classifier the same rejections do count.
    let counted = Breaker::with_clock(config(), ManualClock::new()).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(counted.clone()))
        .service(service_fn(|_: ()| async {
            Err::<&'static str, BoxError>(Overloaded.into())
        }));
    for _ in 0..4 {
        let _ = svc.ready().await.unwrap().call(()).await;
    }
    assert_eq!(counted.state(), State::Open);
}
