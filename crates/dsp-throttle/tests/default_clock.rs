//! The limiters' default clock is `dsp_core::QuantaClock`, and they work on real time with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use dsp_core::{Clock, DetRng, QuantaClock, SystemClock};
use dsp_throttle::{
    AdaptiveConfig, AdaptiveThrottle, Aimd, ConcurrencyLimiter, Error, KeyedRateLimiter, Quota,
    RateLimiter,
};

#[test]
fn direct_limiter_defaults_to_quanta_clock() {
    // Type annotations without a clock parameter name the default: this only compiles if
    // `new` builds the default type.
    let limiter: RateLimiter = RateLimiter::new(Quota::per(Duration::from_secs(3600), 2).unwrap());
    let _: &QuantaClock = limiter.clock();
    assert!(limiter.check().is_ok());
    assert!(limiter.check_at(limiter.clock().now()).is_ok());
    // A third cell within the hour is refused, and the refusal says when, on the same clock.
    let denied = limiter.check().unwrap_err();
    assert!(denied.earliest() > denied.decided_at());
}

#[test]
fn keyed_limiter_defaults_to_quanta_clock() {
    let limiter: KeyedRateLimiter<&str> =
        KeyedRateLimiter::new(Quota::per(Duration::from_secs(3600), 1).unwrap());
    let _: &QuantaClock = limiter.clock();
    assert!(limiter.check_key(&"alice").is_ok());
    assert!(matches!(
        limiter.check_key(&"alice"),
        Err(Error::RateLimited(_))
    ));
    assert!(limiter.check_key(&"bob").is_ok());
}

#[test]
fn other_limiters_default_to_quanta_clock() {
    let throttle: AdaptiveThrottle =
        AdaptiveThrottle::new(AdaptiveConfig::default(), DetRng::from_seed(7)).unwrap();
    assert_eq!(throttle.rejection_probability(), 0.0);
    let limiter: ConcurrencyLimiter = ConcurrencyLimiter::new(Aimd::default()).unwrap();
    let token = limiter.try_acquire().unwrap();
    assert_eq!(limiter.in_flight(), 1);
    token.success();
    assert_eq!(limiter.in_flight(), 0);
}

#[test]
fn system_clock_is_still_usable() {
    let limiter = Arc::new(RateLimiter::with_clock(
        Quota::per(Duration::from_secs(3600), 1).unwrap(),
        SystemClock::new(),
    ));
    let _: &SystemClock = limiter.clock();
    assert!(limiter.check().is_ok());
    assert!(limiter.check().is_err());
}
