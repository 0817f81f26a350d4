//! The idempotent receiver's table: which `(client, seq)` requests were seen, and their answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use dsp_core::Instant;

/// What an [`IdempotencyTable`] knows about a `(client, seq)` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen<V> {
    /// Never seen (or forgotten with its whole client): execute it.
    Fresh,
    /// Being executed now: do not execute it again; the answer will follow.
    InProgress,
    /// Executed; this is the answer to send again.
    Done(V),
    /// Older than anything the table still remembers for this client: it may or may not have
    /// run, so it must not run again; answer "expired".
    Expired,
}

#[derive(Debug)]
struct ClientEntry<V> {
    last_seen: Instant,
    /// Every seq below `floor` has been forgotten.
    floor: u64,
    done: BTreeMap<u64, V>,
    running: BTreeSet<u64>,
}

/// A bounded table of recent client requests and their answers, with expiry: the core of an
/// idempotent receiver.
///
/// Each client keeps at most `per_client` completed answers (the lowest sequence numbers are
/// forgotten first, and everything below them reports [`Seen::Expired`]); at most `max_clients`
/// clients are kept (the one seen longest ago is forgotten first), and a client silent for `ttl`
/// is forgotten. A forgotten client's requests are [`Seen::Fresh`] again: that is the bound of the
/// guarantee, so `ttl` must exceed the longest time a client keeps retrying.
#[derive(Debug)]
pub struct IdempotencyTable<V> {
    clients: HashMap<u64, ClientEntry<V>>,
    max_clients: usize,
    per_client: usize,
    ttl: Duration,
    last_sweep: Instant,
}

impl<V: Clone> IdempotencyTable<V> {
    /// An empty table with these bounds (each at least 1).
    pub fn new(max_clients: usize, per_client: usize, ttl: Duration) -> Self {
        Self {
            clients: HashMap::new(),
            max_clients: max_clients.max(1),
            per_client: per_client.max(1),
            ttl,
            last_sweep: Instant::ZERO,
        }
    }

    /// The number of clients remembered.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Looks up a request arriving at `now`; a [`Seen::Fresh`] request is recorded as running.
    pub fn check(&mut self, client: u64, seq: u64, now: Instant) -> Seen<V> {
        self.sweep(now);
        if !self.clients.contains_key(&client) && self.clients.len() >= self.max_clients {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(&c, _)| c);
            if let Some(c) = oldest {
                self.clients.remove(&c);
            }
        }
        let e = self.clients.entry(client).or_insert_with(|| ClientEntry {
            last_seen: now,
            floor: 0,
            done: BTreeMap::new(),
            running: BTreeSet::new(),
        });
        e.last_seen = e.last_seen.max(now);
        if seq < e.floor {
            return Seen::Expired;
        }
        if let Some(v) = e.done.get(&seq) {
            return Seen::Done(v.clone());
        }
        if !e.running.insert(seq) {
            return Seen::InProgress;
        }
        Seen::Fresh
    }

    /// Records the answer to a running request.
    pub fn complete(&mut self, client: u64, seq: u64, answer: V, now: Instant) {
        let Some(e) = self.clients.get_mut(&client) else {
            return;
        };
        if !e.running.remove(&seq) {
            return;
        }
        e.last_seen = e.last_seen.max(now);
        e.done.insert(seq, answer);
        while e.done.len() > self.per_client {
            if let Some((old, _)) = e.done.pop_first() {
                e.floor = e.floor.max(old + 1);
            }
        }
    }

    /// Forgets a running request that will never complete (the node lost it), so a retry runs.
    pub fn abandon(&mut self, client: u64, seq: u64) {
        if let Some(e) = self.clients.get_mut(&client) {
            e.running.remove(&seq);
        }
    }

    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < self.ttl / 4 {
            return;
        }
        self.last_sweep = now;
        let ttl = self.ttl;
        self.clients.retain(|_, e| {
            !e.running.is_empty() || now.saturating_duration_since(e.last_seen) < ttl
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::ZERO;

    #[test]
    fn duplicate_is_answered_from_the_table() {
        let mut t = IdempotencyTable::new(8, 4, Duration::from_secs(10));
        assert_eq!(t.check(1, 5, T0), Seen::Fresh);
        assert_eq!(t.check(1, 5, T0), Seen::InProgress);
        t.complete(1, 5, "five", T0);
        assert_eq!(t.check(1, 5, T0), Seen::Done("five"));
        assert_eq!(t.check(2, 5, T0), Seen::Fresh, "clients are independent");
    }

    #[test]
    fn old_sequence_numbers_expire_per_client() {
        let mut t = IdempotencyTable::new(8, 2, Duration::from_secs(10));
        for seq in 0..4 {
            assert_eq!(t.check(1, seq, T0), Seen::Fresh);
            t.complete(1, seq, seq, T0);
        }
        assert_eq!(t.check(1, 0, T0), Seen::Expired);
        assert_eq!(t.check(1, 1, T0), Seen::Expired);
        assert_eq!(t.check(1, 3, T0), Seen::Done(3));
    }

    #[test]
    fn silent_clients_are_forgotten_after_ttl_and_oldest_evicted_when_full() {
        let mut t = IdempotencyTable::new(2, 4, Duration::from_secs(10));
        assert_eq!(t.check(1, 0, T0), Seen::Fresh);
        t.complete(1, 0, 0, T0);
        let later = T0 + Duration::from_secs(11);
        assert_eq!(t.check(2, 0, later), Seen::Fresh);
        assert_eq!(t.clients(), 1, "client 1 expired");
        t.complete(2, 0, 0, later);
        assert_eq!(t.check(3, 0, later), Seen::Fresh);
        assert_eq!(t.check(4, 0, later + Duration::from_secs(1)), Seen::Fresh);
        assert_eq!(t.clients(), 2);
    }

    #[test]
    fn abandoned_request_can_run_again() {
        let mut t = IdempotencyTable::<u8>::new(2, 4, Duration::from_secs(10));
        assert_eq!(t.check(1, 0, T0), Seen::Fresh);
        t.abandon(1, 0);
        assert_eq!(t.check(1, 0, T0), Seen::Fresh);
    }
}
