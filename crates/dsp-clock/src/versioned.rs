//! A versioned value store (Fowler's "Versioned Value"): every write is kept under its version.
//!
//! Versions are any ordered, copyable type: a `u64` counter, an [`HlcTimestamp`](crate::HlcTimestamp),
//! a [`LamportTimestamp`](crate::LamportTimestamp). Reads at a version see the newest write at or
//! below it, so a reader holding a snapshot version gets a consistent view while writers move on.
//! [`VersionedStore::gc`] drops history below a watermark (the oldest snapshot still in use).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::{Error, Result};

/// An in-memory multi-version map.
///
/// ```
/// use dsp_clock::VersionedStore;
///
/// let mut store = VersionedStore::new();
/// store.put("k", 10, "a")?;
/// store.put("k", 20, "b")?;
/// assert_eq!(store.get_at(&"k", 15)?, Some(&"a"));
/// assert_eq!(store.get_latest(&"k"), Some((20, &"b")));
/// store.delete("k", 30)?;
/// assert_eq!(store.get_latest(&"k"), None);
/// assert_eq!(store.get_at(&"k", 25)?, Some(&"b"));
///
/// store.gc(25); // keep what a read at 25 needs, drop older history
/// assert_eq!(store.versions(&"k").count(), 2);
/// assert!(store.get_at(&"k", 15).is_err()); // below the watermark
/// # Ok::<(), dsp_clock::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct VersionedStore<K, V, Ver = u64> {
    entries: BTreeMap<K, BTreeMap<Ver, Option<V>>>,
    watermark: Option<Ver>,
}

impl<K, V, Ver> Default for VersionedStore<K, V, Ver> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            watermark: None,
        }
    }
}

impl<K: Ord, V, Ver: Ord + Copy> VersionedStore<K, V, Ver> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_watermark(&self, version: Ver) -> Result<()> {
        match self.watermark {
            Some(w) if version < w => Err(Error::BelowWatermark),
            _ => Ok(()),
        }
    }

    fn insert(&mut self, key: K, version: Ver, value: Option<V>) -> Result<()> {
        self.check_watermark(version)?;
        let versions = self.entries.entry(key).or_default();
        if versions.contains_key(&version) {
            return Err(Error::DuplicateVersion);
        }
        versions.insert(version, value);
        Ok(())
    }

    /// Writes `value` for `key` at `version`. Versions may arrive out of order.
    ///
    /// # Errors
    /// [`Error::DuplicateVersion`] if `key` already has an entry at `version`;
    /// [`Error::BelowWatermark`] if `version` is below the gc watermark. Nothing changed.
    pub fn put(&mut self, key: K, version: Ver, value: V) -> Result<()> {
        self.insert(key, version, Some(value))
    }

    /// Deletes `key` as of `version` (a tombstone; earlier versions stay readable).
    ///
    /// # Errors
    /// As [`VersionedStore::put`].
    pub fn delete(&mut self, key: K, version: Ver) -> Result<()> {
        self.insert(key, version, None)
    }

    /// The value of `key` as of `version`: the newest write at or below it (`None` if there is
    /// none or it is a delete).
    ///
    /// # Errors
    /// [`Error::BelowWatermark`] if `version` is below the gc watermark.
    pub fn get_at(&self, key: &K, version: Ver) -> Result<Option<&V>> {
        self.check_watermark(version)?;
        Ok(self
            .entries
            .get(key)
            .and_then(|vs| vs.range(..=version).next_back())
            .and_then(|(_, v)| v.as_ref()))
    }

    /// The newest version of `key` and its value (`None` if absent or deleted).
    pub fn get_latest(&self, key: &K) -> Option<(Ver, &V)> {
        let (version, value) = self.entries.get(key)?.iter().next_back()?;
        value.as_ref().map(|v| (*version, v))
    }

    /// Every kept version of `key`, oldest first; `None` marks a delete.
    pub fn versions(&self, key: &K) -> impl DoubleEndedIterator<Item = (Ver, Option<&V>)> + '_ {
        self.entries
            .get(key)
            .into_iter()
            .flat_map(|vs| vs.iter().map(|(k, v)| (*k, v.as_ref())))
    }

    /// The keys that have a live value as of `version`, with those values, in key order.
    ///
    /// # Errors
    /// [`Error::BelowWatermark`] if `version` is below the gc watermark.
    pub fn snapshot_at(&self, version: Ver) -> Result<Vec<(&K, &V)>> {
        self.check_watermark(version)?;
        Ok(self
            .entries
            .iter()
            .filter_map(|(k, vs)| {
                vs.range(..=version)
                    .next_back()
                    .and_then(|(_, v)| v.as_ref())
                    .map(|v| (k, v))
            })
            .collect())
    }

    /// Drops history that no read at or above `watermark` can see: for each key, every version
    /// below the newest one at or below `watermark`, and that one too if it is a delete.
    /// Afterwards reads below the watermark fail with [`Error::BelowWatermark`]. A lower
    /// watermark than the current one is ignored. Returns the number of versions removed.
    pub fn gc(&mut self, watermark: Ver) -> usize {
        if self.watermark.is_some_and(|w| watermark <= w) {
            return 0;
        }
        self.watermark = Some(watermark);
        let mut removed = 0;
        self.entries.retain(|_, versions| {
            // The newest version at or below the watermark is what reads at the watermark see.
            let floor = versions
                .range(..=watermark)
                .next_back()
                .map(|(v, value)| (*v, value.is_none()));
            if let Some((floor, is_tombstone)) = floor {
                let keep = versions.split_off(&floor);
                removed += versions.len();
                *versions = keep;
                if is_tombstone {
                    versions.remove(&floor);
                    removed += 1;
                }
            }
            !versions.is_empty()
        });
        removed
    }

    /// The garbage-collection watermark, if [`VersionedStore::gc`] has run.
    pub fn watermark(&self) -> Option<Ver> {
        self.watermark
    }

    /// The number of keys with at least one kept version.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store keeps no version of any key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The total number of kept versions across keys.
    pub fn version_count(&self) -> usize {
        self.entries.values().map(BTreeMap::len).sum()
    }

    /// Keys in `[start, end)` with their values as of `version`.
    ///
    /// # Errors
    /// [`Error::BelowWatermark`] if `version` is below the gc watermark.
    pub fn range_at(&self, start: &K, end: &K, version: Ver) -> Result<Vec<(&K, &V)>> {
        self.check_watermark(version)?;
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range((Bound::Included(start), Bound::Excluded(end)))
            .filter_map(|(k, vs)| {
                vs.range(..=version)
                    .next_back()
                    .and_then(|(_, v)| v.as_ref())
                    .map(|v| (k, v))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_see_newest_write_at_or_below_version() {
        let mut s = VersionedStore::new();
        s.put(1, 20, "b").unwrap();
        s.put(1, 10, "a").unwrap(); // out of order is fine
        assert_eq!(s.get_at(&1, 5).unwrap(), None);
        assert_eq!(s.get_at(&1, 10).unwrap(), Some(&"a"));
        assert_eq!(s.get_at(&1, 19).unwrap(), Some(&"a"));
        assert_eq!(s.get_at(&1, 99).unwrap(), Some(&"b"));
        let versions: Vec<_> = s.versions(&1).collect();
        assert_eq!(versions, vec![(10, Some(&"a")), (20, Some(&"b"))]);
    }

    #[test]
    fn duplicate_version_is_rejected() {
        let mut s = VersionedStore::new();
        s.put("k", 1, 1).unwrap();
        assert!(matches!(s.put("k", 1, 2), Err(Error::DuplicateVersion)));
        assert_eq!(s.get_latest(&"k"), Some((1, &1)));
    }

    #[test]
    fn gc_keeps_what_reads_at_watermark_need() {
        let mut s = VersionedStore::new();
        for v in [1, 2, 3, 7] {
            s.put("a", v, v * 10).unwrap();
        }
        s.put("b", 1, 1).unwrap();
        s.delete("b", 2).unwrap();
        s.put("c", 9, 9).unwrap();
        let removed = s.gc(5);
        // a: drops 1, 2 (keeps 3 for reads at 5, and 7); b: drops both; c: untouched.
        assert_eq!(removed, 4);
        assert_eq!(s.get_at(&"a", 5).unwrap(), Some(&30));
        assert_eq!(s.get_at(&"b", 5).unwrap(), None);
        assert_eq!(s.len(), 2);
        assert!(matches!(s.get_at(&"a", 4), Err(Error::BelowWatermark)));
        assert!(matches!(s.put("a", 4, 0), Err(Error::BelowWatermark)));
        assert_eq!(s.gc(3), 0, "a lower watermark is ignored");
        assert_eq!(s.watermark(), Some(5));
    }

    #[test]
    fn snapshot_and_range_at_version() {
        let mut s = VersionedStore::new();
        s.put("a", 1, 1).unwrap();
        s.put("b", 2, 2).unwrap();
        s.put("c", 3, 3).unwrap();
        s.delete("a", 4).unwrap();
        assert_eq!(s.snapshot_at(2).unwrap(), vec![(&"a", &1), (&"b", &2)]);
        assert_eq!(s.range_at(&"a", &"c", 9).unwrap(), vec![(&"b", &2)]);
        assert!(s.range_at(&"c", &"a", 9).unwrap().is_empty());
        assert_eq!(s.version_count(), 4);
    }
}
