//! Behaviour of the public API: append, read, iterate, roll, truncate, reopen, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use dsp_wal::{Durability, Error, Wal, WalConfig};

fn small() -> WalConfig {
    WalConfig::default().segment_size(4096)
}

fn record(i: u64) -> Vec<u8> {
    let len = (i * 37 % 300) as usize;
    (0..len).map(|j| (i as usize + j) as u8).collect()
}

#[test]
fn appends_get_dense_indexes_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert!(report.created);
    assert_eq!(wal.first_index(), 1);
    assert_eq!(wal.last_index(), None);
    for i in 1..=100 {
        assert_eq!(wal.append(&record(i)).unwrap(), i);
    }
    assert_eq!(wal.last_index(), Some(100));
    for i in 1..=100 {
        assert_eq!(wal.read(i).unwrap().unwrap().as_ref(), record(i).as_slice());
    }
    assert!(wal.read(0).unwrap().is_none());
    assert!(wal.read(101).unwrap().is_none());
    assert!(wal.segment_count() > 1, "4 KiB segments must have rolled");
    let all: Vec<_> = wal.iter_from(0).map(Result::unwrap).collect();
    assert_eq!(all.len(), 100);
    for (i, (index, bytes)) in all.iter().enumerate() {
        assert_eq!(*index, i as u64 + 1);
        assert_eq!(bytes.as_ref(), record(*index).as_slice());
    }
    let from_50: Vec<_> = wal.iter_from(50).map(|r| r.unwrap().0).collect();
    assert_eq!(from_50, (50..=100).collect::<Vec<_>>());
}

#[test]
fn reopen_recovers_everything_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(dir.path(), small()).unwrap();
        let range = wal
            .append_batch(&(1..=200).map(record).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(range, 1..201);
    }
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert!(!report.created);
    assert_eq!(report.records, 200);
    assert_eq!(report.first_index, 1);
    assert_eq!(report.next_index, 201);
    assert!(report.torn_tail.is_none());
    assert_eq!(report.segments, wal.segment_count());
    for i in 1..=200 {
        assert_eq!(wal.read(i).unwrap().unwrap().as_ref(), record(i).as_slice());
    }
    assert_eq!(wal.append(b"next").unwrap(), 201);
}

#[test]
fn empty_records_and_empty_batches_work() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.append(b"").unwrap(), 1);
    let empty: [&[u8]; 0] = [];
    assert_eq!(wal.append_batch(&empty).unwrap(), 2..2);
    assert_eq!(wal.read(1).unwrap().unwrap().len(), 0);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(wal.read(1).unwrap().unwrap().len(), 0);
}

#[test]
fn concurrent_appenders_all_land_exactly_once() {
    for durability in [
        Durability::Always,
        Durability::Never,
        Durability::Batched {
            max_delay: Duration::from_millis(2),
            max_bytes: 8192,
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = small().durability(durability);
        let (wal, _) = Wal::open(dir.path(), config.clone()).unwrap();
        let mut acked: Vec<(u64, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u64)
                .map(|t| {
                    let wal = &wal;
                    s.spawn(move || {
                        (0..50u64)
                            .map(|i| {
                                let data = record(t * 1000 + i);
                                (wal.append(&data).unwrap(), data)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        acked.sort();
        let indexes: Vec<u64> = acked.iter().map(|a| a.0).collect();
        assert_eq!(indexes, (1..=400).collect::<Vec<_>>(), "{durability:?}");
        drop(wal);
        let (wal, report) = Wal::open(dir.path(), config).unwrap();
        assert_eq!(report.records, 400);
        for (index, data) in acked {
            assert_eq!(wal.read(index).unwrap().unwrap().as_ref(), data.as_slice());
        }
    }
}

#[test]
fn readers_work_while_writers_append() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    let wal = Arc::new(wal);
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for i in 1..=300 {
                wal.append(&record(i)).unwrap();
            }
        })
    };
    let mut iter = wal.iter_from(1);
    let mut seen = 0u64;
    while seen < 300 {
        match iter.next() {
            Some(item) => {
                let (index, bytes) = item.unwrap();
                seen += 1;
                assert_eq!(index, seen);
                assert_eq!(bytes.as_ref(), record(index).as_slice());
                if let Some(last) = wal.last_index() {
                    assert_eq!(wal.read(last).unwrap().unwrap().as_ref(), record(last));
                }
            }
            None => std::thread::yield_now(),
        }
    }
    writer.join().unwrap();
    assert!(iter.next().is_none());
}

#[test]
fn truncate_suffix_is_durable_and_reuses_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    for i in 1..=100 {
        wal.append(&record(i)).unwrap();
    }
    let segments = wal.segment_count();
    wal.truncate_suffix(40).unwrap();
    assert_eq!(wal.last_index(), Some(40));
    assert!(wal.segment_count() < segments);
    assert!(wal.read(41).unwrap().is_none());
    assert_eq!(wal.append(b"new 41").unwrap(), 41);
    // no-op when nothing is above the index
    wal.truncate_suffix(41).unwrap();
    wal.truncate_suffix(1000).unwrap();
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(wal.last_index(), Some(41));
    assert_eq!(wal.read(41).unwrap().unwrap().as_ref(), b"new 41");
    assert_eq!(
        wal.read(40).unwrap().unwrap().as_ref(),
        record(40).as_slice()
    );
    // emptying the log
    wal.truncate_suffix(0).unwrap();
    assert_eq!(wal.last_index(), None);
    assert_eq!(wal.append(b"again").unwrap(), 1);
}

#[test]
fn truncate_prefix_deletes_whole_segments_below_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    for i in 1..=200 {
        wal.append(&record(i)).unwrap();
    }
    let before = wal.segment_count();
    let first = wal.truncate_prefix(120).unwrap();
    assert!(first <= 120 && first > 1, "first {first}");
    assert_eq!(wal.first_index(), first);
    assert!(wal.segment_count() < before);
    assert!(wal.read(first - 1).unwrap().is_none());
    assert_eq!(
        wal.read(120).unwrap().unwrap().as_ref(),
        record(120).as_slice()
    );
    // beyond the end: only the last segment stays
    wal.truncate_prefix(10_000).unwrap();
    assert_eq!(wal.segment_count(), 1);
    assert_eq!(
        wal.read(200).unwrap().unwrap().as_ref(),
        record(200).as_slice()
    );
    let kept = wal.first_index();
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.first_index, kept);
    assert_eq!(wal.last_index(), Some(200));
    let got: Vec<u64> = wal.iter_from(0).map(|r| r.unwrap().0).collect();
    assert_eq!(got, (kept..=200).collect::<Vec<_>>());
    assert!(matches!(
        wal.truncate_suffix(kept - 2),
        Err(Error::IndexBelowFirst { .. })
    ));
    // the rejection did not poison the log
    assert_eq!(wal.append(b"x").unwrap(), 201);
}

#[test]
fn configured_first_index_is_used_for_new_logs_only() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small().first_index(1000)).unwrap();
    assert_eq!(wal.append(b"a").unwrap(), 1000);
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small().first_index(5)).unwrap();
    assert_eq!(wal.append(b"b").unwrap(), 1001);
}

#[test]
fn second_open_of_a_locked_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small()),
        Err(Error::Locked { .. })
    ));
    drop(wal);
    assert!(Wal::open(dir.path(), small()).is_ok());
}

#[test]
fn oversized_record_is_rejected_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small().max_record_size(100)).unwrap();
    assert!(matches!(
        wal.append(&[0; 101]),
        Err(Error::RecordTooLarge { len: 101, max: 100 })
    ));
    let batch = [vec![0u8; 10], vec![0u8; 200]];
    assert!(matches!(
        wal.append_batch(&batch),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(wal.last_index(), None);
    assert_eq!(wal.append(&[0; 100]).unwrap(), 1);
}

#[test]
fn records_larger_than_a_segment_get_their_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    let big = vec![7u8; 10_000];
    for _ in 0..3 {
        wal.append(&big).unwrap();
    }
    assert_eq!(wal.segment_count(), 3);
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.read(3).unwrap().unwrap().as_ref(), big.as_slice());
}

#[test]
fn invalid_config_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Wal::open(dir.path(), WalConfig::default().segment_size(0)),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn non_wal_files_named_like_segments_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(format!("{:020}.wal", 1)),
        b"this is not a wal segment at all!!",
    )
    .unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small()),
        Err(Error::BadSegment { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.wal"), b"x").unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small()),
        Err(Error::BadSegment { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(format!("{:020}.wal", 1)), b"short").unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small()),
        Err(Error::BadSegment { .. })
    ));

    // unrelated files are left alone
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("README.txt"), b"hello").unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.append(b"a").unwrap(), 1);
}

#[test]
fn segment_header_must_match_its_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(dir.path(), small()).unwrap();
        wal.append(b"a").unwrap();
    }
    fs::rename(
        dir.path().join(format!("{:020}.wal", 1)),
        dir.path().join(format!("{:020}.wal", 2)),
    )
    .unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small()),
        Err(Error::BadSegment { .. })
    ));
}

#[test]
fn leftover_temp_segment_from_an_interrupted_roll_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(dir.path(), small()).unwrap();
        wal.append(b"a").unwrap();
    }
    let tmp = dir.path().join(format!("{:020}.wal.tmp", 2));
    fs::write(&tmp, b"half a header").unwrap();
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.removed_temp_files, vec![tmp.clone()]);
    assert!(!tmp.exists());
    assert_eq!(wal.append(b"b").unwrap(), 2);
}

#[test]
fn batched_mode_syncs_in_the_background_and_close_reports() {
    let dir = tempfile::tempdir().unwrap();
    let config = small().durability(Durability::Batched {
        max_delay: Duration::from_millis(1),
        max_bytes: 1 << 20,
    });
    let (wal, _) = Wal::open(dir.path(), config.clone()).unwrap();
    for i in 1..=50 {
        wal.append(&record(i)).unwrap();
    }
    wal.sync().unwrap();
    wal.close().unwrap();
    let (wal, report) = Wal::open(dir.path(), config).unwrap();
    assert_eq!(report.records, 50);
    assert_eq!(
        wal.read(50).unwrap().unwrap().as_ref(),
        record(50).as_slice()
    );
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_appends_share_the_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = dsp_wal::AsyncWal::open(dir.path(), small()).await.unwrap();
    let tasks: Vec<_> = (0..32u64)
        .map(|i| {
            let wal = wal.clone();
            tokio::spawn(async move { (wal.append(record(i)).await.unwrap(), i) })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        let (index, i) = t.await.unwrap();
        assert_eq!(
            wal.read(index).await.unwrap().unwrap().as_ref(),
            record(i).as_slice()
        );
        seen.push(index);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=32).collect::<Vec<_>>());
    let range = wal
        .append_batch(vec![bytes::Bytes::from_static(b"x"); 3])
        .await
        .unwrap();
    assert_eq!(range, 33..36);
    wal.sync().await.unwrap();
    assert_eq!(wal.read_from(30, 10).await.unwrap().len(), 6);
    wal.truncate_suffix(33).await.unwrap();
    assert_eq!(wal.wal().last_index(), Some(33));
    wal.truncate_prefix(20).await.unwrap();
    assert!(wal.wal().first_index() <= 20);
}

#[test]
fn iterator_sees_rewritten_records_after_truncate_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    for i in 1..=10 {
        wal.append(&record(i)).unwrap();
    }
    let mut iter = wal.iter_from(1);
    for i in 1..=5 {
        assert_eq!(iter.next().unwrap().unwrap().0, i);
    }
    wal.truncate_suffix(5).unwrap();
    wal.append(b"rewritten 6").unwrap();
    let (index, bytes) = iter.next().unwrap().unwrap();
    assert_eq!(index, 6);
    assert_eq!(bytes.as_ref(), b"rewritten 6");
    assert!(iter.next().is_none());
}
