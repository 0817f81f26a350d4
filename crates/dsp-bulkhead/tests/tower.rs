//! tower integration tests for `BulkheadLayer`, under paused tokio time.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::Duration;

use dsp_bulkhead::{BulkheadConfig, BulkheadLayer, Error, SemaphoreBulkhead};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sleepy() -> impl Service<u64, Response = u64, Error = Infallible, Future: Send> + Clone {
    service_fn(|d: u64| async move {
        tokio::time::sleep(Duration::from_millis(d)).await;
        Ok::<_, Infallible>(d)
    })
}

#[tokio::test(start_paused = true)]
async fn reject_mode_sheds_with_typed_error_carrying_the_name() {
    let b = SemaphoreBulkhead::new("search", BulkheadConfig::reject(1)).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(b.clone()))
        .service(sleepy());
    let first = svc.ready().await.unwrap().call(100);
    assert_eq!(
        b.available_permits(),
        0,
        "permit reserved in poll_ready, held by the future"
    );
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    let err = err.downcast_ref::<Error>().unwrap();
    assert_eq!(
        err,
        &Error::BulkheadFull {
            name: "search".into(),
            max_concurrent: 1
        }
    );
    assert_eq!(first.await.unwrap(), 100);
    assert_eq!(b.available_permits(), 1);
    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_poll_ready_waits_then_times_out() {
    let b = SemaphoreBulkhead::new("w", BulkheadConfig::wait(1, ms(50), 4)).unwrap();
    let layer = BulkheadLayer::new(b.clone());
    let mut a = ServiceBuilder::new().layer(layer.clone()).service(sleepy());
    let mut c = ServiceBuilder::new().layer(layer).service(sleepy());
    let long = a.ready().await.unwrap().call(200);
    let h = tokio::spawn(long);
    // Queued in poll_ready for 50 ms, then the call yields WaitTimedOut.
    let start = tokio::time::Instant::now();
    let err = c.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(start.elapsed(), ms(50));
    assert!(matches!(
        err.downcast_ref::<Error>(),
        Some(Error::WaitTimedOut { .. })
    ));
    assert_eq!(h.await.unwrap().unwrap(), 200);
    // Now a short wait succeeds.
    let h = tokio::spawn(a.ready().await.unwrap().call(30));
    assert_eq!(c.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(h.await.unwrap().unwrap(), 30);
    assert_eq!(b.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropped_response_future_and_service_release_permits() {
    let b = SemaphoreBulkhead::new("d", BulkheadConfig::reject(2)).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(b.clone()))
        .service(sleepy());
    let fut = svc.ready().await.unwrap().call(1000);
    assert_eq!(b.available_permits(), 1);
    drop(fut);
    assert_eq!(b.available_permits(), 2);
    // A permit reserved by poll_ready is released when the service is dropped.
    svc.ready().await.unwrap();
    assert_eq!(b.available_permits(), 1);
    drop(svc);
    assert_eq!(b.available_permits(), 2);
}

#[tokio::test(start_paused = true)]
async fn clones_share_permits_but_not_reservations() {
    let b = SemaphoreBulkhead::new("c", BulkheadConfig::reject(1)).unwrap();
    let mut s1 = ServiceBuilder::new()
        .layer(BulkheadLayer::new(b.clone()))
        .service(sleepy());
    s1.ready().await.unwrap();
    let mut s2 = s1.clone();
    let err = s2.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(err.downcast_ref::<Error>().unwrap().is_rejection());
    assert_eq!(s1.call(1).await.unwrap(), 1);
}
