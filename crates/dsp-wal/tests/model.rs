//! Property test: any sequence of append / append_batch / truncate_prefix / truncate_suffix /
//! reopen matches a simple in-memory model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;

use dsp_wal::{Durability, Error, Wal, WalConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(usize, u8),
    AppendBatch(Vec<usize>, u8),
    /// Low-water mark as an offset from the first index.
    TruncatePrefix(u64),
    /// Kept records as an offset from `first_index - 1` (may be beyond the end).
    TruncateSuffix(u64),
    /// Index below `first_index - 1`: must be rejected.
    TruncateSuffixBelow,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..700, any::<u8>()).prop_map(|(l, b)| Op::Append(l, b)),
        2 => (proptest::collection::vec(0usize..300, 0..6), any::<u8>())
            .prop_map(|(l, b)| Op::AppendBatch(l, b)),
        1 => (0u64..60).prop_map(Op::TruncatePrefix),
        1 => (0u64..60).prop_map(Op::TruncateSuffix),
        1 => Just(Op::TruncateSuffixBelow),
        1 => Just(Op::Reopen),
    ]
}

fn config() -> WalConfig {
    WalConfig::default()
        .segment_size(4096)
        .durability(Durability::Never)
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

/// The model: the first index and the records from there.
struct Model {
    first: u64,
    records: VecDeque<Vec<u8>>,
}

impl Model {
    fn next(&self) -> u64 {
        self.first + self.records.len() as u64
    }
}

fn check(wal: &Wal, model: &Model) {
    assert_eq!(wal.first_index(), model.first);
    let last = (!model.records.is_empty()).then(|| model.next() - 1);
    assert_eq!(wal.last_index(), last);
    let got: Vec<(u64, Vec<u8>)> = wal
        .iter_from(0)
        .map(|r| r.map(|(i, b)| (i, b.to_vec())).unwrap())
        .collect();
    let want: Vec<(u64, Vec<u8>)> = model
        .records
        .iter()
        .enumerate()
        .map(|(i, b)| (model.first + i as u64, b.clone()))
        .collect();
    assert_eq!(got, want);
    if let Some(last) = last {
        assert_eq!(
            wal.read(last).unwrap().unwrap().as_ref(),
            model.records.back().unwrap().as_slice()
        );
    }
    assert!(wal.read(model.next()).unwrap().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn wal_matches_an_in_memory_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), config()).unwrap();
        let mut model = Model { first: 1, records: VecDeque::new() };
        for op in ops {
            match op {
                Op::Append(len, seed) => {
                    let data = bytes(len, seed);
                    prop_assert_eq!(wal.append(&data).unwrap(), model.next());
                    model.records.push_back(data);
                }
                Op::AppendBatch(lens, seed) => {
                    let batch: Vec<Vec<u8>> = lens.iter().map(|&l| bytes(l, seed)).collect();
                    let range = wal.append_batch(&batch).unwrap();
                    prop_assert_eq!(range, model.next()..model.next() + batch.len() as u64);
                    model.records.extend(batch);
                }
                Op::TruncatePrefix(offset) => {
                    let lwm = model.first + offset;
                    let first = wal.truncate_prefix(lwm).unwrap();
                    // whole segments only: never past the mark (nor past the last segment)
                    prop_assert!(first >= model.first);
                    prop_assert!(first <= lwm.max(model.first));
                    prop_assert!(first <= model.next());
                    while model.first < first {
                        model.records.pop_front();
                        model.first += 1;
                    }
                }
                Op::TruncateSuffix(keep) => {
                    let index = model.first - 1 + keep;
                    wal.truncate_suffix(index).unwrap();
                    model.records.truncate(keep.min(model.records.len() as u64) as usize);
                }
                Op::TruncateSuffixBelow => {
                    if model.first >= 2 {
                        let res = wal.truncate_suffix(model.first - 2);
                        let rejected = matches!(res, Err(Error::IndexBelowFirst { .. }));
                        prop_assert!(rejected, "expected IndexBelowFirst, got {:?}", res);
                    }
                }
                Op::Reopen => {
                    drop(wal);
                    let (reopened, report) = Wal::open(dir.path(), config()).unwrap();
                    prop_assert!(report.torn_tail.is_none());
                    prop_assert_eq!(report.first_index, model.first);
                    prop_assert_eq!(report.next_index, model.next());
                    wal = reopened;
                }
            }
            check(&wal, &model);
        }
    }
}
