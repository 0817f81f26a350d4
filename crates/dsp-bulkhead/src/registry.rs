//! A registry of named semaphore bulkheads (one per dependency, or per partition of one).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use dsp_core::sync::Mutex;

use crate::{BulkheadConfig, BulkheadMetrics, Error, Result, SemaphoreBulkhead};

/// Named [`SemaphoreBulkhead`]s, created on first use and shared afterwards.
///
/// The registry is bounded ([`BulkheadRegistry::with_capacity`]); per-partition bulkheads
/// (per tenant, per shard) are named `"{name}/{partition}"`.
///
/// ```
/// use dsp_bulkhead::{BulkheadConfig, BulkheadRegistry};
///
/// let registry = BulkheadRegistry::new(BulkheadConfig::reject(10))?;
/// let a = registry.get_or_create("inventory")?;
/// let b = registry.get_or_create("inventory")?;
/// let _permit = a.try_acquire()?;
/// assert_eq!(b.available_permits(), 9); // the same bulkhead
/// let tenant = registry.partition("inventory", &"tenant-7")?;
/// assert_eq!(tenant.name(), "inventory/tenant-7");
/// assert_eq!(tenant.available_permits(), 10); // its own permits
/// # Ok::<(), dsp_bulkhead::Error>(())
/// ```
pub struct BulkheadRegistry {
    default: BulkheadConfig,
    capacity: usize,
    map: Mutex<HashMap<Arc<str>, SemaphoreBulkhead>>,
}

impl BulkheadRegistry {
    /// A registry creating bulkheads with `default`, holding at most 10,000 of them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `default` does not validate.
    pub fn new(default: BulkheadConfig) -> Result<Self> {
        Self::with_capacity(default, 10_000)
    }

    /// A registry holding at most `capacity` bulkheads.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `default` does not validate or `capacity` is zero.
    pub fn with_capacity(default: BulkheadConfig, capacity: usize) -> Result<Self> {
        default.validate()?;
        if capacity == 0 {
            return Err(Error::InvalidConfig(
                "a registry needs a capacity of at least 1",
            ));
        }
        Ok(BulkheadRegistry {
            default,
            capacity,
            map: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> dsp_core::sync::MutexGuard<'_, HashMap<Arc<str>, SemaphoreBulkhead>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The bulkhead named `name`, created with the default configuration if absent.
    ///
    /// # Errors
    /// [`Error::RegistryFull`] if it is absent and the registry is full.
    pub fn get_or_create(&self, name: &str) -> Result<SemaphoreBulkhead> {
        self.get_or_create_with(name, self.default)
    }

    /// The bulkhead named `name`, created with `config` if absent (an existing bulkhead keeps
    /// its own configuration).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if it must be created and `config` does not validate;
    /// [`Error::RegistryFull`] if it is absent and the registry is full.
    pub fn get_or_create_with(
        &self,
        name: &str,
        config: BulkheadConfig,
    ) -> Result<SemaphoreBulkhead> {
        let mut map = self.lock();
        if let Some(b) = map.get(name) {
            return Ok(b.clone());
        }
        if map.len() >= self.capacity {
            return Err(Error::RegistryFull {
                capacity: self.capacity,
            });
        }
        let name: Arc<str> = name.into();
        let b = SemaphoreBulkhead::new(name.clone(), config)?;
        map.insert(name, b.clone());
        Ok(b)
    }

    /// The bulkhead for one partition of `name` (named `"{name}/{partition}"`), created with
    /// the default configuration if absent.
    ///
    /// # Errors
    /// As [`BulkheadRegistry::get_or_create`].
    pub fn partition(&self, name: &str, partition: &dyn fmt::Display) -> Result<SemaphoreBulkhead> {
        self.get_or_create(&format!("{name}/{partition}"))
    }

    /// The bulkhead named `name`, if present.
    pub fn get(&self, name: &str) -> Option<SemaphoreBulkhead> {
        self.lock().get(name).cloned()
    }

    /// Removes `name` from the registry. Holders of the bulkhead keep using it; the next
    /// `get_or_create` makes a new one.
    pub fn remove(&self, name: &str) -> Option<SemaphoreBulkhead> {
        self.lock().remove(name)
    }

    /// Number of bulkheads held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names held, sorted.
    pub fn names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }

    /// Every bulkhead's metrics, sorted by name.
    pub fn metrics(&self) -> Vec<(Arc<str>, BulkheadMetrics)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(n, b)| (n.clone(), b.metrics()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

impl fmt::Debug for BulkheadRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadRegistry")
            .field("default", &self.default)
            .field("capacity", &self.capacity)
            .field("names", &self.names())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn same_name_same_bulkhead_and_bounded() {
        let r = BulkheadRegistry::with_capacity(BulkheadConfig::reject(1), 2).unwrap();
        let a = r.get_or_create("a").unwrap();
        let _p = a.try_acquire().unwrap();
        let err = r.get_or_create("a").unwrap().try_acquire().unwrap_err();
        assert_eq!(err.bulkhead_name(), Some("a"));
        r.get_or_create_with("b", BulkheadConfig::reject(5))
            .unwrap();
        assert_eq!(r.get("b").unwrap().config().max_concurrent, 5);
        assert_eq!(
            r.get_or_create("c").unwrap_err(),
            Error::RegistryFull { capacity: 2 }
        );
        assert_eq!(r.names(), vec![Arc::<str>::from("a"), Arc::from("b")]);
        assert!(r.remove("b").is_some());
        r.get_or_create("c").unwrap();
        assert_eq!(r.metrics().len(), 2);
    }

    #[test]
    fn partitions_are_isolated() {
        let r = BulkheadRegistry::new(BulkheadConfig::reject(1)).unwrap();
        let t1 = r.partition("db", &1).unwrap();
        let t2 = r.partition("db", &2).unwrap();
        let _p = t1.try_acquire().unwrap();
        assert!(t1.try_acquire().is_err());
        assert!(t2.try_acquire().is_ok());
        assert!(BulkheadRegistry::with_capacity(BulkheadConfig::reject(1), 0).is_err());
        assert!(
            r.get_or_create_with("bad", BulkheadConfig::reject(0))
                .is_err()
        );
    }
}
