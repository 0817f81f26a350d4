//! ManualClock scenario tests for every breaker transition and threshold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsp_breaker::{
    Breaker, BreakerConfig, BreakerError, BreakerEvent, Error, Mode, Outcome, SlowCallConfig,
    State, WindowConfig,
};
use dsp_core::{Instant, ManualClock};

fn config() -> BreakerConfig {
    BreakerConfig {
        window: WindowConfig::Count {
            size: 10,
            buckets: 10,
        },
        failure_rate_threshold: 0.5,
        minimum_calls: 4,
        half_open_trials: 2,
        open_duration: Duration::from_secs(10),
        max_open_duration: Duration::from_secs(10),
        ..BreakerConfig::default()
    }
}

fn breaker(config: BreakerConfig) -> (Breaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    (Breaker::with_clock(config, clock.clone()).unwrap(), clock)
}

fn fail(b: &Breaker<ManualClock>) {
    b.try_acquire().unwrap().failure();
}

fn succeed(b: &Breaker<ManualClock>) {
    b.try_acquire().unwrap().success();
}

fn open_breaker(b: &Breaker<ManualClock>) {
    for _ in 0..4 {
        fail(b);
    }
    assert_eq!(b.state(), State::Open);
}

#[test]
fn starts_closed_and_permits_calls() {
    let (b, _) = breaker(config());
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.call_sync(|| Ok::<_, ()>(7)), Ok(7));
}

#[test]
fn opens_after_failure_rate_exceeded() {
    let (b, _) = breaker(config());
    succeed(&b);
    succeed(&b);
    fail(&b);
    assert_eq!(
        b.state(),
        State::Closed,
        "3 calls is below the minimum of 4"
    );
    fail(&b);
    // 2 failures out of 4 = 50 % reaches the threshold.
    assert_eq!(b.state(), State::Open);
}

#[test]
fn stays_closed_below_failure_rate_threshold() {
    let (b, _) = breaker(config());
    for _ in 0..20 {
        succeed(&b);
        succeed(&b);
        fail(&b);
    }
    assert_eq!(b.state(), State::Closed, "33 % failures stay below 50 %");
    let m = b.metrics();
    // The exact 10-call window recycles its oldest bucket when the newest fills.
    assert_eq!(m.window_calls, 9);
}

#[test]
fn does_not_judge_before_minimum_calls() {
    let (b, _) = breaker(BreakerConfig {
        minimum_calls: 5,
        ..config()
    });
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn open_rejects_with_retry_after_and_counts_rejections() {
    let (b, clock) = breaker(config());
    open_breaker(&b);
    clock.advance(Duration::from_secs(4));
    match b.try_acquire() {
        Err(Error::Rejected {
            state: State::Open,
            retry_after,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(6)));
        }
        other => panic!("expected rejection, got {other:?}"),
    }
    let r = b.call_sync(|| Ok::<_, ()>(()));
    assert!(matches!(r, Err(BreakerError::Rejected(_))));
    assert_eq!(b.metrics().rejected_calls, 2);
}

#[test]
fn moves_to_half_open_after_open_duration() {
    let (b, clock) = breaker(config());
    open_breaker(&b);
    clock.advance(Duration::from_millis(9_999));
    assert!(b.try_acquire().is_err());
    clock.advance(Duration::from_millis(1));
    let p = b.try_acquire().unwrap();
    assert_eq!(p.state(), State::HalfOpen);
    assert_eq!(b.state(), State::HalfOpen);
    drop(p);
}

#[test]
fn half_open_admits_exactly_n_trials() {
    let (b, clock) = breaker(config());
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(matches!(
        b.try_acquire(),
        Err(Error::Rejected {
            state: State::HalfOpen,
            ..
        })
    ));
    p1.success();
    assert!(b.try_acquire().is_err(), "a completed trial keeps its slot");
    p2.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn half_open_closes_when_trials_succeed_and_starts_with_empty_window() {
    let (b, clock) = breaker(config());
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    succeed(&b);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().window_calls, 0);
    fail(&b);
    assert_eq!(b.state(), State::Closed, "old failures were forgotten");
}

#[test]
fn half_open_reopens_when_trials_fail() {
    let (b, clock) = breaker(config());
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    succeed(&b);
    fail(&b);
    // 1 of 2 = 50 % reaches the threshold.
    assert_eq!(b.state(), State::Open);
}

#[test]
fn dropped_half_open_permit_releases_its_slot() {
    let (b, clock) = breaker(config());
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    drop(p1);
    let p3 = b
        .try_acquire()
        .expect("the dropped trial's slot is free again");
    p2.success();
    p3.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn ignored_outcomes_are_not_counted() {
    let (b, _) = breaker(config());
    for _ in 0..10 {
        b.try_acquire().unwrap().record(Outcome::Ignored);
    }
    assert_eq!(b.metrics().window_calls, 0);
}

#[test]
fn classifier_decides_what_counts_as_failure() {
    let (b, _) = breaker(config());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..10 {
            let r = b
                .call_with(
                    |r: &Result<(), u16>| match r {
                        Err(404) => Outcome::Ignored,
                        Err(_) => Outcome::Failure,
                        Ok(()) => Outcome::Success,
                    },
                    || async { Err::<(), u16>(404) },
                )
                .await;
            assert_eq!(r, Err(BreakerError::Inner(404)));
        }
    });
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().window_calls, 0);
}

#[test]
fn half_open_reopens_after_max_wait() {
    let (b, clock) = breaker(BreakerConfig {
        max_wait_in_half_open: Some(Duration::from_secs(5)),
        ..config()
    });
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(b.try_acquire().is_err());
    assert_eq!(b.state(), State::Open, "trials took too long");
    // Late trial results of the old half-open state are ignored.
    p1.success();
    p2.success();
    assert_eq!(b.state(), State::Open);
}

#[test]
fn open_duration_grows_on_repeated_trips_and_resets_on_close() {
    let (b, clock) = breaker(BreakerConfig {
        open_duration: Duration::from_secs(1),
        open_backoff_multiplier: 2.0,
        max_open_duration: Duration::from_secs(3),
        ..config()
    });
    open_breaker(&b);
    let waits: Vec<_> = (0..3)
        .map(|_| {
            let wait = b.metrics().open_remaining.unwrap();
            clock.advance(wait);
            fail(&b);
            fail(&b);
            assert_eq!(b.state(), State::Open);
            wait
        })
        .collect();
    assert_eq!(waits, [1, 2, 3].map(Duration::from_secs));
    assert_eq!(
        b.metrics().open_remaining,
        Some(Duration::from_secs(3)),
        "capped"
    );
    clock.advance(Duration::from_secs(3));
    succeed(&b);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
    open_breaker(&b);
    assert_eq!(
        b.metrics().open_remaining,
        Some(Duration::from_secs(1)),
        "growth reset"
    );
}

#[test]
fn opens_after_slow_call_rate_exceeded() {
    let (b, clock) = breaker(BreakerConfig {
        slow_call: Some(SlowCallConfig {
            duration: Duration::from_secs(1),
            rate_threshold: 0.5,
        }),
        ..config()
    });
    succeed(&b);
    succeed(&b);
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_secs(1));
    p.success();
    assert_eq!(b.state(), State::Closed);
    b.try_acquire()
        .unwrap()
        .record_with_duration(Outcome::Success, Duration::from_secs(2));
    assert_eq!(b.state(), State::Open, "2 of 4 calls slow");
    assert_eq!(
        b.metrics().window_slow_calls,
        2,
        "the window is kept while open, for metrics"
    );
}

#[test]
fn half_open_reopens_when_trials_are_slow() {
    let (b, clock) = breaker(BreakerConfig {
        slow_call: Some(SlowCallConfig {
            duration: Duration::from_secs(1),
            rate_threshold: 0.5,
        }),
        ..config()
    });
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    succeed(&b);
    b.try_acquire()
        .unwrap()
        .record_with_duration(Outcome::Success, Duration::from_secs(1));
    assert_eq!(b.state(), State::Open);
}

#[test]
fn time_window_forgets_old_failures() {
    let (b, clock) = breaker(BreakerConfig {
        window: WindowConfig::Time {
            buckets: 5,
            bucket_width: Duration::from_secs(1),
        },
        ..config()
    });
    for _ in 0..3 {
        fail(&b);
    }
    clock.advance(Duration::from_secs(5));
    fail(&b);
    assert_eq!(
        b.state(),
        State::Closed,
        "the 3 old failures left the 5 s window"
    );
    for _ in 0..3 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Open);
}

#[test]
fn disabled_mode_permits_everything_and_records_nothing() {
    let (b, _) = breaker(config());
    b.set_mode(Mode::Disabled);
    for _ in 0..20 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.metrics().window_calls, 0);
}

#[test]
fn forced_open_rejects_until_reset() {
    let (b, clock) = breaker(config());
    b.set_mode(Mode::ForcedOpen);
    clock.advance(Duration::from_secs(3600));
    assert!(matches!(
        b.try_acquire(),
        Err(Error::Rejected {
            state: State::ForcedOpen,
            ..
        })
    ));
    b.reset();
    assert_eq!(b.state(), State::Closed);
    succeed(&b);
}

#[test]
fn metrics_only_mode_records_but_never_trips() {
    let (b, _) = breaker(config());
    b.set_mode(Mode::MetricsOnly);
    for _ in 0..10 {
        fail(&b);
    }
    assert_eq!(b.state(), State::MetricsOnly);
    let m = b.metrics();
    assert_eq!(
        m.window_failures, 9,
        "one bucket of the exact window was recycled"
    );
    assert_eq!(m.failure_rate, Some(1.0));
}

#[test]
fn results_of_calls_from_before_a_trip_are_ignored() {
    let (b, clock) = breaker(config());
    let late = b.try_acquire().unwrap();
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    late.failure();
    succeed(&b);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn listeners_see_transitions_and_rejections() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let b = Breaker::builder(config())
        .clock(clock.clone())
        .listener(move |e: &BreakerEvent| sink.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    open_breaker(&b);
    let _ = b.try_acquire();
    clock.advance(Duration::from_secs(10));
    succeed(&b);
    succeed(&b);
    let at0 = Instant::ZERO;
    let at10 = Instant::from_millis(10_000);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            BreakerEvent::StateTransition {
                from: State::Closed,
                to: State::Open,
                at: at0
            },
            BreakerEvent::Rejected {
                state: State::Open,
                at: at0
            },
            BreakerEvent::StateTransition {
                from: State::Open,
                to: State::HalfOpen,
                at: at10
            },
            BreakerEvent::StateTransition {
                from: State::HalfOpen,
                to: State::Closed,
                at: at10
            },
        ]
    );
}

#[test]
fn dropped_call_future_releases_half_open_slot() {
    let (b, clock) = breaker(BreakerConfig {
        half_open_trials: 1,
        ..config()
    });
    open_breaker(&b);
    clock.advance(Duration::from_secs(10));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let pending = b.call(std::future::pending::<Result<(), ()>>);
        // Poll once so the permit is taken, then drop (cancel) the call.
        let r = tokio::time::timeout(Duration::from_millis(1), pending).await;
        assert!(r.is_err());
        assert_eq!(b.call(|| async { Ok::<_, ()>(1) }).await, Ok(1));
    });
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn many_threads_share_one_breaker() {
    let (b, _) = breaker(BreakerConfig {
        window: WindowConfig::Count {
            size: 1000,
            buckets: 10,
        },
        minimum_calls: 100,
        ..config()
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    succeed(&b);
                }
            });
        }
    });
    assert_eq!(b.state(), State::Closed);
    let calls = b.metrics().window_calls;
    assert!((900..=1000 + 4).contains(&calls), "{calls}");
}
