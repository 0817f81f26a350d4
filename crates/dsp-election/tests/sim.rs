//! Bully and ring election under `dsp-sim`: many seeds with crashes, restarts, partitions,
//! delays, drops and duplicates; plus the split-brain demonstration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use dsp_core::{NodeId, Protocol};
use dsp_election::{
    Bully, ElectionConfig, Event, Fence, FencingToken, Generation, Persist, Ring, Role, Status,
};
use dsp_sim::{FaultPlan, NetworkConfig, Sim, SimConfig, run_seeds};

/// What the tests need from both protocols.
trait Node: Protocol<Persist = Persist, Event = Event> + 'static {
    fn build(
        id: NodeId,
        config: ElectionConfig,
        durable: &[Persist],
        rng: dsp_core::DetRng,
    ) -> Self;
    fn status(&self) -> Status;
    fn token(&self) -> Option<FencingToken>;
}

impl Node for Bully {
    fn build(id: NodeId, c: ElectionConfig, d: &[Persist], rng: dsp_core::DetRng) -> Self {
        Bully::recover(id, c, rng, d).expect("valid config")
    }
    fn status(&self) -> Status {
        Bully::status(self)
    }
    fn token(&self) -> Option<FencingToken> {
        self.fencing_token()
    }
}

impl Node for Ring {
    fn build(id: NodeId, c: ElectionConfig, d: &[Persist], rng: dsp_core::DetRng) -> Self {
        Ring::recover(id, c, rng, d).expect("valid config")
    }
    fn status(&self) -> Status {
        Ring::status(self)
    }
    fn token(&self) -> Option<FencingToken> {
        self.fencing_token()
    }
}

fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// A simulation of `n` nodes; `lose_unsynced` makes a crash lose every persist not yet synced
/// (otherwise a random prefix of them survives).
fn sim<P: Node>(seed: u64, n: u64, network: NetworkConfig, lose_unsynced: bool) -> Sim<P> {
    let config = ElectionConfig::with_members(ids(n));
    let sim_config = SimConfig {
        seed,
        network,
        lose_unsynced_on_crash: lose_unsynced,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(sim_config, ids(n), move |id, durable: &[Persist], rng| {
        P::build(id, config.clone(), durable, rng)
    })
    .unwrap();
    add_invariants(&mut sim);
    sim
}

/// Invariants checked after every step and fault.
fn add_invariants<P: Node>(sim: &mut Sim<P>) {
    // The durable generation of a node never goes down, across crashes and restarts too.
    let mut durable: BTreeMap<NodeId, Generation> = BTreeMap::new();
    sim.add_invariant("durable generation never decreases", move |view| {
        for (id, node) in view.up_nodes() {
            let now = node.status().durable;
            let before = durable.entry(id).or_insert(now);
            if now < *before {
                return Err(format!(
                    "{id}: durable generation went from {before} to {now}"
                ));
            }
            *before = now;
        }
        Ok(())
    });
    // One generation, one leader: over the whole run, no generation is ever led by two nodes
    // (so at any instant no two leaders share a generation).
    let mut led: BTreeMap<Generation, NodeId> = BTreeMap::new();
    sim.add_invariant("no two leaders with the same generation", move |view| {
        for (id, node) in view.up_nodes() {
            let s = node.status();
            if let (Role::Leader, Some(v)) = (s.role, s.leader) {
                let first = *led.entry(v.generation).or_insert(id);
                if first != id {
                    return Err(format!("{id} and {first} both led in {}", v.generation));
                }
            }
        }
        Ok(())
    });
    // A node's view never goes back to an older generation while it is up.
    let mut views: BTreeMap<NodeId, Generation> = BTreeMap::new();
    sim.add_invariant(
        "a leader view never moves to an older generation",
        move |view| {
            for id in view.node_ids() {
                match view.node(*id) {
                    None => {
                        views.remove(id);
                    }
                    Some(node) => {
                        if let Some(v) = node.status().leader {
                            let last = views.entry(*id).or_insert(v.generation);
                            if v.generation < *last {
                                return Err(format!(
                                    "{id}: view went from {last} to {}",
                                    v.generation
                                ));
                            }
                            *last = v.generation;
                        }
                    }
                }
            }
            Ok(())
        },
    );
}

/// Every up node agrees on one leader, which is up, leads, and is the highest up id.
fn agreed<P: Node>(sim: &Sim<P>) -> bool {
    let up: Vec<(NodeId, Status)> = sim
        .node_ids()
        .into_iter()
        .filter_map(|id| sim.node(id).map(|n| (id, n.status())))
        .collect();
    let Some(highest) = up.iter().map(|(id, _)| *id).max() else {
        return false;
    };
    let Some(view) = up.first().and_then(|(_, s)| s.leader) else {
        return false;
    };
    view.leader == highest
        && up.iter().all(|(id, s)| {
            s.leader == Some(view)
                && s.role
                    == if *id == view.leader {
                        Role::Leader
                    } else {
                        Role::Follower
                    }
        })
}

/// Generations reported in events never decrease per node, across restarts.
fn reported_generations_are_monotonic<P: Node>(sim: &Sim<P>) -> Result<(), String> {
    let mut last: BTreeMap<NodeId, Generation> = BTreeMap::new();
    for (at, node, event) in sim.events() {
        let g = match event {
            Event::LeaderElected { generation, .. } | Event::BecameLeader { generation } => {
                *generation
            }
            _ => continue,
        };
        let prev = last.entry(*node).or_insert(g);
        if g < *prev {
            return Err(format!("{node} reported {g} after {prev} at {at:?}"));
        }
        *prev = g;
    }
    Ok(())
}

/// One chaotic run: faults for `chaos`, then everything healed and restarted; the cluster must
/// converge on the highest id within `settle` and stay converged.
fn chaos_run<P: Node>(seed: u64, chaos: Duration, totals: &mut Totals) -> dsp_sim::Result<()> {
    let network = NetworkConfig {
        delay: (Duration::from_millis(1), Duration::from_millis(30)),
        drop_rate: 0.02,
        duplicate_rate: 0.02,
        ..NetworkConfig::default()
    };
    let mut sim = sim::<P>(seed, 5, network, seed.is_multiple_of(2));
    sim.set_fault_plan(FaultPlan {
        interval: (Duration::from_millis(100), Duration::from_millis(700)),
        ..FaultPlan::default()
    })?;
    sim.run_for(chaos)?;
    sim.clear_fault_plan();
    sim.recover_all();
    let fail = |what: &str, sim: &Sim<P>| {
        let statuses: Vec<_> = sim
            .node_ids()
            .into_iter()
            .filter_map(|id| sim.node(id).map(|n| n.status()))
            .collect();
        dsp_sim::Error::Failed(format!("{what}; statuses: {statuses:?}; {}", sim.report()))
    };
    if !sim.run_until(Duration::from_secs(15), agreed)? {
        return Err(fail("no agreement 15 s after healing", &sim));
    }
    sim.run_for(Duration::from_secs(2))?;
    if !agreed(&sim) {
        return Err(fail("agreement did not last", &sim));
    }
    reported_generations_are_monotonic(&sim).map_err(dsp_sim::Error::Failed)?;
    let report = sim.report();
    totals.runs += 1;
    totals.steps += report.steps;
    totals.crashes += report.crashes;
    totals.faults += report.faults;
    totals.dropped += report.dropped_random + report.dropped_partition;
    totals.elections += sim
        .events()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::BecameLeader { .. }))
        .count() as u64;
    Ok(())
}

/// What the seeds of a chaos test went through, to show the faults were real.
#[derive(Debug, Default)]
struct Totals {
    runs: u64,
    steps: u64,
    faults: u64,
    crashes: u64,
    dropped: u64,
    elections: u64,
}

fn chaos_seeds<P: Node>(seeds: std::ops::Range<u64>, chaos: Duration) {
    let mut totals = Totals::default();
    run_seeds(seeds.clone(), |seed| {
        chaos_run::<P>(seed, chaos, &mut totals)
    })
    .unwrap();
    eprintln!("{}: {totals:?}", std::any::type_name::<P>());
    if dsp_sim::seed_from_env().unwrap().is_none() {
        assert_eq!(totals.runs, seeds.end - seeds.start);
        assert!(totals.crashes >= totals.runs / 2, "{totals:?}");
        assert!(totals.elections >= totals.runs * 3, "{totals:?}");
    }
}

fn seeds() -> std::ops::Range<u64> {
    0..1_000
}

#[test]
fn bully_converges_after_chaos_over_1000_seeds() {
    chaos_seeds::<Bully>(seeds(), Duration::from_secs(8));
}

#[test]
fn ring_converges_after_chaos_over_1000_seeds() {
    chaos_seeds::<Ring>(seeds(), Duration::from_secs(8));
}

/// The long version: `cargo test -p dsp-election --release --test sim -- --ignored`.
#[test]
#[ignore = "long stress run (10,000 seeds per protocol)"]
fn both_converge_after_longer_chaos_over_10000_seeds() {
    chaos_seeds::<Bully>(0..10_000, Duration::from_secs(20));
    chaos_seeds::<Ring>(0..10_000, Duration::from_secs(20));
}

fn stable_start<P: Node>(seed: u64) -> Sim<P> {
    let mut sim = sim::<P>(seed, 5, NetworkConfig::default(), false);
    assert!(sim.run_until(Duration::from_secs(5), agreed).unwrap());
    sim
}

fn leader_of<P: Node>(sim: &Sim<P>, id: u64) -> Option<(Generation, FencingToken)> {
    let node = sim.node(NodeId(id))?;
    let s = node.status();
    match (s.role, s.leader) {
        (Role::Leader, Some(v)) => Some((v.generation, node.token()?)),
        _ => None,
    }
}

/// Bully and ring cannot prevent split brain: a partition yields two leaders (in different
/// generations), and only fencing keeps the older one away from a shared resource.
fn split_brain<P: Node>() {
    let mut sim = stable_start::<P>(7);
    let (g_old, t_old) = leader_of(&sim, 5).expect("n5 leads");

    // Cut {1,2,3} off from {4,5}: n5 keeps leading its side, n3 gets elected on the other.
    let (a, b) = ([NodeId(1), NodeId(2), NodeId(3)], [NodeId(4), NodeId(5)]);
    sim.partition(&[&a, &b]);
    let two_leaders = sim
        .run_until(Duration::from_secs(10), |s| {
            let follows = |id, leader| {
                s.node(NodeId(id))
                    .and_then(|n| n.status().leader)
                    .map(|v| v.leader)
                    == Some(NodeId(leader))
            };
            leader_of(s, 5).is_some()
                && leader_of(s, 3).is_some()
                && follows(1, 3)
                && follows(2, 3)
                && follows(4, 5)
        })
        .unwrap();
    assert!(
        two_leaders,
        "expected a second leader on the other side of the partition"
    );
    let (g5, t5) = leader_of(&sim, 5).unwrap();
    let (g3, t3) = leader_of(&sim, 3).unwrap();
    assert_eq!((g5, t5), (g_old, t_old), "n5 never noticed the partition");
    assert!(
        g3 > g5,
        "the new leader has a newer generation: {g3} vs {g5}"
    );

    // A resource both can reach accepts the newer leader and then rejects the older one.
    let mut fence = Fence::new();
    fence.check(t5).unwrap(); // before the new leader shows up, n5's writes still land
    fence.check(t3).unwrap();
    let err = fence.check(t5).unwrap_err();
    assert!(matches!(err, dsp_clock::Error::Stale { .. }), "{err:?}");

    // After healing, the highest id takes over again, above both generations.
    sim.heal();
    assert!(sim.run_until(Duration::from_secs(10), agreed).unwrap());
    let (g_new, t_new) = leader_of(&sim, 5).unwrap();
    assert!(g_new > g3);
    fence.check(t_new).unwrap();
}

#[test]
fn bully_partition_gives_two_leaders_and_the_fence_keeps_only_the_newer() {
    split_brain::<Bully>();
}

#[test]
fn ring_partition_gives_two_leaders_and_the_fence_keeps_only_the_newer() {
    split_brain::<Ring>();
}

/// Killing the leader: the next highest takes over in a newer generation; the old leader takes
/// over again when it comes back (the bully and ring rule: the highest live id wins).
fn leader_crash<P: Node>() {
    let mut sim = stable_start::<P>(11);
    let (g5, _) = leader_of(&sim, 5).unwrap();
    sim.crash(NodeId(5));
    assert!(sim.run_until(Duration::from_secs(10), agreed).unwrap());
    let (g4, _) = leader_of(&sim, 4).expect("n4 took over");
    assert!(g4 > g5);
    sim.restart(NodeId(5));
    assert!(sim.run_until(Duration::from_secs(10), agreed).unwrap());
    let (g5_again, _) = leader_of(&sim, 5).expect("n5 took over again");
    assert!(g5_again > g4);
    reported_generations_are_monotonic(&sim).unwrap();
}

#[test]
fn bully_reelects_after_leader_crash_and_restarted_highest_takes_over() {
    leader_crash::<Bully>();
}

#[test]
fn ring_reelects_after_leader_crash_and_restarted_highest_takes_over() {
    leader_crash::<Ring>();
}

#[test]
fn ring_skips_a_crashed_successor() {
    let mut sim = stable_start::<Ring>(3);
    // n2 is the successor of n1; with it and the leader down, elections must route around it.
    sim.crash(NodeId(2));
    sim.crash(NodeId(5));
    assert!(sim.run_until(Duration::from_secs(10), agreed).unwrap());
    assert!(leader_of(&sim, 4).is_some());
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut sim = sim::<Bully>(seed, 5, NetworkConfig::default(), false);
        sim.set_fault_plan(FaultPlan::default()).unwrap();
        sim.run_for(Duration::from_secs(3)).unwrap();
        sim.trace_hash()
    };
    assert_eq!(run(42), run(42));
}

/// A restarted highest node takes over in one step: one election, one new generation, and no
/// churn afterwards (out-of-date ring rounds are discarded).
fn restart_takes_over_once<P: Node>() {
    for seed in 0..20 {
        let mut sim = stable_start::<P>(seed);
        sim.crash(NodeId(5));
        assert!(sim.run_until(Duration::from_secs(10), agreed).unwrap());
        let before = sim.events().len();
        sim.restart(NodeId(5));
        assert!(sim.run_until(Duration::from_secs(10), agreed).unwrap());
        sim.run_for(Duration::from_secs(3)).unwrap();
        assert!(agreed(&sim));
        let became: Vec<_> = sim.events()[before..]
            .iter()
            .filter(|(_, _, e)| matches!(e, Event::BecameLeader { .. }))
            .collect();
        assert_eq!(became.len(), 1, "seed {seed}: {became:?}");
        assert_eq!(became[0].1, NodeId(5));
    }
}

#[test]
fn bully_restarted_highest_takes_over_without_churn() {
    restart_takes_over_once::<Bully>();
}

#[test]
fn ring_restarted_highest_takes_over_without_churn() {
    restart_takes_over_once::<Ring>();
}
