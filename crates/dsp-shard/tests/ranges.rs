//! Property tests for key-range partitions: coverage, lookup and scan planning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dsp_core::NodeId;
use dsp_shard::{KeyRanges, Placement};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0u8..4, 0..4)
}

proptest! {
    #[test]
    fn splits_and_merges_keep_ranges_contiguous(
        ops in proptest::collection::vec((any::<bool>(), key(), 0usize..8), 0..40),
        probes in proptest::collection::vec(key(), 1..20),
        scan in (key(), key()),
    ) {
        let mut ranges = KeyRanges::new(vec![NodeId(1)]).unwrap();
        for (split, at, which) in ops {
            if split {
                let existed = ranges.ranges().iter().any(|r| r.start == at);
                prop_assert_eq!(ranges.split(&at).is_err(), existed || at.is_empty());
            } else {
                let all = ranges.ranges();
                let target = &all[which % all.len()];
                let last = target.end.is_none();
                prop_assert_eq!(ranges.merge(target.id).is_err(), last);
            }
        }
        // Contiguous cover of the whole key space.
        let all = ranges.ranges();
        prop_assert_eq!(all.len(), ranges.len());
        prop_assert!(all[0].start.is_empty());
        prop_assert!(all.last().unwrap().end.is_none());
        for pair in all.windows(2) {
            prop_assert_eq!(pair[0].end.as_ref(), Some(&pair[1].start));
        }
        // Every key is in exactly the range lookup returns.
        for k in &probes {
            let r = ranges.lookup(k);
            prop_assert!(r.contains(k));
            prop_assert_eq!(all.iter().filter(|x| x.contains(k)).count(), 1);
            prop_assert_eq!(ranges.owner(k).unwrap(), NodeId(1));
        }
        // A scan plan tiles [a, b) exactly, in order, each span inside its range.
        let (a, b) = scan;
        match ranges.plan_scan(&a, &b) {
            Err(_) => prop_assert!(a >= b),
            Ok(plan) => {
                prop_assert!(a < b);
                prop_assert_eq!(&plan[0].start, &a);
                prop_assert_eq!(&plan.last().unwrap().end, &b);
                for pair in plan.windows(2) {
                    prop_assert_eq!(&pair[0].end, &pair[1].start);
                }
                for span in &plan {
                    prop_assert!(span.start < span.end);
                    let r = ranges.get(span.range).unwrap();
                    prop_assert!(r.contains(&span.start));
                    prop_assert!(r.end.as_ref().is_none_or(|e| &span.end <= e));
                }
            }
        }
    }
}
