//! Property tests for the laws of the clocks and version vectors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dsp_clock::{
    Causality, HlcConfig, HlcTimestamp, HybridClock, LamportClock, Siblings, VersionVector,
    VersionedStore,
};
use dsp_core::{ManualClock, NodeId, WallTime};
use proptest::prelude::*;

fn vv_strategy() -> impl Strategy<Value = VersionVector> {
    proptest::collection::vec((0u64..5, 0u64..6), 0..6)
        .prop_map(|entries| entries.into_iter().map(|(n, c)| (NodeId(n), c)).collect())
}

proptest! {
    #[test]
    fn vv_merge_is_commutative(a in vv_strategy(), b in vv_strategy()) {
        prop_assert_eq!(a.merged(&b), b.merged(&a));
    }

    #[test]
    fn vv_merge_is_associative(a in vv_strategy(), b in vv_strategy(), c in vv_strategy()) {
        prop_assert_eq!(a.merged(&b).merged(&c), a.merged(&b.merged(&c)));
    }

    #[test]
    fn vv_merge_is_idempotent(a in vv_strategy(), b in vv_strategy()) {
        prop_assert_eq!(a.merged(&a), a.clone());
        let ab = a.merged(&b);
        prop_assert_eq!(ab.merged(&b), ab);
    }

    #[test]
    fn vv_compare_is_consistent_with_merge(a in vv_strategy(), b in vv_strategy()) {
        let m = a.merged(&b);
        let c = a.compare(&b);
        // a <= b exactly when merging a into b changes nothing.
        prop_assert_eq!(matches!(c, Causality::Before | Causality::Equal), m == b);
        prop_assert_eq!(matches!(c, Causality::After | Causality::Equal), m == a);
        prop_assert_eq!(c == Causality::Equal, a == b);
        // The merge is an upper bound of both.
        prop_assert!(matches!(a.compare(&m), Causality::Before | Causality::Equal));
        prop_assert!(matches!(b.compare(&m), Causality::Before | Causality::Equal));
        // compare is antisymmetric.
        let flipped = match b.compare(&a) {
            Causality::Before => Causality::After,
            Causality::After => Causality::Before,
            other => other,
        };
        prop_assert_eq!(c, flipped);
    }

    #[test]
    fn hlc_never_goes_backwards_and_exceeds_everything_observed(
        ops in proptest::collection::vec((any::<bool>(), 0u64..5_000, 0u64..5_000, any::<u16>()), 1..200)
    ) {
        let config = HlcConfig::with_max_drift(Duration::from_millis(1_000));
        let mut hlc = HybridClock::new(ManualClock::new(), config).unwrap();
        let mut high = HlcTimestamp::ZERO; // highest issued or accepted
        for (is_update, wall_ms, remote_ms, logical) in ops {
            let wall = WallTime::from_unix_nanos(wall_ms * 1_000_000);
            if is_update {
                let remote = HlcTimestamp::from_parts(remote_ms, logical).unwrap();
                match hlc.update_at(wall, remote) {
                    Ok(t) => {
                        prop_assert!(t > high && t > remote);
                        high = t;
                    }
                    Err(_) => {
                        prop_assert!(remote_ms > wall_ms + 1_000);
                        prop_assert_eq!(hlc.last(), high);
                    }
                }
            } else {
                let t = hlc.now_at(wall);
                prop_assert!(t > high);
                prop_assert!(t.physical_ms() >= wall_ms);
                high = t;
            }
        }
    }

    #[test]
    fn hlc_decoding_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..16), packed in any::<u64>()) {
        match HlcTimestamp::from_bytes(&bytes) {
            Ok(t) => {
                prop_assert_eq!(bytes.len(), 8);
                prop_assert_eq!(t.to_bytes().to_vec(), bytes);
            }
            Err(_) => prop_assert_ne!(bytes.len(), 8),
        }
        let t = HlcTimestamp::from_u64(packed);
        prop_assert_eq!(HlcTimestamp::from_u64(t.to_u64()), t);
        prop_assert_eq!(HlcTimestamp::from_bytes(&t.to_bytes()).unwrap(), t);
        prop_assert_eq!(HlcTimestamp::from_parts(t.physical_ms(), t.logical()).unwrap(), t);
    }

    #[test]
    fn hlc_byte_order_is_timestamp_order(a in any::<u64>(), b in any::<u64>()) {
        let (ta, tb) = (HlcTimestamp::from_u64(a), HlcTimestamp::from_u64(b));
        prop_assert_eq!(ta.cmp(&tb), ta.to_bytes().cmp(&tb.to_bytes()));
    }

    /// Random runs of local, send and receive events on 3 nodes: whenever event a happened
    /// before event b (by vector clocks), a's Lamport timestamp is smaller.
    #[test]
    fn lamport_respects_happens_before(
        script in proptest::collection::vec((0usize..3, 0usize..3, any::<bool>()), 1..60)
    ) {
        let mut clocks: Vec<LamportClock> = (0..3).map(|i| LamportClock::new(NodeId(i))).collect();
        let mut vvs: Vec<VersionVector> = vec![VersionVector::new(); 3];
        let mut in_flight: Vec<(usize, u64, VersionVector)> = Vec::new();
        let mut events = Vec::new();
        for (node, other, send) in script {
            if send || in_flight.is_empty() {
                let ts = clocks[node].tick().unwrap();
                vvs[node].increment(NodeId(node as u64)).unwrap();
                events.push((ts, vvs[node].clone()));
                if send && node != other {
                    in_flight.push((other, ts.time, vvs[node].clone()));
                }
            } else {
                let (to, time, vv) = in_flight.remove(other % in_flight.len());
                let ts = clocks[to].observe(time).unwrap();
                vvs[to].merge(&vv);
                vvs[to].increment(NodeId(to as u64)).unwrap();
                events.push((ts, vvs[to].clone()));
            }
        }
        for (ta, va) in &events {
            for (tb, vb) in &events {
                if va.compare(vb) == Causality::Before {
                    prop_assert!(ta < tb, "{ta} happened before {tb}");
                }
            }
        }
    }

    /// Two replicas receiving random writes converge after syncing both ways, and sync is
    /// idempotent.
    #[test]
    fn siblings_sync_converges(
        writes in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u32..100), 1..20)
    ) {
        let mut a: Siblings<u32> = Siblings::new();
        let mut b: Siblings<u32> = Siblings::new();
        for (to_a, fresh_context, value) in writes {
            let (replica, node) = if to_a { (&mut a, NodeId(1)) } else { (&mut b, NodeId(2)) };
            let context = if fresh_context { replica.context().clone() } else { VersionVector::new() };
            replica.write(&context, value, node).unwrap();
        }
        let ab = a.synced(&b);
        let ba = b.synced(&a);
        let mut va: Vec<_> = ab.iter().map(|(d, v)| (d, *v)).collect();
        let mut vb: Vec<_> = ba.iter().map(|(d, v)| (d, *v)).collect();
        va.sort();
        vb.sort();
        prop_assert_eq!(va, vb);
        prop_assert_eq!(ab.context(), ba.context());
        prop_assert_eq!(ab.synced(&b), ab.clone());
        prop_assert_eq!(ab.synced(&ab), ab.clone());
    }

    /// The versioned store answers reads at any version like a naive model, before and after gc.
    #[test]
    fn versioned_store_matches_model(
        ops in proptest::collection::vec((0u8..4, 0u64..50, proptest::option::of(0u32..100)), 0..60),
        watermark in 0u64..50,
        probes in proptest::collection::vec((0u8..4, 0u64..60), 1..30),
    ) {
        let mut store = VersionedStore::new();
        let mut model: Vec<(u8, u64, Option<u32>)> = Vec::new();
        for (key, version, value) in ops {
            let result = match value {
                Some(v) => store.put(key, version, v),
                None => store.delete(key, version),
            };
            let dup = model.iter().any(|(k, ver, _)| *k == key && *ver == version);
            prop_assert_eq!(result.is_err(), dup);
            if !dup {
                model.push((key, version, value));
            }
        }
        let expect = |key: u8, at: u64| {
            model
                .iter()
                .filter(|(k, v, _)| *k == key && *v <= at)
                .max_by_key(|(_, v, _)| *v)
                .and_then(|(_, _, value)| *value)
        };
        for &(key, at) in &probes {
            prop_assert_eq!(store.get_at(&key, at).unwrap().copied(), expect(key, at));
        }
        store.gc(watermark);
        for &(key, at) in &probes {
            if at >= watermark {
                prop_assert_eq!(store.get_at(&key, at).unwrap().copied(), expect(key, at));
            } else {
                prop_assert!(store.get_at(&key, at).is_err());
            }
        }
    }
}
