//! Property test: any sequence of acquires and releases keeps `available + held == max`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dsp_bulkhead::{BulkheadConfig, Error, SemaphoreBulkhead};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn available_plus_held_is_always_max(
        max in 1usize..6,
        ops in prop::collection::vec(0u8..3, 0..200),
    ) {
        let b = SemaphoreBulkhead::new("prop", BulkheadConfig::reject(max)).unwrap();
        let mut held = Vec::new();
        let mut rejected = 0u64;
        for op in ops {
            match op {
                0 | 1 => match b.try_acquire_owned() {
                    Ok(p) => held.push(p),
                    Err(Error::BulkheadFull { max_concurrent, .. }) => {
                        prop_assert_eq!(max_concurrent, max);
                        prop_assert_eq!(held.len(), max);
                        rejected += 1;
                    }
                    Err(e) => panic!("unexpected {e}"),
                },
                _ => {
                    held.pop();
                }
            }
            let m = b.metrics();
            prop_assert_eq!(m.available_permits + held.len(), max);
            prop_assert_eq!(m.in_flight, held.len());
            prop_assert_eq!(m.rejected, rejected);
        }
        held.clear();
        prop_assert_eq!(b.available_permits(), max);
    }
}
