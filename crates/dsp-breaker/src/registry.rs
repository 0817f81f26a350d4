//! Per-key breakers with bounded memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use dsp_core::sync::Mutex;
use dsp_core::{Clock, SystemClock};

use crate::event::{BreakerListener, Listeners};
use crate::{Breaker, BreakerConfig, Error, Result};

#[derive(Debug)]
struct Entry<C: Clock> {
    breaker: Breaker<C>,
    last_used: u64,
}

#[derive(Debug)]
struct Map<K, C: Clock> {
    entries: HashMap<K, Entry<C>>,
    tick: u64,
}

/// A bounded map of breakers, one per key (host, endpoint, tenant...), all built from one
/// configuration and sharing one clock.
///
/// At most `capacity` breakers are kept; adding one more evicts the least recently used (an
/// evicted key starts over closed the next time it is used). Lookups take the registry's lock,
/// so keep the returned [`Breaker`] (a cheap clone) rather than looking it up per call on very hot
/// paths. Eviction scans the map, `O(capacity)`, and happens only when a new key arrives at a
/// full registry.
#[derive(Debug)]
pub struct BreakerRegistry<K, C: Clock + Clone = SystemClock> {
    config: BreakerConfig,
    clock: C,
    capacity: usize,
    listeners: Listeners,
    map: Mutex<Map<K, C>>,
}

impl<K: Hash + Eq + Clone> BreakerRegistry<K, SystemClock> {
    /// A registry on the system clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid or `capacity` is zero.
    pub fn new(config: BreakerConfig, capacity: usize) -> Result<Self> {
        Self::with_clock(config, capacity, SystemClock)
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> BreakerRegistry<K, C> {
    /// A registry on the given clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid or `capacity` is zero.
    pub fn with_clock(config: BreakerConfig, capacity: usize, clock: C) -> Result<Self> {
        config.validate()?;
        if capacity == 0 {
            return Err(Error::InvalidConfig("registry capacity must be > 0"));
        }
        Ok(Self {
            config,
            clock,
            capacity,
            listeners: Listeners(Vec::new()),
            map: Mutex::new(Map {
                entries: HashMap::new(),
                tick: 0,
            }),
        })
    }

    /// Adds a listener given to every breaker created from now on.
    pub fn with_listener(mut self, listener: Arc<dyn BreakerListener>) -> Self {
        self.listeners.0.push(listener);
        self
    }

    /// The breaker for `key`, created (and the least recently used one evicted if full) when
    /// missing.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] only if the registry's lock was poisoned by a panicking listener.
    pub fn get(&self, key: &K) -> Result<Breaker<C>> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| Error::InvalidConfig("registry lock poisoned"))?;
        map.tick += 1;
        let tick = map.tick;
        if let Some(e) = map.entries.get_mut(key) {
            e.last_used = tick;
            return Ok(e.breaker.clone());
        }
        if map.entries.len() >= self.capacity {
            let victim = map
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                map.entries.remove(&victim);
            }
        }
        let mut builder = Breaker::builder(self.config.clone()).clock(self.clock.clone());
        for l in &self.listeners.0 {
            builder = builder.shared_listener(Arc::clone(l));
        }
        let breaker = builder.build()?;
        map.entries.insert(
            key.clone(),
            Entry {
                breaker: breaker.clone(),
                last_used: tick,
            },
        );
        Ok(breaker)
    }

    /// The breaker for `key` if present (does not count as a use).
    pub fn peek(&self, key: &K) -> Option<Breaker<C>> {
        self.map
            .lock()
            .ok()?
            .entries
            .get(key)
            .map(|e| e.breaker.clone())
    }

    /// Forgets `key`'s breaker; returns whether it was present.
    pub fn remove(&self, key: &K) -> bool {
        self.map
            .lock()
            .map(|mut m| m.entries.remove(key).is_some())
            .unwrap_or(false)
    }

    /// Number of breakers held.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.entries.len()).unwrap_or(0)
    }

    /// `true` if no breaker is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most breakers held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use dsp_core::ManualClock;

    use super::*;
    use crate::State;

    #[test]
    fn registry_evicts_least_recently_used_key() {
        let r =
            BreakerRegistry::with_clock(BreakerConfig::default(), 2, ManualClock::new()).unwrap();
        let a = r.get(&"a").unwrap();
        r.get(&"b").unwrap();
        r.get(&"a").unwrap(); // a is now more recent than b
        r.get(&"c").unwrap(); // evicts b
        assert_eq!(r.len(), 2);
        assert!(r.peek(&"b").is_none());
        a.trip();
        assert_eq!(
            r.peek(&"a").unwrap().state(),
            State::Open,
            "same breaker is shared"
        );
        assert!(r.remove(&"a"));
        assert_eq!(
            r.get(&"a").unwrap().state(),
            State::Closed,
            "a re-created key starts closed"
        );
    }

    #[test]
    fn zero_capacity_is_rejected() {
        assert!(matches!(
            BreakerRegistry::<u32>::new(BreakerConfig::default(), 0),
            Err(Error::InvalidConfig(_))
        ));
    }
}
