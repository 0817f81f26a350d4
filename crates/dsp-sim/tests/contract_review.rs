//! Contract-review probes: the simulator obeys the driver rules of `dsp_core::protocol` under
//! random crashes, restarts, clock skew and pauses, checked by a protocol that trusts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::Duration;

use dsp_core::{DetRng, Input, Instant, NodeId, Outputs, PersistId, Protocol};
use dsp_sim::{FaultPlan, NetworkConfig, Sim, SimConfig, run_seeds};

const TIMERS: u8 = 4;

/// Keeps its own books of what the driver owes it and panics on any breach:
/// - timers carry no token, so a driver that fires a replaced, cancelled or previous
///   incarnation's timer, fires one twice, or fires it early is caught (rule 6);
/// - persist ids restart at 1 in every incarnation, so a previous incarnation's completion, a
///   duplicate or an out-of-order one is caught (rule 5);
/// - `now` must never go backwards (rule 1), `Start` must come first and once (rule 2);
/// - every event names a persist emitted before it; the invariant checks it is durable (rule 3).
struct Checker {
    id: NodeId,
    rng: DetRng,
    started: bool,
    last_now: Instant,
    pending: Vec<Option<Instant>>,
    next_persist: u64,
    in_flight: VecDeque<(PersistId, u64)>,
    next_value: u64,
    fired: u64,
}

impl Checker {
    fn new(id: NodeId, durable: &[u64], rng: DetRng) -> Self {
        // Rule 7: the durable persists are a prefix of what this node emitted, in order.
        for w in durable.windows(2) {
            assert!(
                w[0] < w[1],
                "{id}: durable persists out of order: {durable:?}"
            );
        }
        Self {
            id,
            rng,
            started: false,
            last_now: Instant::ZERO,
            pending: vec![None; usize::from(TIMERS)],
            next_persist: 1,
            in_flight: VecDeque::new(),
            next_value: durable.last().map_or(1, |v| v + 1),
            fired: 0,
        }
    }

    fn set(&mut self, now: Instant, t: u8, out: &mut Outputs<Self>) {
        // Sometimes in the past, sometimes now, mostly in the future.
        let at = match self.rng.gen_range(0..10u64) {
            0 => Instant::from_nanos(now.as_nanos().saturating_sub(1_000_000)),
            1 => now,
            _ => {
                now + self
                    .rng
                    .gen_duration(Duration::from_micros(1)..Duration::from_millis(30))
            }
        };
        self.pending[usize::from(t)] = Some(at);
        out.set_timer(t, at);
    }

    fn persist_then_event(&mut self, out: &mut Outputs<Self>) {
        let id = PersistId(self.next_persist);
        self.next_persist += 1;
        let v = self.next_value;
        self.next_value += 1;
        self.in_flight.push_back((id, v));
        out.persist(id, v);
        out.event(v);
    }

    fn churn(&mut self, now: Instant, out: &mut Outputs<Self>) {
        for _ in 0..2 {
            let t = u8::try_from(self.rng.gen_range(0..u64::from(TIMERS))).unwrap();
            match self.rng.gen_range(0..4u64) {
                0 => {
                    self.pending[usize::from(t)] = None;
                    out.cancel_timer(t);
                }
                1 => self.persist_then_event(out),
                _ => self.set(now, t, out),
            }
        }
    }
}

impl Protocol for Checker {
    type Message = ();
    type Timer = u8;
    type Persist = u64;
    type Request = ();
    type Response = ();
    type Event = u64;

    fn handle(&mut self, now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        let id = self.id;
        assert!(now >= self.last_now, "{id}: time went backwards");
        self.last_now = now;
        if let Input::Start = input {
            assert!(!self.started, "{id}: Start delivered twice");
            self.started = true;
            for t in 0..TIMERS {
                self.set(now, t, out);
            }
            return;
        }
        assert!(self.started, "{id}: {input:?} before Start");
        match input {
            Input::Timer(t) => {
                let Some(deadline) = self.pending[usize::from(t)].take() else {
                    panic!(
                        "{id}: timer {t} fired but none is pending (replaced, cancelled, \
                            fired already or from a previous incarnation)"
                    );
                };
                assert!(
                    now >= deadline,
                    "{id}: timer {t} fired early: {now:?} < {deadline:?}"
                );
                self.fired += 1;
                self.churn(now, out);
                if self.pending[usize::from(t)].is_none() {
                    self.set(now, t, out); // keep the timers going
                }
            }
            Input::Persisted(p) => {
                let front = self.in_flight.pop_front();
                assert_eq!(
                    front.map(|(p, _)| p),
                    Some(p),
                    "{id}: Persisted out of order, twice or from a previous incarnation"
                );
            }
            Input::Request { .. } | Input::Message { .. } => self.churn(now, out),
            Input::Start => {}
        }
    }
}

fn checkers(config: SimConfig, n: u64) -> Sim<Checker> {
    Sim::new(config, (1..=n).map(NodeId), Checker::new).unwrap()
}

/// Every driver rule the protocol can observe, over many seeds of crashes (losing or keeping
/// un-synced persists), restarts, clock skew and drift, and pauses.
#[test]
fn sim_keeps_every_observable_driver_rule_under_random_faults() {
    run_seeds(0..60, |seed| {
        let config = SimConfig {
            network: NetworkConfig {
                drop_rate: 0.05,
                duplicate_rate: 0.05,
                ..Default::default()
            },
            persist_latency: (Duration::from_micros(100), Duration::from_millis(8)),
            lose_unsynced_on_crash: seed % 2 == 0,
            ..SimConfig::with_seed(seed)
        };
        let mut sim = checkers(config, 3);
        sim.set_fault_plan(FaultPlan {
            interval: (Duration::from_millis(1), Duration::from_millis(20)),
            skew: 3,
            pause: 2,
            max_down: Some(2),
            ..FaultPlan::default()
        })?;
        sim.add_invariant("events only after their persist is durable", |view| {
            for (_, id, v) in view.events() {
                if !view.durable(*id).contains(v) {
                    return Err(format!("{id}: event {v} but persist {v} is not durable"));
                }
            }
            Ok(())
        });
        for i in 0..100u64 {
            sim.request(NodeId(1 + i % 3), ());
            sim.run_for(Duration::from_millis(5))?;
        }
        sim.clear_fault_plan();
        sim.recover_all();
        sim.run_for(Duration::from_millis(200))?;
        let r = sim.report();
        assert!(
            r.crashes > 0 && r.restarts > 0,
            "seed {seed}: no crashes: {r}"
        );
        assert!(r.timers_fired > 20, "seed {seed}: few timers: {r}");
        Ok(())
    })
    .unwrap();
}

/// A timer replaced after a clock change left two queue entries for its first setting still
/// fires once, at the replacement's deadline, never at the old one.
#[test]
fn replaced_timer_fires_once_even_after_a_clock_skew_reschedule() {
    let mut sim = checkers(SimConfig::with_seed(7), 1);
    let id = NodeId(1);
    // Slow the clock: every pending timer gets a second queue entry.
    sim.set_clock_skew(id, 0, -300_000);
    sim.run_for(Duration::from_millis(1)).unwrap();
    // Requests churn (replace / cancel) the timers while both entries are queued.
    for _ in 0..20 {
        sim.request(id, ());
        sim.run_for(Duration::from_millis(3)).unwrap();
    }
    sim.set_clock_skew(id, 5_000_000, 200_000);
    sim.run_for(Duration::from_millis(500)).unwrap();
    assert!(sim.node(id).unwrap().fired > 0);
}
