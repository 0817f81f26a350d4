//! Fault injection: torn writes at every byte of the last record, bit flips, zero-filled
//! tails, garbage and missing segments, each recovered (or refused) exactly as documented.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use dsp_core::DetRng;
use dsp_wal::{Durability, Error, FrameError, RecoveryReport, Wal, WalConfig};

const SEED: u64 = 0x5eed_fa17;

fn config() -> WalConfig {
    WalConfig::default()
        .segment_size(4096)
        .durability(Durability::Never)
}

fn record(i: u64) -> Vec<u8> {
    let len = (i * 53 % 190) as usize + 1;
    (0..len).map(|j| (i as usize * 7 + j) as u8 | 1).collect()
}

/// Scratch space: tmpfs when available (these tests fsync thousands of times).
fn scratch() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir()
        && let Ok(dir) = tempfile::tempdir_in("/dev/shm")
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

/// A frame of the base log: which file, where, how long, which index.
#[derive(Clone, Debug)]
struct Frame {
    file: PathBuf,
    offset: u64,
    len: u64,
    index: u64,
}

struct Base {
    _dir: tempfile::TempDir,
    records: u64,
    frames: Vec<Frame>,
    segments: Vec<PathBuf>,
}

/// Builds a log of `records` records over several 4 KiB segments and maps its frames (by
/// walking the documented format).
fn base(records: u64) -> Base {
    let dir = scratch();
    {
        let (wal, _) = Wal::open(dir.path(), config()).unwrap();
        for i in 1..=records {
            assert_eq!(wal.append(&record(i)).unwrap(), i);
        }
        wal.close().unwrap();
    }
    let mut segments: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    let mut frames = Vec::new();
    let mut index = 1;
    for seg in &segments {
        let bytes = fs::read(seg).unwrap();
        let mut pos = 32usize;
        while pos < bytes.len() {
            if bytes[pos..pos + 16].iter().all(|&b| b == 0) {
                // the preallocated, unused tail of the last segment
                break;
            }
            let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as u64;
            let total = 16 + len.div_ceil(8) * 8;
            frames.push(Frame {
                file: seg.clone(),
                offset: pos as u64,
                len: total,
                index,
            });
            index += 1;
            pos += total as usize;
        }
        // Damage is applied to exact files: drop the preallocated zero tail.
        fs::OpenOptions::new()
            .write(true)
            .open(seg)
            .unwrap()
            .set_len(pos as u64)
            .unwrap();
    }
    assert_eq!(frames.len() as u64, records);
    assert!(segments.len() >= 3);
    Base {
        _dir: dir,
        records,
        frames,
        segments,
    }
}

impl Base {
    /// A fresh copy of the base log to damage.
    fn copy(&self) -> (tempfile::TempDir, impl Fn(&Path) -> PathBuf) {
        let copy = scratch();
        for seg in &self.segments {
            fs::copy(seg, copy.path().join(seg.file_name().unwrap())).unwrap();
        }
        let root = copy.path().to_owned();
        (copy, move |p: &Path| root.join(p.file_name().unwrap()))
    }

    fn last(&self) -> &Frame {
        self.frames.last().unwrap()
    }
}

fn modify(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes);
    fs::write(path, bytes).unwrap();
}

/// Opens a damaged log that must recover with the last `lost` records dropped; checks every
/// surviving record, that a second open finds nothing more to repair, and that appends
/// continue at the right index.
fn expect_recovers(dir: &Path, base: &Base, lost: u64) -> RecoveryReport {
    let keep = base.records - lost;
    let (wal, report) = Wal::open(dir, config()).unwrap();
    assert_eq!(report.next_index, keep + 1);
    assert_eq!(wal.last_index(), Some(keep));
    for i in 1..=keep {
        assert_eq!(
            wal.read(i).unwrap().unwrap().as_ref(),
            record(i).as_slice(),
            "record {i}"
        );
    }
    assert!(wal.read(keep + 1).unwrap().is_none());
    drop(wal);
    let (wal, again) = Wal::open(dir, config()).unwrap();
    assert!(
        again.torn_tail.is_none(),
        "second open repaired again: {again:?}"
    );
    assert_eq!(wal.append(b"after").unwrap(), keep + 1);
    report
}

/// Snapshot of every file in a directory, to prove a refused open changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "LOCK")
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn torn_write_at_every_byte_of_the_last_record_is_truncated_and_reported() {
    let base = base(150);
    let last = base.last().clone();
    let mut cases = 0;
    for cut in 0..last.len {
        let (dir, at) = base.copy();
        let file = at(&last.file);
        modify(&file, |b| b.truncate((last.offset + cut) as usize));
        if cut == 0 {
            let report = expect_recovers(dir.path(), &base, 1);
            assert!(report.torn_tail.is_none());
            continue;
        }
        let report = expect_recovers(dir.path(), &base, 1);
        let torn = report.torn_tail.expect("torn tail must be reported");
        assert_eq!(torn.segment, file);
        assert_eq!(torn.offset, last.offset);
        assert_eq!(torn.index, last.index);
        assert_eq!(torn.dropped_bytes, cut);
        assert_eq!(torn.dropped_records, 1);
        let expected = if cut < 16 {
            FrameError::TruncatedHeader
        } else {
            FrameError::TruncatedPayload
        };
        assert_eq!(torn.reason, expected, "cut {cut}");
        cases += 1;
    }
    assert!(cases > 100);
}

#[test]
fn torn_write_followed_by_zeros_is_truncated_and_reported() {
    let base = base(150);
    let last = base.last().clone();
    for cut in 0..last.len {
        let (dir, at) = base.copy();
        let file = at(&last.file);
        // the file keeps its length but the end of the last record never made it
        let mut changed = false;
        modify(&file, |b| {
            for x in &mut b[(last.offset + cut) as usize..] {
                changed |= *x != 0;
                *x = 0;
            }
        });
        if !changed {
            // only the zero padding was "lost": the record is intact
            assert!(cut >= 16);
            let report = expect_recovers(dir.path(), &base, 0);
            assert!(report.torn_tail.is_none());
            continue;
        }
        let report = expect_recovers(dir.path(), &base, 1);
        if cut == 0 {
            // nothing of the record reached the disk: unused space, not a torn record
            assert!(report.torn_tail.is_none());
            assert_eq!(report.unused_tail_bytes, last.len);
            continue;
        }
        let torn = report.torn_tail.expect("torn tail must be reported");
        assert_eq!(torn.offset, last.offset);
        assert_eq!(torn.dropped_bytes, last.len);
        assert_eq!(torn.dropped_records, 1);
    }
}

#[test]
fn zero_filled_space_after_the_last_record_is_unused_not_torn() {
    let base = base(150);
    for extra in [1u64, 7, 8, 15, 16, 17, 100, 4096, 65536] {
        let (dir, at) = base.copy();
        modify(&at(&base.last().file), |b| {
            b.resize(b.len() + extra as usize, 0)
        });
        let report = expect_recovers(dir.path(), &base, 0);
        assert!(report.torn_tail.is_none());
        assert_eq!(report.unused_tail_bytes, extra);
    }
}

#[test]
fn zeros_in_a_sealed_segment_are_corruption() {
    let base = base(150);
    let (dir, at) = base.copy();
    let first = at(&base.segments[0]);
    let len = fs::metadata(&first).unwrap().len();
    modify(&first, |b| b.resize(b.len() + 64, 0));
    match Wal::open(dir.path(), config()) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, len),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_after_the_last_record_is_dropped() {
    let base = base(150);
    let mut rng = DetRng::from_seed(SEED);
    for _ in 0..200 {
        let (dir, at) = base.copy();
        let len = rng.gen_range(1..3000) as usize;
        let mut garbage = vec![0u8; len];
        rng.fill_bytes(&mut garbage);
        modify(&at(&base.last().file), |b| b.extend_from_slice(&garbage));
        let report = expect_recovers(dir.path(), &base, 0);
        let torn = report.torn_tail.expect("garbage tail must be reported");
        assert_eq!(torn.dropped_bytes, len as u64);
        assert_eq!(torn.index, base.records + 1);
    }
}

#[test]
fn every_bit_flip_in_the_last_record_is_a_reported_torn_tail() {
    let base = base(150);
    let last = base.last().clone();
    for bit in 0..last.len * 8 {
        let (dir, at) = base.copy();
        modify(&at(&last.file), |b| {
            b[(last.offset + bit / 8) as usize] ^= 1 << (bit % 8)
        });
        let report = expect_recovers(dir.path(), &base, 1);
        let torn = report
            .torn_tail
            .expect("flip in the last record must be reported");
        assert_eq!(torn.offset, last.offset, "bit {bit}");
        assert_eq!(torn.index, last.index);
    }
}

#[test]
fn bit_flips_before_the_tail_are_errors_with_their_location_and_change_nothing() {
    let base = base(150);
    let mut rng = DetRng::from_seed(SEED ^ 1);
    let earlier = &base.frames[..base.frames.len() - 1];
    for case in 0..1500 {
        let frame = if case < earlier.len() {
            earlier[case].clone() // every earlier record at least once
        } else {
            rng.choose(earlier).unwrap().clone()
        };
        let bit = rng.gen_range(0..frame.len * 8);
        let (dir, at) = base.copy();
        let file = at(&frame.file);
        modify(&file, |b| {
            b[(frame.offset + bit / 8) as usize] ^= 1 << (bit % 8)
        });
        let before = snapshot(dir.path());
        match Wal::open(dir.path(), config()) {
            Err(Error::Corrupt {
                path,
                offset,
                index,
                ..
            }) => {
                assert_eq!(path, file);
                assert_eq!(offset, frame.offset);
                assert_eq!(index, frame.index);
            }
            other => panic!("case {case}: flip at {frame:?} bit {bit} gave {other:?}"),
        }
        assert_eq!(
            snapshot(dir.path()),
            before,
            "a refused open must not change files"
        );
    }
}

#[test]
fn damaged_segment_headers_are_errors() {
    let base = base(150);
    let mut rng = DetRng::from_seed(SEED ^ 2);
    for case in 0..300 {
        let seg = rng.choose(&base.segments).unwrap().clone();
        let bit = rng.gen_range(0..32 * 8);
        let (dir, at) = base.copy();
        modify(&at(&seg), |b| b[(bit / 8) as usize] ^= 1 << (bit % 8));
        let before = snapshot(dir.path());
        let res = Wal::open(dir.path(), config());
        // bytes 12..16 and 24..28 are reserved but covered by the header CRC, so every flip
        // is caught
        assert!(
            matches!(res, Err(Error::BadSegment { .. })),
            "case {case}: {res:?}"
        );
        assert_eq!(snapshot(dir.path()), before);
    }
}

#[test]
fn corrupt_record_followed_by_valid_ones_in_the_last_segment_is_an_error() {
    let base = base(150);
    let last_file = &base.last().file;
    let in_last: Vec<Frame> = base
        .frames
        .iter()
        .filter(|f| &f.file == last_file)
        .cloned()
        .collect();
    assert!(in_last.len() >= 3);
    for frame in &in_last[..in_last.len() - 1] {
        // zeros, a torn length and a checksum flip in a record that has valid successors
        for damage in 0..3 {
            let (dir, at) = base.copy();
            let file = at(&frame.file);
            modify(&file, |b| {
                let o = frame.offset as usize;
                match damage {
                    0 => b[o..o + frame.len as usize].fill(0),
                    1 => b[o + 4..o + 8].copy_from_slice(&u32::MAX.to_le_bytes()),
                    _ => b[o] ^= 0x80,
                }
            });
            match Wal::open(dir.path(), config()) {
                Err(Error::Corrupt {
                    offset,
                    index,
                    reason,
                    ..
                }) => {
                    assert_eq!(offset, frame.offset);
                    assert_eq!(index, frame.index);
                    assert!(reason.contains("followed by a valid record"), "{reason}");
                }
                other => panic!("{frame:?} damage {damage}: {other:?}"),
            }
        }
    }
}

#[test]
fn missing_segments() {
    let base = base(150);
    // a middle segment: error
    for seg in &base.segments[1..base.segments.len() - 1] {
        let (dir, at) = base.copy();
        fs::remove_file(at(seg)).unwrap();
        assert!(matches!(
            Wal::open(dir.path(), config()),
            Err(Error::MissingSegment { .. })
        ));
    }
    // the first segment: indistinguishable from a prefix truncation (documented)
    let (dir, at) = base.copy();
    fs::remove_file(at(&base.segments[0])).unwrap();
    let (wal, report) = Wal::open(dir.path(), config()).unwrap();
    let first = base
        .frames
        .iter()
        .find(|f| f.file == base.segments[1])
        .unwrap()
        .index;
    assert_eq!(report.first_index, first);
    assert_eq!(
        wal.read(first).unwrap().unwrap().as_ref(),
        record(first).as_slice()
    );
    // the last segment: indistinguishable from a shorter log (documented)
    let (dir, at) = base.copy();
    fs::remove_file(at(base.segments.last().unwrap())).unwrap();
    let first_of_last = base
        .frames
        .iter()
        .find(|f| &f.file == base.segments.last().unwrap());
    let (_, report) = Wal::open(dir.path(), config()).unwrap();
    assert_eq!(report.next_index, first_of_last.unwrap().index);
}

#[test]
fn torn_header_of_a_new_last_segment_is_left_as_a_temp_file_and_removed() {
    let base = base(150);
    // simulate a crash during a roll at every byte of the new segment's header
    for cut in 0..=32usize {
        let (dir, _) = base.copy();
        let next = base.records + 1;
        let header = {
            // take a real header and rewrite its first index
            let mut h = fs::read(&base.segments[0]).unwrap()[..32].to_vec();
            h[16..24].copy_from_slice(&next.to_le_bytes());
            h
        };
        fs::write(
            dir.path().join(format!("{next:020}.wal.tmp")),
            &header[..cut],
        )
        .unwrap();
        let (wal, report) = Wal::open(dir.path(), config()).unwrap();
        assert_eq!(report.removed_temp_files.len(), 1);
        assert_eq!(wal.append(b"x").unwrap(), next);
    }
}
