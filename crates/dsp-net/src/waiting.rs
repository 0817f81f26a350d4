//! The request waiting list: pending requests keyed by id, with deadlines.

use std::collections::{BTreeMap, BTreeSet};

use dsp_core::Instant;

/// Requests waiting for responses: each has a key (the request id), a deadline and a waiter
/// (typically a `oneshot::Sender`).
///
/// A response [`take`](Self::take)s its waiter by key; [`expire`](Self::expire) removes those
/// past their deadline; [`drain`](Self::drain) removes all of them when the connection dies, so
/// nothing waits forever.
#[derive(Debug)]
pub struct WaitingList<K: Ord + Copy, W> {
    entries: BTreeMap<K, (Instant, W)>,
    by_deadline: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Copy, W> Default for WaitingList<K, W> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy, W> WaitingList<K, W> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a waiter; returns the one it replaces, if the key was already waiting.
    pub fn insert(&mut self, key: K, deadline: Instant, waiter: W) -> Option<W> {
        let old = self.entries.insert(key, (deadline, waiter));
        if let Some((d, _)) = &old {
            self.by_deadline.remove(&(*d, key));
        }
        self.by_deadline.insert((deadline, key));
        old.map(|(_, w)| w)
    }

    /// Removes and returns the waiter for `key` (a response arrived).
    pub fn take(&mut self, key: K) -> Option<W> {
        let (d, w) = self.entries.remove(&key)?;
        self.by_deadline.remove(&(d, key));
        Some(w)
    }

    /// Removes and returns every waiter whose deadline is at or before `now`, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<(K, W)> {
        let mut out = Vec::new();
        while let Some(&(d, k)) = self.by_deadline.first() {
            if d > now {
                break;
            }
            self.by_deadline.pop_first();
            if let Some((_, w)) = self.entries.remove(&k) {
                out.push((k, w));
            }
        }
        out
    }

    /// The earliest deadline, if anything is waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|&(d, _)| d)
    }

    /// Removes and returns every waiter (the connection died).
    pub fn drain(&mut self) -> Vec<(K, W)> {
        self.by_deadline.clear();
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(k, (_, w))| (k, w))
            .collect()
    }

    /// The number of waiters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_timeouts_and_drain() {
        let mut w = WaitingList::new();
        w.insert(1u64, Instant::from_millis(30), "a");
        w.insert(2, Instant::from_millis(10), "b");
        w.insert(3, Instant::from_millis(20), "c");
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(10)));
        assert_eq!(w.take(3), Some("c"));
        assert_eq!(w.take(3), None, "a response is matched once");
        assert_eq!(w.expire(Instant::from_millis(15)), vec![(2, "b")]);
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(30)));
        w.insert(4, Instant::from_millis(99), "d");
        let mut all = w.drain();
        all.sort();
        assert_eq!(all, vec![(1, "a"), (4, "d")]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn reinserting_a_key_moves_its_deadline() {
        let mut w = WaitingList::new();
        w.insert(1u64, Instant::from_millis(10), 'x');
        assert_eq!(w.insert(1, Instant::from_millis(50), 'y'), Some('x'));
        assert!(w.expire(Instant::from_millis(20)).is_empty());
        assert_eq!(w.expire(Instant::from_millis(50)), vec![(1, 'y')]);
    }
}
