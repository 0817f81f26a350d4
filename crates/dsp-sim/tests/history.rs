//! Recording client histories under the simulator and checking them for linearizability.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dsp_core::example::{Config, Persist, PingPong, Request, Response};
use dsp_core::{DetRng, Input, Instant, NodeId, Outputs, PersistId, Protocol, RequestId};
use dsp_sim::lin::Model;
use dsp_sim::{
    Error, FaultPlan, NetworkConfig, Recorder, Sim, SimConfig, Workload, check, run_seeds,
};

/// A durable counter: `Incr` returns the new value, `Get` the current one.
struct CounterModel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Incr,
    Get,
}

impl Model for CounterModel {
    type State = u64;
    type Input = Op;
    type Output = u64;

    fn init(&self) -> u64 {
        0
    }

    fn step(&self, s: &u64, input: &Op, output: &u64) -> Option<u64> {
        match input {
            Op::Incr => (*output == s + 1).then_some(*output),
            Op::Get => (output == s).then_some(*s),
        }
    }

    fn step_unknown(&self, s: &u64, input: &Op) -> Vec<u64> {
        match input {
            Op::Incr => vec![s + 1],
            Op::Get => vec![*s],
        }
    }
}

/// Runs `clients` clients against node 1 of `sim` for `rounds` × 10 ms; each client waits for
/// its reply (giving up after 300 ms) before issuing its next operation.
fn drive<P: Protocol>(
    sim: &mut Sim<P>,
    rec: &mut Recorder<Op, u64>,
    clients: u64,
    rounds: u64,
    rng: &mut DetRng,
    request: impl Fn(Op) -> P::Request,
    response: impl Fn(&P::Response) -> u64,
) -> Result<(), Error> {
    for _ in 0..rounds {
        for c in 0..clients {
            if let Some(since) = rec.waiting_since(c)
                && sim.now() - since > Duration::from_millis(300)
            {
                rec.abandon(c);
            }
            if !rec.is_busy(c) && rng.gen_bool(0.5) {
                let op = if rng.gen_bool(0.5) { Op::Incr } else { Op::Get };
                rec.invoke(sim, c, NodeId(1), op, request(op));
            }
        }
        sim.run_for(Duration::from_millis(10))?;
        let foreign = rec.collect(sim, |_, r| Some(response(r)));
        assert!(foreign.is_empty());
    }
    Ok(())
}

fn pingpong_request(op: Op) -> Request {
    match op {
        Op::Incr => Request::Increment,
        Op::Get => Request::Get,
    }
}

fn pingpong_value(r: &Response) -> u64 {
    let Response::Value(v) = r;
    *v
}

#[test]
fn pingpong_counter_is_linearizable_under_crashes() {
    run_seeds(0..12, |seed| {
        let config = SimConfig {
            lose_unsynced_on_crash: seed % 2 == 0,
            persist_latency: (Duration::from_millis(1), Duration::from_millis(20)),
            ..SimConfig::with_seed(seed)
        };
        let mut sim = Sim::new(config, [NodeId(1)], |id, durable: &[Persist], _| {
            PingPong::recover(id, vec![], Config::default(), durable)
        })?;
        sim.set_fault_plan(FaultPlan {
            interval: (Duration::from_millis(20), Duration::from_millis(200)),
            max_down: Some(1),
            ..FaultPlan::crashes_only()
        })?;
        let mut rec = Recorder::new();
        let mut rng = DetRng::from_seed(seed ^ 0xC11E);
        drive(
            &mut sim,
            &mut rec,
            4,
            400,
            &mut rng,
            pingpong_request,
            pingpong_value,
        )?;
        let h = rec.history();
        let pending = h.ops().iter().filter(|o| o.returned.is_none()).count();
        if sim.report().crashes == 0 || pending == 0 || h.len() < 60 {
            return Err(Error::Failed(format!(
                "weak run: {} ops, {pending} pending",
                h.len()
            )));
        }
        let outcome = check(&CounterModel, h);
        if outcome.is_linearizable() {
            Ok(())
        } else {
            Err(Error::Failed(outcome.to_string()))
        }
    })
    .unwrap();
}

/// A counter with a durability bug: it replies *before* persisting.
#[derive(Debug)]
struct EagerCounter {
    value: u64,
    next: u64,
}

impl Protocol for EagerCounter {
    type Message = ();
    type Timer = ();
    type Persist = u64;
    type Request = Op;
    type Response = u64;
    type Event = ();

    fn handle(&mut self, _now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        if let Input::Request { id, request } = input {
            if request == Op::Incr {
                self.value += 1;
                out.reply(id, self.value); // BUG: the reply does not wait for the write
                self.next += 1;
                out.persist(PersistId(self.next), self.value);
            } else {
                out.reply(id, self.value);
            }
        }
    }
}

#[test]
fn acknowledged_write_lost_in_a_crash_is_caught() {
    let config = SimConfig {
        lose_unsynced_on_crash: true,
        persist_latency: (Duration::from_millis(50), Duration::from_millis(50)),
        network: NetworkConfig {
            delay: (Duration::from_millis(1), Duration::from_millis(1)),
            ..Default::default()
        },
        ..SimConfig::with_seed(1)
    };
    let mut sim = Sim::new(config, [NodeId(1)], |_, durable: &[u64], _| EagerCounter {
        value: durable.last().copied().unwrap_or(0),
        next: 0,
    })
    .unwrap();
    let mut rec: Recorder<Op, u64> = Recorder::new();
    rec.invoke(&mut sim, 1, NodeId(1), Op::Incr, Op::Incr);
    sim.run_for(Duration::from_millis(10)).unwrap();
    rec.collect(&mut sim, |_, v| Some(*v));
    sim.crash(NodeId(1)); // before the 50 ms write completes
    sim.restart(NodeId(1));
    let get: RequestId = rec.invoke(&mut sim, 1, NodeId(1), Op::Get, Op::Get);
    sim.run_for(Duration::from_millis(10)).unwrap();
    rec.collect(&mut sim, |_, v| Some(*v));
    assert_eq!(rec.history().ops()[1].output(), Some(&0), "{get:?}");
    let outcome = check(&CounterModel, rec.history());
    assert!(outcome.is_violation(), "{outcome}");
    println!("{outcome}");
}

#[test]
fn eager_counter_fails_some_seeds_under_random_crashes() {
    if dsp_sim::seed_from_env().unwrap().is_some() {
        return;
    }
    let result = run_seeds(0..10, |seed| {
        let config = SimConfig {
            lose_unsynced_on_crash: true,
            persist_latency: (Duration::from_millis(5), Duration::from_millis(40)),
            ..SimConfig::with_seed(seed)
        };
        let mut sim = Sim::new(config, [NodeId(1)], |_, durable: &[u64], _| EagerCounter {
            value: durable.last().copied().unwrap_or(0),
            next: 0,
        })?;
        sim.set_fault_plan(FaultPlan {
            max_down: Some(1),
            ..FaultPlan::crashes_only()
        })?;
        let mut rec = Recorder::new();
        let mut rng = DetRng::from_seed(seed);
        drive(&mut sim, &mut rec, 3, 200, &mut rng, |op| op, |v| *v)?;
        let outcome = check(&CounterModel, rec.history());
        if outcome.is_violation() {
            Err(Error::Failed(outcome.to_string()))
        } else {
            Ok(())
        }
    });
    let Err(Error::SeedsFailed { failures, .. }) = result else {
        panic!("bug not caught")
    };
    assert!(failures.len() >= 5, "{failures:?}");
}

#[test]
fn drive_runs_a_closed_loop_workload() {
    let config = SimConfig {
        network: NetworkConfig {
            drop_rate: 0.0,
            client_drop_rate: 0.1,
            ..Default::default()
        },
        ..SimConfig::with_seed(3)
    };
    let mut sim = Sim::new(
        config,
        [NodeId(1), NodeId(2)],
        |id, durable: &[Persist], _| PingPong::recover(id, vec![], Config::default(), durable),
    )
    .unwrap();
    let mut rec = Recorder::new();
    let workload = Workload {
        clients: 4,
        duration: Duration::from_secs(2),
        timeout: Duration::from_millis(100),
        ..Workload::default()
    };
    let mut rng = DetRng::from_seed(3);
    rec.drive(
        &mut sim,
        &workload,
        &mut rng,
        |rng, _client| {
            let op = if rng.gen_bool(0.5) { Op::Incr } else { Op::Get };
            Some((NodeId(1), op, pingpong_request(op)))
        },
        |_, r| Some(pingpong_value(r)),
    )
    .unwrap();
    assert_eq!(sim.now(), Instant::from_millis(2_000));
    let h = rec.history();
    let pending = h.ops().iter().filter(|o| o.returned.is_none()).count();
    assert!(h.len() > 150, "{}", h.len());
    assert!(
        pending > 10,
        "lost requests and replies leave pending operations: {pending}"
    );
    for c in 0..4 {
        // One operation at a time per client, unless it timed out.
        let ops: Vec<_> = h.ops().iter().filter(|o| o.client == c).collect();
        for w in ops.windows(2) {
            let prev_end = w[0]
                .returned
                .as_ref()
                .map_or(w[0].call + workload.timeout, |r| r.0);
            assert!(w[1].call >= prev_end, "client {c} overlapped itself");
        }
    }
    let outcome = check(&CounterModel, h);
    assert!(outcome.is_linearizable(), "{outcome}");
    let bad = Workload {
        clients: 0,
        ..Workload::default()
    };
    assert!(
        rec.drive(
            &mut sim,
            &bad,
            &mut rng,
            |_, _| None,
            |_, r| Some(pingpong_value(r))
        )
        .is_err()
    );
}
