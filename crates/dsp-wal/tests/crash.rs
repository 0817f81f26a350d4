//! Crash harness: a child process (this test binary, re-invoked) appends from several threads
//! and prints every acknowledged index; the parent SIGKILLs it at random moments, reopens the
//! log and checks that every acknowledged record is present and byte-identical.
//!
//! The default run does 20 kills. The stress run does 500:
//! `cargo test -p dsp-wal --test crash -- --ignored crash_stress`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dsp_core::DetRng;
use dsp_wal::{Durability, Wal, WalConfig};

const DIR_ENV: &str = "DSP_WAL_CRASH_DIR";
const ROUND_ENV: &str = "DSP_WAL_CRASH_ROUND";
const THREADS: u64 = 4;

fn config(round: u64) -> WalConfig {
    let durability = match round % 3 {
        0 => Durability::Always,
        1 => Durability::Batched {
            max_delay: Duration::from_millis(1),
            max_bytes: 16 << 10,
        },
        _ => Durability::Never,
    };
    WalConfig::default()
        .segment_size(16 << 10)
        .durability(durability)
}

/// The record a child appends: (round, thread, seq) and a pattern derived from them, so any
/// record read back can be checked for self-consistency.
fn payload(round: u64, thread: u64, seq: u64) -> Vec<u8> {
    let len = 24 + ((round * 131 + thread * 7919 + seq * 31) % 900) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&round.to_le_bytes());
    v.extend_from_slice(&thread.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    let mut x = round ^ (thread << 20) ^ (seq << 32) ^ 0x9e37_79b9;
    while v.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push((x >> 56) as u8);
    }
    v
}

fn decode(bytes: &[u8]) -> (u64, u64, u64) {
    let f = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    (f(0), f(1), f(2))
}

/// The child: does its work only when re-invoked by the parent with the env var set (ignored
/// so it is not a no-op test in normal runs).
#[test]
#[ignore = "child process of the crash harness, started by the parent tests"]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let (wal, _) = Wal::open(&dir, config(round)).unwrap();
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let wal = &wal;
            s.spawn(move || {
                for seq in 0.. {
                    let index = wal.append(&payload(round, thread, seq)).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {index} {thread} {seq}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// One kill: run the child for a random time, SIGKILL it, return its acknowledgements.
fn run_child(dir: &Path, round: u64, rng: &mut DetRng) -> Vec<(u64, u64, u64)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split(' ');
            if parts.next() != Some("ack") {
                continue;
            }
            let nums: Vec<u64> = parts.map(|p| p.parse().unwrap()).collect();
            acks.push((nums[0], nums[1], nums[2]));
        }
        acks
    });
    std::thread::sleep(rng.gen_duration(Duration::from_millis(5)..Duration::from_millis(120)));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

fn crash_rounds(kills: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = DetRng::from_seed(seed);
    // every acknowledged record so far: index -> (round, thread, seq)
    let mut acked: HashMap<u64, (u64, u64, u64)> = HashMap::new();
    let mut total_acks = 0;
    let mut torn_tails = 0;
    for round in 0..kills {
        for (index, thread, seq) in run_child(dir.path(), round, &mut rng) {
            assert!(
                acked.insert(index, (round, thread, seq)).is_none(),
                "index {index} acked twice"
            );
            total_acks += 1;
        }
        let (wal, report) = Wal::open(dir.path(), config(round)).unwrap();
        if let Some(torn) = &report.torn_tail {
            torn_tails += 1;
            assert!(
                !acked.contains_key(&torn.index),
                "torn tail dropped acked {torn:?}"
            );
        }
        for (&index, &(r, t, s)) in &acked {
            let got = wal
                .read(index)
                .unwrap()
                .unwrap_or_else(|| panic!("acked {index} lost"));
            assert_eq!(
                got.as_ref(),
                payload(r, t, s).as_slice(),
                "acked {index} differs"
            );
        }
        // every record in the log is one the children wrote, and none appears twice
        let mut seen = HashSet::new();
        for (expected_index, item) in (wal.first_index()..).zip(wal.iter_from(0)) {
            let (index, bytes) = item.unwrap();
            assert_eq!(index, expected_index);
            let (r, t, s) = decode(&bytes);
            assert_eq!(bytes.as_ref(), payload(r, t, s).as_slice());
            assert!(seen.insert((r, t, s)), "record {r}/{t}/{s} twice");
        }
    }
    assert!(total_acks > 0, "the children never acknowledged anything");
    eprintln!("{kills} kills, {total_acks} acknowledged records checked, {torn_tails} torn tails");
}

#[test]
fn acknowledged_records_survive_sigkill() {
    crash_rounds(20, 0xc0ffee);
}

/// Many more kills; run with `cargo test -p dsp-wal --test crash -- --ignored crash_stress`.
#[test]
#[ignore = "stress run: 500 kills"]
fn crash_stress() {
    crash_rounds(500, 0xdead_beef);
}
