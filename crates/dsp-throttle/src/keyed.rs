//! The keyed GCRA rate limiter: one theoretical arrival time per key, in sharded maps with a
//! memory bound.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use dsp_core::sync::Mutex;
use dsp_core::sync::atomic::{AtomicU64, Ordering};
use dsp_core::{Clock, Instant, QuantaClock};
use foldhash::fast::RandomState;

use crate::direct::QuotaCell;
use crate::quota::gcra;
use crate::{Error, NotUntil, Quota, Result};

/// Settings of a [`KeyedRateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedConfig {
    /// Number of independently locked shards (a power of two, 1..=256). Default 16.
    pub shards: usize,
    /// Maximum number of keys held at once (at least `shards`). Each shard holds at most
    /// `max_keys / shards` keys; when a shard is full, its idle keys are evicted, and if none is
    /// idle a new key hashing to it is refused with [`Error::KeyCapacityExceeded`].
    /// Default 1,048,576.
    pub max_keys: usize,
}

impl Default for KeyedConfig {
    fn default() -> Self {
        KeyedConfig {
            shards: 16,
            max_keys: 1 << 20,
        }
    }
}

impl KeyedConfig {
    /// Checks the invariants.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    pub fn validate(&self) -> Result<()> {
        if !self.shards.is_power_of_two() || self.shards > 256 {
            return Err(Error::InvalidConfig(
                "shards must be a power of two between 1 and 256",
            ));
        }
        if self.max_keys < self.shards {
            return Err(Error::InvalidConfig(
                "max_keys must be at least the number of shards",
            ));
        }
        Ok(())
    }
}

type Shard<K> = Mutex<HashMap<K, u64, RandomState>>;

/// A GCRA rate limiter with one budget per key (per client, per tenant, per route).
///
/// Keys live in `shards` maps, each behind its own mutex (held for one hash-map lookup). A key
/// whose theoretical arrival time is in the past carries no information (it behaves exactly like
/// an absent key), so it can be evicted at any time: [`KeyedRateLimiter::retain_recent`] does so
/// for all shards, and a full shard does so for itself before refusing a new key. Memory is
/// therefore bounded by [`KeyedConfig::max_keys`].
///
/// ```
/// use dsp_core::ManualClock;
/// use dsp_throttle::{KeyedRateLimiter, Quota};
///
/// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(1).unwrap(), ManualClock::new());
/// assert!(limiter.check_key(&"alice").is_ok());
/// assert!(limiter.check_key(&"alice").is_err());
/// assert!(limiter.check_key(&"bob").is_ok());
/// ```
pub struct KeyedRateLimiter<K, C: Clock = QuantaClock> {
    shards: Box<[Shard<K>]>,
    shard_mask: u64,
    per_shard_cap: usize,
    max_keys: usize,
    hasher: RandomState,
    quota: QuotaCell,
    clock: C,
    evicted: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedRateLimiter<K, QuantaClock> {
    /// A keyed limiter with default settings, reading the default clock, a [`QuantaClock`]: one
    /// CPU time-stamp-counter read per call instead of a system call. The first `QuantaClock` in
    /// a process calibrates the counter (up to ~200 ms), so build limiters at start-up; use
    /// [`KeyedRateLimiter::with_clock`] for another clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, QuantaClock::new())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedRateLimiter<K, C> {
    /// A keyed limiter with default settings, reading `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let config = KeyedConfig::default();
        Self::build(quota, config, clock)
    }

    /// A keyed limiter with explicit settings.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn with_config(quota: Quota, config: KeyedConfig, clock: C) -> Result<Self> {
        config.validate()?;
        Ok(Self::build(quota, config, clock))
    }

    fn build(quota: Quota, config: KeyedConfig, clock: C) -> Self {
        let shards = (0..config.shards)
            .map(|_| Mutex::new(HashMap::with_hasher(RandomState::default())))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        KeyedRateLimiter {
            shards,
            shard_mask: (config.shards as u64).saturating_sub(1),
            per_shard_cap: config.max_keys / config.shards,
            max_keys: config.max_keys,
            hasher: RandomState::default(),
            quota: QuotaCell::new(quota),
            clock,
            evicted: AtomicU64::new(0),
        }
    }

    #[inline]
    fn shard(&self, key: &K) -> &Shard<K> {
        // Bits 48..56 of a hash from a different seed than the maps' own: independent of the
        // bits the maps use for their buckets.
        let h = self.hasher.hash_one(key);
        let idx = ((h >> 48) & self.shard_mask) as usize;
        &self.shards[idx]
    }

    /// Admits one cell for `key` now.
    ///
    /// # Errors
    /// [`Error::RateLimited`] if the key's budget is exhausted (nothing changed);
    /// [`Error::KeyCapacityExceeded`] if `key` is new and its shard holds only active keys.
    #[inline]
    pub fn check_key(&self, key: &K) -> Result<()> {
        self.check_key_n_at(key, 1, self.clock.now())
    }

    /// Admits `n` cells for `key` at once (all or none).
    ///
    /// # Errors
    /// As [`KeyedRateLimiter::check_key`], plus [`Error::InsufficientCapacity`] if `n` is zero
    /// or above the burst.
    pub fn check_key_n(&self, key: &K, n: u32) -> Result<()> {
        self.check_key_n_at(key, n, self.clock.now())
    }

    /// [`KeyedRateLimiter::check_key_n`] at a time the caller already read from the same clock.
    ///
    /// # Errors
    /// As [`KeyedRateLimiter::check_key_n`].
    pub fn check_key_n_at(&self, key: &K, n: u32, now: Instant) -> Result<()> {
        let burst = self.quota.burst();
        if n == 0 || n > burst {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst,
            });
        }
        let now_n = now.as_nanos();
        let period = self.quota.period();
        let tau = self.quota.tau();
        let shard = self.shard(key);
        let mut map = match shard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tat) = map.get_mut(key) {
            return match gcra(*tat, now_n, period, tau, u64::from(n)) {
                Ok(next) => {
                    *tat = next;
                    Ok(())
                }
                Err(earliest) => Err(NotUntil {
                    earliest: Instant::from_nanos(earliest),
                    now,
                }
                .into()),
            };
        }
        // A new key behaves as a key whose TAT is in the past.
        let next = match gcra(0, now_n, period, tau, u64::from(n)) {
            Ok(next) => next,
            Err(earliest) => {
                return Err(NotUntil {
                    earliest: Instant::from_nanos(earliest),
                    now,
                }
                .into());
            }
        };
        if map.len() >= self.per_shard_cap {
            let before = map.len();
            map.retain(|_, tat| *tat > now_n);
            self.evicted
                .fetch_add((before - map.len()) as u64, Ordering::Relaxed);
            if map.len() >= self.per_shard_cap {
                return Err(Error::KeyCapacityExceeded {
                    capacity: self.max_keys,
                });
            }
        }
        map.insert(key.clone(), next);
        Ok(())
    }

    /// Drops every key whose state is idle (theoretical arrival time not after now); such keys
    /// behave exactly like absent ones, so no decision changes. Returns how many were dropped.
    pub fn retain_recent(&self) -> usize {
        let now = self.clock.now().as_nanos();
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut map = match shard.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let before = map.len();
            map.retain(|_, tat| *tat > now);
            dropped += before - map.len();
        }
        self.evicted.fetch_add(dropped as u64, Ordering::Relaxed);
        dropped
    }

    /// Releases spare map capacity in every shard (after [`KeyedRateLimiter::retain_recent`]).
    pub fn shrink_to_fit(&self) {
        for shard in self.shards.iter() {
            match shard.lock() {
                Ok(mut g) => g.shrink_to_fit(),
                Err(poisoned) => poisoned.into_inner().shrink_to_fit(),
            }
        }
    }

    /// Number of keys currently held (idle keys not yet evicted included).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            })
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total keys evicted so far (by [`KeyedRateLimiter::retain_recent`] and by full shards).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Replaces the quota for every key, keeping each key's state.
    pub fn set_quota(&self, quota: Quota) {
        self.quota.store(quota);
    }

    /// The current quota.
    pub fn quota(&self) -> Quota {
        self.quota.load()
    }

    /// The limiter's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<K, C: Clock> fmt::Debug for KeyedRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("shards", &self.shards.len())
            .field("max_keys", &self.max_keys)
            .field("quota", &self.quota)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use dsp_core::ManualClock;

    use super::*;

    #[test]
    fn keys_have_independent_budgets() {
        let clock = ManualClock::new();
        let l = KeyedRateLimiter::with_clock(Quota::per_second(2).unwrap(), clock.clone());
        l.check_key(&1u32).unwrap();
        l.check_key(&1u32).unwrap();
        assert!(matches!(l.check_key(&1u32), Err(Error::RateLimited(_))));
        l.check_key(&2u32).unwrap();
        clock.advance(Duration::from_millis(500));
        l.check_key(&1u32).unwrap();
    }

    #[test]
    fn idle_keys_are_evicted_and_behave_like_new_keys() {
        let clock = ManualClock::new();
        let l = KeyedRateLimiter::with_clock(Quota::per_second(1).unwrap(), clock.clone());
        for k in 0..100u32 {
            l.check_key(&k).unwrap();
        }
        assert_eq!(l.len(), 100);
        assert_eq!(l.retain_recent(), 0, "all keys still active");
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.retain_recent(), 100);
        assert!(l.is_empty());
        assert_eq!(l.evicted(), 100);
        l.check_key(&5).unwrap();
        assert!(l.check_key(&5).is_err());
    }

    #[test]
    fn full_limiter_evicts_idle_keys_then_refuses_new_ones() {
        let clock = ManualClock::new();
        let config = KeyedConfig {
            shards: 1,
            max_keys: 4,
        };
        let l = KeyedRateLimiter::with_config(Quota::per_second(1).unwrap(), config, clock.clone())
            .unwrap();
        for k in 0..4u32 {
            l.check_key(&k).unwrap();
        }
        assert_eq!(
            l.check_key(&99),
            Err(Error::KeyCapacityExceeded { capacity: 4 })
        );
        // Existing keys are still served (and refused) normally.
        assert!(matches!(l.check_key(&0), Err(Error::RateLimited(_))));
        clock.advance(Duration::from_secs(1));
        l.check_key(&99).unwrap();
        assert!(l.len() <= 4);
    }

    #[test]
    fn keyed_quota_change_keeps_state() {
        let clock = ManualClock::new();
        let l = KeyedRateLimiter::with_clock(Quota::per_second(1).unwrap(), clock.clone());
        l.check_key(&"a").unwrap();
        l.set_quota(Quota::per_second(1).unwrap().allow_burst(2).unwrap());
        l.check_key(&"a").unwrap();
        assert!(l.check_key(&"a").is_err());
        assert!(l.check_key_n(&"b", 3).is_err());
        l.check_key_n(&"b", 2).unwrap();
    }

    #[test]
    fn invalid_keyed_config_is_rejected() {
        let q = Quota::per_second(1).unwrap();
        let c = ManualClock::new();
        let bad = KeyedConfig {
            shards: 3,
            max_keys: 10,
        };
        assert!(KeyedRateLimiter::<u32, _>::with_config(q, bad, c.clone()).is_err());
        let bad = KeyedConfig {
            shards: 8,
            max_keys: 4,
        };
        assert!(KeyedRateLimiter::<u32, _>::with_config(q, bad, c).is_err());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use dsp_core::ManualClock;
    use dsp_core::sync::atomic::AtomicUsize;
    use dsp_core::sync::{Arc, model, thread};

    use super::*;

    #[test]
    fn loom_keyed_never_admits_more_than_burst_per_key() {
        model(|| {
            let quota = match Quota::per_second(1) {
                Ok(q) => q,
                Err(e) => panic!("{e}"),
            };
            let l = Arc::new(KeyedRateLimiter::with_clock(quota, ManualClock::new()));
            let admitted = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let l = l.clone();
                    let admitted = admitted.clone();
                    thread::spawn(move || {
                        if l.check_key(&7u32).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for h in handles {
                let _ = h.join();
            }
            assert_eq!(admitted.load(Ordering::Relaxed), 1);
        });
    }
}
