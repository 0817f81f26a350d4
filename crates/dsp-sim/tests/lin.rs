//! The linearizability checker against textbook and generated histories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};

use dsp_core::{DetRng, Instant};
use dsp_sim::lin::{
    Checker, History, KvInput, KvModel, KvOutput, Model, OpId, Operation, Outcome, RegisterInput,
    RegisterModel, RegisterOutput, check,
};
use proptest::prelude::*;

type Reg = RegisterModel<u64>;
type RegHistory = History<RegisterInput<u64>, RegisterOutput<u64>>;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A completed operation from `call` to `ret` (milliseconds).
fn op<I, O>(h: &mut History<I, O>, client: u64, call: u64, ret: u64, input: I, output: O) -> OpId {
    let id = h.invoke(client, input, t(call));
    h.complete(id, output, t(ret)).unwrap();
    id
}

fn w(h: &mut RegHistory, c: u64, call: u64, ret: u64, v: u64) -> OpId {
    op(
        h,
        c,
        call,
        ret,
        RegisterInput::Write(v),
        RegisterOutput::Written,
    )
}

fn r(h: &mut RegHistory, c: u64, call: u64, ret: u64, v: u64) -> OpId {
    op(
        h,
        c,
        call,
        ret,
        RegisterInput::Read,
        RegisterOutput::Value(v),
    )
}

fn reg() -> Reg {
    RegisterModel { initial: 0 }
}

fn violation(outcome: Outcome) -> dsp_sim::lin::Counterexample {
    match outcome {
        Outcome::NotLinearizable(c) => c,
        other => panic!("expected a violation, got {other}"),
    }
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    assert!(check(&reg(), &RegHistory::new()).is_linearizable());
    let mut h = RegHistory::new();
    w(&mut h, 1, 0, 10, 1);
    r(&mut h, 1, 20, 30, 1);
    w(&mut h, 2, 40, 50, 2);
    r(&mut h, 1, 60, 70, 2);
    assert!(check(&reg(), &h).is_linearizable());
}

#[test]
fn stale_read_after_completed_write_is_caught() {
    let mut h = RegHistory::new();
    let write = w(&mut h, 1, 0, 10, 1);
    let read = r(&mut h, 2, 20, 30, 0);
    let c = violation(check(&reg(), &h));
    assert_eq!(c.ops, vec![write, read]);
    assert_eq!(c.culprit, Some(read));
    assert!(c.minimal);
    let text = c.to_string();
    assert!(
        text.contains("Write(1)") && text.contains("Value(0)"),
        "{text}"
    );
}

#[test]
fn read_concurrent_with_write_may_see_old_or_new() {
    for seen in [0, 1] {
        let mut h = RegHistory::new();
        w(&mut h, 1, 0, 30, 1);
        r(&mut h, 2, 10, 20, seen);
        assert!(check(&reg(), &h).is_linearizable(), "read {seen}");
    }
}

#[test]
fn concurrent_overlapping_writes_either_order() {
    for last in [1, 2] {
        let mut h = RegHistory::new();
        w(&mut h, 1, 0, 10, 1);
        w(&mut h, 2, 5, 15, 2);
        r(&mut h, 3, 20, 25, last);
        r(&mut h, 3, 30, 35, last);
        assert!(check(&reg(), &h).is_linearizable(), "last {last}");
    }
    // But the two reads after both writes must agree.
    let mut h = RegHistory::new();
    w(&mut h, 1, 0, 10, 1);
    w(&mut h, 2, 5, 15, 2);
    r(&mut h, 3, 20, 25, 1);
    r(&mut h, 3, 30, 35, 2);
    assert!(check(&reg(), &h).is_violation());
}

#[test]
fn read_of_a_value_never_written_is_caught() {
    let mut h = RegHistory::new();
    w(&mut h, 1, 0, 10, 1);
    let bad = r(&mut h, 2, 5, 15, 7);
    let c = violation(check(&reg(), &h));
    assert_eq!(c.ops, vec![bad]);
}

#[test]
fn new_old_inversion_is_caught() {
    // Herlihy & Wing's register example: during a long write, one read sees the new value and
    // a later read (called after the first returned) sees the old one.
    let mut h = RegHistory::new();
    w(&mut h, 1, 0, 100, 1);
    r(&mut h, 2, 10, 20, 1);
    r(&mut h, 3, 30, 40, 0);
    assert!(check(&reg(), &h).is_violation());
    // If the two reads overlap each other, either order is fine.
    let mut h = RegHistory::new();
    w(&mut h, 1, 0, 100, 1);
    r(&mut h, 2, 10, 40, 1);
    r(&mut h, 3, 30, 50, 0);
    assert!(check(&reg(), &h).is_linearizable());
}

#[test]
fn pending_write_may_or_may_not_take_effect() {
    // Took effect.
    let mut h = RegHistory::new();
    h.invoke(1, RegisterInput::Write(2), t(0));
    r(&mut h, 2, 10, 20, 2);
    assert!(check(&reg(), &h).is_linearizable());
    // Did not take effect.
    let mut h = RegHistory::new();
    h.invoke(1, RegisterInput::Write(2), t(0));
    r(&mut h, 2, 10, 20, 0);
    r(&mut h, 2, 30, 40, 0);
    assert!(check(&reg(), &h).is_linearizable());
    // But it cannot take effect and then be undone.
    let mut h = RegHistory::new();
    h.invoke(1, RegisterInput::Write(2), t(0));
    r(&mut h, 2, 10, 20, 2);
    r(&mut h, 2, 30, 40, 0);
    let c = violation(check(&reg(), &h));
    assert_eq!(c.ops.len(), 3, "{c}");
    assert_eq!(c.pending.len(), 1, "{c}");
    // And it cannot take effect before it was invoked.
    let mut h = RegHistory::new();
    r(&mut h, 2, 0, 10, 2);
    h.invoke(1, RegisterInput::Write(2), t(20));
    assert!(check(&reg(), &h).is_violation());
}

#[test]
fn compare_and_set_semantics() {
    let cas = |h: &mut RegHistory, c, call, ret, expected, new, ok| {
        op(
            h,
            c,
            call,
            ret,
            RegisterInput::Cas { expected, new },
            RegisterOutput::Cas(ok),
        )
    };
    // Two sequential successful CAS from the same expected value: impossible.
    let mut h = RegHistory::new();
    cas(&mut h, 1, 0, 10, 0, 1, true);
    cas(&mut h, 2, 20, 30, 0, 2, true);
    assert!(check(&reg(), &h).is_violation());
    // Concurrent: exactly one may win.
    let mut h = RegHistory::new();
    cas(&mut h, 1, 0, 10, 0, 1, true);
    cas(&mut h, 2, 5, 15, 0, 2, false);
    r(&mut h, 3, 20, 30, 1);
    assert!(check(&reg(), &h).is_linearizable());
    // A pending CAS may have succeeded.
    let mut h = RegHistory::new();
    h.invoke(
        1,
        RegisterInput::Cas {
            expected: 0,
            new: 5,
        },
        t(0),
    );
    r(&mut h, 2, 10, 20, 5);
    assert!(check(&reg(), &h).is_linearizable());
}

/// A FIFO queue model, to check the user-model path with Herlihy & Wing's queue examples.
struct QueueModel;

#[derive(Debug, Clone, PartialEq)]
enum QIn {
    Enq(char),
    Deq,
}

#[derive(Debug, Clone, PartialEq)]
enum QOut {
    Ok,
    Got(Option<char>),
}

impl Model for QueueModel {
    type State = VecDeque<char>;
    type Input = QIn;
    type Output = QOut;

    fn init(&self) -> Self::State {
        VecDeque::new()
    }

    fn step(&self, s: &Self::State, input: &QIn, output: &QOut) -> Option<Self::State> {
        let mut next = s.clone();
        match (input, output) {
            (QIn::Enq(x), QOut::Ok) => {
                next.push_back(*x);
                Some(next)
            }
            (QIn::Deq, QOut::Got(x)) => (next.pop_front() == *x).then_some(next),
            _ => None,
        }
    }

    fn step_unknown(&self, s: &Self::State, input: &QIn) -> Vec<Self::State> {
        let mut next = s.clone();
        match input {
            QIn::Enq(x) => next.push_back(*x),
            QIn::Deq => {
                next.pop_front();
            }
        }
        vec![next]
    }
}

#[test]
fn herlihy_wing_queue_examples() {
    type QH = History<QIn, QOut>;
    // Linearizable: overlapping enqueues may take effect in either order.
    let mut h = QH::new();
    op(&mut h, 1, 0, 10, QIn::Enq('x'), QOut::Ok);
    op(&mut h, 2, 5, 15, QIn::Enq('y'), QOut::Ok);
    op(&mut h, 1, 20, 30, QIn::Deq, QOut::Got(Some('y')));
    op(&mut h, 2, 25, 35, QIn::Deq, QOut::Got(Some('x')));
    assert!(check(&QueueModel, &h).is_linearizable());
    // Not linearizable: x was enqueued strictly before y, yet y comes out first.
    let mut h = QH::new();
    op(&mut h, 1, 0, 10, QIn::Enq('x'), QOut::Ok);
    op(&mut h, 2, 20, 30, QIn::Enq('y'), QOut::Ok);
    op(&mut h, 1, 40, 50, QIn::Deq, QOut::Got(Some('y')));
    assert!(check(&QueueModel, &h).is_violation());
    // Linearizable: a dequeue may return an element whose enqueue has not returned yet.
    let mut h = QH::new();
    op(&mut h, 1, 0, 30, QIn::Enq('x'), QOut::Ok);
    op(&mut h, 2, 10, 20, QIn::Deq, QOut::Got(Some('x')));
    assert!(check(&QueueModel, &h).is_linearizable());
    // Not linearizable: the queue cannot be empty after a completed enqueue.
    let mut h = QH::new();
    op(&mut h, 1, 0, 10, QIn::Enq('x'), QOut::Ok);
    op(&mut h, 2, 20, 30, QIn::Deq, QOut::Got(None));
    assert!(check(&QueueModel, &h).is_violation());
}

#[test]
fn kv_histories_are_checked_per_key() {
    type KH = History<KvInput<&'static str, u64>, KvOutput<u64>>;
    let model = KvModel::<&'static str, u64>::new();
    let mut h = KH::new();
    for i in 0..50u64 {
        op(
            &mut h,
            1,
            100 * i,
            100 * i + 10,
            KvInput::Put { key: "a", value: i },
            KvOutput::Ok,
        );
        op(
            &mut h,
            2,
            100 * i + 20,
            100 * i + 30,
            KvInput::Get { key: "a" },
            KvOutput::Value(Some(i)),
        );
    }
    op(
        &mut h,
        3,
        0,
        10,
        KvInput::Put { key: "b", value: 1 },
        KvOutput::Ok,
    );
    op(
        &mut h,
        3,
        20,
        30,
        KvInput::Cas {
            key: "b",
            expected: Some(1),
            new: 2,
        },
        KvOutput::Cas(true),
    );
    op(
        &mut h,
        3,
        40,
        50,
        KvInput::Get { key: "c" },
        KvOutput::Value(None),
    );
    assert!(check(&model, &h).is_linearizable());
    let stale = op(
        &mut h,
        4,
        60,
        70,
        KvInput::Get { key: "b" },
        KvOutput::Value(Some(1)),
    );
    let c = violation(check(&model, &h));
    assert_eq!(c.culprit, Some(stale));
    for id in &c.ops {
        assert_eq!(*h.ops()[id.0].input.key(), "b", "{c}");
    }
}

#[test]
fn counterexample_shrinks_to_a_core_and_shows_context() {
    let mut h = RegHistory::new();
    let mut last_write = OpId(0);
    for i in 1..=20 {
        last_write = w(&mut h, 1, 100 * i, 100 * i + 10, i);
        r(&mut h, 2, 100 * i + 20, 100 * i + 30, i);
    }
    let overwrite = w(&mut h, 1, 3000, 3010, 99);
    let stale = r(&mut h, 2, 3020, 3030, 20);
    for i in 0..20 {
        r(&mut h, 2, 4000 + 100 * i, 4010 + 100 * i, 99);
    }
    let c = violation(check(&reg(), &h));
    assert_eq!(c.culprit, Some(stale));
    // The core keeps the write the stale read saw, so it reads as "20 was overwritten by 99
    // before the read", not as "a read of a value never written".
    assert_eq!(c.ops, vec![last_write, overwrite, stale], "{c}");
    assert!(c.minimal);
    println!("{c}");
    // The later reads are not part of the failing prefix.
    assert!(!c.timeline.contains("op 43 "), "{}", c.timeline);
    assert!(
        c.timeline.contains(&format!("op {:<5}", overwrite.0)),
        "{}",
        c.timeline
    );
}

#[test]
fn step_bound_answers_unknown_instead_of_hanging() {
    // Many fully concurrent writes and reads: a hard history for the search.
    let mut h = RegHistory::new();
    for i in 0..40 {
        w(&mut h, i, 0, 1000, i + 1);
    }
    for i in 0..40 {
        r(&mut h, 100 + i, 1, 999, 40 - i);
    }
    r(&mut h, 999, 2000, 2010, 12345);
    let checker = Checker {
        max_steps: 1_000,
        ..Checker::default()
    };
    assert_eq!(checker.check(&reg(), &h), Outcome::Unknown { steps: 1_000 });
}

#[test]
fn history_rejects_inconsistent_operations() {
    let mut h = RegHistory::new();
    let id = h.invoke(1, RegisterInput::Read, t(10));
    assert!(h.complete(id, RegisterOutput::Value(0), t(5)).is_err());
    assert!(
        h.complete(OpId(7), RegisterOutput::Value(0), t(20))
            .is_err()
    );
    h.complete(id, RegisterOutput::Value(0), t(20)).unwrap();
    assert!(h.complete(id, RegisterOutput::Value(0), t(30)).is_err());
    let bad = Operation {
        client: 1,
        input: RegisterInput::Read,
        call: t(10),
        returned: Some((t(1), RegisterOutput::Value(0))),
    };
    assert!(h.push(bad).is_err());
    assert_eq!(h.len(), 1);
}

/// Generates a register history from `clients` concurrent clients. Each operation takes effect
/// at a random instant inside its interval, against a real register; with `stale_rate > 0`,
/// reads sometimes return a value overwritten by a write that had completed before the read was
/// called, where that write was itself called after the overwritten value's write returned (or
/// the value is the initial one), so every linearization puts the overwrite between the two: a
/// stale read, always a violation because values are unique. (Without the second condition the
/// two writes may be concurrent and linearize in either order, and the "stale" read is fine.)
/// Returns the history and how many stale reads were injected.
fn generate(seed: u64, clients: u64, ops: usize, stale_rate: f64) -> (RegHistory, usize) {
    let mut rng = DetRng::from_seed(seed);
    // (call, effect, ret, client, is_write)
    let mut plan = Vec::new();
    let mut next_free: BTreeMap<u64, u64> = (0..clients).map(|c| (c, 0)).collect();
    for _ in 0..ops {
        let c = rng.gen_range(0..clients);
        let call = next_free[&c] + rng.gen_range(0..20);
        let effect = call + rng.gen_range(0..20);
        let ret = effect + rng.gen_range(0..20);
        next_free.insert(c, ret + 1);
        plan.push((call, effect, ret, c, rng.gen_bool(0.4)));
    }
    plan.sort_by_key(|p| p.1);
    let mut value = 0u64;
    // When the write of the current value returned (the initial value: before everything).
    let mut value_ret: Option<u64> = None;
    let mut next_value = 1u64;
    // (value, when its write returned, when the write that replaced it was called and returned)
    let mut replaced: Vec<(u64, Option<u64>, u64, u64)> = Vec::new();
    let mut records = Vec::new();
    let mut injected = 0;
    for &(call, _, ret, c, is_write) in &plan {
        if is_write {
            replaced.push((value, value_ret, call, ret));
            value = next_value;
            value_ret = Some(ret);
            next_value += 1;
            records.push((
                call,
                ret,
                c,
                RegisterInput::Write(value),
                RegisterOutput::Written,
            ));
        } else {
            let mut seen = value;
            if rng.gen_bool(stale_rate)
                && let Some(&(old, ..)) =
                    replaced.iter().rev().find(|&&(_, old_ret, w_call, w_ret)| {
                        w_ret < call && old_ret.is_none_or(|o| o < w_call)
                    })
            {
                seen = old;
                injected += 1;
            }
            records.push((
                call,
                ret,
                c,
                RegisterInput::Read,
                RegisterOutput::Value(seen),
            ));
        }
    }
    records.sort_by_key(|r| r.0);
    let mut h = RegHistory::new();
    for (call, ret, c, input, output) in records {
        op(&mut h, c, call, ret, input, output);
    }
    (h, injected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn histories_of_a_correct_register_are_linearizable(
        seed: u64, clients in 1u64..6, ops in 1usize..200,
    ) {
        let (h, _) = generate(seed, clients, ops, 0.0);
        let outcome = check(&reg(), &h);
        prop_assert!(outcome.is_linearizable(), "{}", outcome);
    }

    #[test]
    fn stale_reads_are_always_caught(seed: u64, clients in 1u64..6, ops in 20usize..200) {
        let (h, injected) = generate(seed, clients, ops, 0.3);
        let outcome = check(&reg(), &h);
        if injected > 0 {
            prop_assert!(outcome.is_violation(), "{} stale reads missed", injected);
        } else {
            prop_assert!(outcome.is_linearizable(), "{}", outcome);
        }
    }
}

#[test]
fn large_correct_history_is_checked_quickly() {
    let (h, _) = generate(99, 4, 5_000, 0.0);
    assert!(check(&reg(), &h).is_linearizable());
}

#[test]
fn large_buggy_history_gives_a_short_counterexample() {
    let (h, injected) = generate(5, 4, 5_000, 0.002);
    assert!(injected > 0);
    let c = violation(check(&reg(), &h));
    let lines = c.timeline.lines().count();
    assert!(lines <= 43, "{lines} lines:\n{c}");
    assert!(c.culprit.is_some());
    println!("{c}");
}
