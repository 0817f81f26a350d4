//! Write-ahead logs side by side: dsp-wal beside okaywal 0.3, raft-engine 0.4 and a hand-rolled
//! write + `fdatasync`-per-record floor, on a real file system under the target directory.
//!
//! Groups:
//! - `Wal::append/256B`: 256-byte records from 1, 8 and 64 concurrent writer threads, each
//!   append waiting for its own durability (elements/s = durable appends/s).
//! - `Wal::append/64KiB`: 64 KiB records from 8 concurrent writers, each waiting for its own
//!   durability (bytes/s); plus dsp-wal's `append_batch` of 64 records per call.
//! - `Wal::recover`: reopen a log of 1 KiB records and iterate every record. The log is
//!   256 MiB by default; set `DSP_WAL_BENCH_RECOVERY_MIB=1024` for 1 GiB. The floor reads the
//!   same number of bytes in 4 MiB chunks (no checksum: `crc32c` is not a dependency of the
//!   benches crate).
//!
//! Before the append groups, every system is also run in alternation (5 rounds) and the
//! median rates and dsp-wal's median ratio to each peer are printed to stderr: on a shared VM
//! the `fdatasync` latency changes regime within seconds, so interleaved ratios are fairer
//! than comparing criterion runs made one after another.
//!
//! Every write measurement opens a fresh log in a fresh directory (not timed), so the disk use
//! of a run stays bounded. raft-engine records are `LogBatch::put` key-values (its raft entry
//! API needs protobuf messages); raft-engine keeps key-value values in memory, so its
//! "iterate" step reads memory, not disk.
//!
//! Run: `cargo bench -p dsp-benches --bench wal -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsp_wal::{Durability, Wal, WalConfig};

/// Where the logs live: the target directory (a real file system), never `/tmp`.
fn bench_root() -> PathBuf {
    let root = PathBuf::from(option_env!("CARGO_TARGET_TMPDIR").unwrap_or("target"));
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn fresh_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dsp-wal-bench-")
        .tempdir_in(bench_root())
        .unwrap()
}

/// A log that appends one record durably per call, from any thread.
trait DurableLog: Send + Sync {
    fn append(&self, record: &[u8]);
}

struct Dsp(Wal);

impl DurableLog for Dsp {
    fn append(&self, record: &[u8]) {
        self.0.append(record).unwrap();
    }
}

struct OkayWal(okaywal::WriteAheadLog);

#[derive(Debug)]
struct NoCheckpoint;

impl okaywal::LogManager for NoCheckpoint {
    fn recover(&mut self, _entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: okaywal::EntryId,
        _entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

impl DurableLog for OkayWal {
    fn append(&self, record: &[u8]) {
        let mut entry = self.0.begin_entry().unwrap();
        entry.write_chunk(record).unwrap();
        entry.commit().unwrap();
    }
}

struct RaftEngine {
    engine: raft_engine::Engine,
    seq: AtomicU64,
}

fn raft_config(dir: &Path) -> raft_engine::Config {
    raft_engine::Config {
        dir: dir.to_str().unwrap().to_owned(),
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..raft_engine::Config::default()
    }
}

impl DurableLog for RaftEngine {
    fn append(&self, record: &[u8]) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut batch = raft_engine::LogBatch::with_capacity(1);
        batch
            .put(1 + seq % 64, seq.to_be_bytes().to_vec(), record.to_vec())
            .unwrap();
        self.engine.write(&mut batch, true).unwrap();
    }
}

/// The floor: one file, one `write` + `fdatasync` per record, under a mutex.
struct Floor(Mutex<File>);

impl DurableLog for Floor {
    fn append(&self, record: &[u8]) {
        let mut file = self.0.lock().unwrap();
        file.write_all(record).unwrap();
        file.sync_data().unwrap();
    }
}

const SYSTEMS: [&str; 4] = ["dsp-wal", "okaywal", "raft-engine", "fdatasync-floor"];

fn open(system: &str, dir: &Path) -> Box<dyn DurableLog> {
    match system {
        "dsp-wal" => {
            let config = WalConfig::default().durability(Durability::Always);
            Box::new(Dsp(Wal::open(dir, config).unwrap().0))
        }
        "okaywal" => Box::new(OkayWal(
            okaywal::WriteAheadLog::recover(dir, NoCheckpoint).unwrap(),
        )),
        "raft-engine" => Box::new(RaftEngine {
            engine: raft_engine::Engine::open(raft_config(dir)).unwrap(),
            seq: AtomicU64::new(0),
        }),
        "fdatasync-floor" => Box::new(Floor(Mutex::new(File::create(dir.join("log")).unwrap()))),
        other => unreachable!("unknown system {other}"),
    }
}

/// Runs `iters` durable appends spread over `writers` threads; returns the wall time.
fn run_writers(log: &dyn DurableLog, writers: u64, iters: u64, record: &[u8]) -> Duration {
    let barrier = Barrier::new(writers as usize + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let n = iters / writers + u64::from(w < iters % writers);
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..n {
                        log.append(black_box(record));
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        start.elapsed()
    })
}

/// Prints durable appends/s of every system run in alternation (5 rounds, rotating the order),
/// and the median ratio of dsp-wal to each peer. On a shared VM `fdatasync` latency swings
/// between ~0.1 ms and ~4 ms from one second to the next, so criterion's one-system-after-
/// another measurements can compare different regimes; interleaving gives fairer ratios.
fn interleaved_ratios(record: &[u8], writers: u64, label: &str) {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); SYSTEMS.len()];
    for round in 0..5 {
        for k in 0..SYSTEMS.len() {
            let i = (k + round) % SYSTEMS.len();
            let n = if SYSTEMS[i] == "fdatasync-floor" {
                100
            } else {
                1000
            };
            let dir = fresh_dir();
            let log = open(SYSTEMS[i], dir.path());
            let elapsed = run_writers(log.as_ref(), writers, n, record);
            rates[i].push(n as f64 / elapsed.as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ratios = Vec::new();
    for i in 1..SYSTEMS.len() {
        let mut r: Vec<f64> = rates[0].iter().zip(&rates[i]).map(|(a, b)| a / b).collect();
        ratios.push(format!("{:.2}x {}", median(&mut r), SYSTEMS[i]));
    }
    let medians: Vec<String> = SYSTEMS
        .iter()
        .zip(rates.iter_mut())
        .map(|(s, v)| {
            let rate = median(v);
            let mib = rate * record.len() as f64 / f64::from(1 << 20);
            format!("{s} {rate:.0}/s ({mib:.1} MiB/s)")
        })
        .collect();
    eprintln!(
        "interleaved {label}/{writers}-writers: {}; dsp-wal vs {}",
        medians.join(", "),
        ratios.join(", ")
    );
}

fn appends(c: &mut Criterion) {
    let small = vec![0xa5u8; 256];
    for writers in [1, 8, 64] {
        interleaved_ratios(&small, writers, "256B");
    }
    interleaved_ratios(&vec![0x5au8; 64 << 10], 8, "64KiB");
    let mut group = c.benchmark_group("Wal::append/256B");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for writers in [1u64, 8, 64] {
        for system in SYSTEMS {
            let id = BenchmarkId::new(system, format!("{writers}-writers"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let dir = fresh_dir();
                    let log = open(system, dir.path());
                    run_writers(log.as_ref(), writers, iters, &small)
                });
            });
        }
    }
    group.finish();

    let big = vec![0x5au8; 64 << 10];
    let mut group = c.benchmark_group("Wal::append/64KiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(big.len() as u64));
    for system in SYSTEMS {
        group.bench_function(BenchmarkId::new(system, "8-writers"), |b| {
            b.iter_custom(|iters| {
                let dir = fresh_dir();
                let log = open(system, dir.path());
                run_writers(log.as_ref(), 8, iters, &big)
            });
        });
    }
    // One writer handing dsp-wal 64 records per call (one write, one fdatasync).
    group.bench_function(BenchmarkId::new("dsp-wal", "append_batch-64"), |b| {
        let batch: Vec<&[u8]> = vec![big.as_slice(); 64];
        b.iter_custom(|iters| {
            let dir = fresh_dir();
            let (wal, _) = Wal::open(dir.path(), WalConfig::default()).unwrap();
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = left.min(64) as usize;
                wal.append_batch(&batch[..n]).unwrap();
                left -= n as u64;
            }
            start.elapsed()
        });
    });
    group.finish();
}

const RECOVERY_RECORD: usize = 1024;
const RECOVERY_BATCH: usize = 1024;

fn recovery_bytes() -> u64 {
    let mib: u64 = std::env::var("DSP_WAL_BENCH_RECOVERY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    mib << 20
}

fn recovery(c: &mut Criterion) {
    let total = recovery_bytes();
    let records = total / RECOVERY_RECORD as u64;
    let batches = records / RECOVERY_BATCH as u64;
    let records = batches * RECOVERY_BATCH as u64;
    let record = vec![0x3cu8; RECOVERY_RECORD];
    let chunk: Vec<&[u8]> = vec![record.as_slice(); RECOVERY_BATCH];
    let mut group = c.benchmark_group("Wal::recover");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(records * RECOVERY_RECORD as u64));
    let label = format!("{}MiB", total >> 20);

    {
        let dir = fresh_dir();
        {
            let config = WalConfig::default().durability(Durability::Never);
            let (wal, _) = Wal::open(dir.path(), config).unwrap();
            for _ in 0..batches {
                wal.append_batch(&chunk).unwrap();
            }
            wal.close().unwrap();
        }
        group.bench_function(BenchmarkId::new("dsp-wal", &label), |b| {
            b.iter(|| {
                let (wal, report) = Wal::open(dir.path(), WalConfig::default()).unwrap();
                assert_eq!(report.records, records);
                let mut bytes = 0u64;
                for item in wal.iter_from(0) {
                    bytes += item.unwrap().1.len() as u64;
                }
                assert_eq!(bytes, records * RECOVERY_RECORD as u64);
                bytes
            });
        });
    }

    {
        let dir = fresh_dir();
        let open = |manager| {
            okaywal::Configuration::default_for(dir.path())
                .checkpoint_after_bytes(u64::MAX / 2)
                .open(manager)
                .unwrap()
        };
        {
            let wal = open(Counting::default());
            for _ in 0..batches {
                let mut entry = wal.begin_entry().unwrap();
                for r in &chunk {
                    entry.write_chunk(r).unwrap();
                }
                entry.commit().unwrap();
            }
            wal.shutdown().unwrap();
        }
        group.bench_function(BenchmarkId::new("okaywal", &label), |b| {
            b.iter(|| {
                let counted = Counting::default();
                let bytes = counted.bytes.clone();
                let wal = open(counted);
                let got = bytes.load(Ordering::Relaxed);
                assert_eq!(got, records * RECOVERY_RECORD as u64);
                drop(wal);
                got
            });
        });
    }

    {
        let dir = fresh_dir();
        {
            let engine = raft_engine::Engine::open(raft_config(dir.path())).unwrap();
            let mut seq = 0u64;
            for _ in 0..batches {
                let mut batch = raft_engine::LogBatch::with_capacity(RECOVERY_BATCH);
                for r in &chunk {
                    batch
                        .put(1, seq.to_be_bytes().to_vec(), r.to_vec())
                        .unwrap();
                    seq += 1;
                }
                engine.write(&mut batch, false).unwrap();
            }
            engine.sync().unwrap();
        }
        group.bench_function(BenchmarkId::new("raft-engine", &label), |b| {
            b.iter(|| {
                let engine = raft_engine::Engine::open(raft_config(dir.path())).unwrap();
                let mut bytes = 0u64;
                engine
                    .scan_raw_messages(1, None, None, false, |_, v| {
                        bytes += v.len() as u64;
                        true
                    })
                    .unwrap();
                assert_eq!(bytes, records * RECOVERY_RECORD as u64);
                bytes
            });
        });
    }

    {
        let dir = fresh_dir();
        let path = dir.path().join("log");
        {
            let mut file = std::io::BufWriter::new(File::create(&path).unwrap());
            for _ in 0..records {
                file.write_all(&record).unwrap();
            }
            file.into_inner().unwrap().sync_all().unwrap();
        }
        group.bench_function(BenchmarkId::new("read-floor", &label), |b| {
            let mut buf = vec![0u8; 4 << 20];
            b.iter(|| {
                let mut file = File::open(&path).unwrap();
                let mut bytes = 0u64;
                loop {
                    let n = file.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    black_box(&buf[..n]);
                    bytes += n as u64;
                }
                assert_eq!(bytes, records * RECOVERY_RECORD as u64);
                bytes
            });
        });
    }
    group.finish();
}

/// okaywal recovery manager that reads every chunk and counts its bytes.
#[derive(Debug, Default)]
struct Counting {
    bytes: std::sync::Arc<AtomicU64>,
}

impl okaywal::LogManager for Counting {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        if let Some(chunks) = entry.read_all_chunks()? {
            let n: usize = chunks.iter().map(Vec::len).sum();
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: okaywal::EntryId,
        _entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

criterion_group!(benches, appends, recovery);
criterion_main!(benches);
