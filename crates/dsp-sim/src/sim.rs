//! The simulator: nodes, virtual time, the network, persistence and faults.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::Duration;

use dsp_core::protocol::PersistGate;
use dsp_core::{DetRng, Input, Instant, NodeId, Output, Outputs, PersistId, Protocol, RequestId};

use crate::nemesis::{FaultAction, FaultPlan};
use crate::{Error, Result, SimConfig};

/// The factory that builds a node from its id, its durable persists (oldest first; empty for a
/// fresh node) and a random generator of its own.
type Factory<P> = Box<dyn FnMut(NodeId, &[<P as Protocol>::Persist], DetRng) -> P>;

/// A named invariant.
type Invariant<P> = (
    String,
    Box<dyn FnMut(&SimView<'_, P>) -> Result<(), String>>,
);

/// The largest clock drift [`Sim::set_clock_skew`] accepts, in parts per million (±50 %).
pub const MAX_DRIFT_PPM: i64 = 500_000;

/// A fault the simulator injected, as recorded in [`Sim::faults`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The node crashed: its volatile state, timers and un-synced persists are gone.
    Crash {
        /// The node.
        node: NodeId,
        /// Un-synced persists that became durable anyway.
        survived: usize,
        /// Un-synced persists that were lost.
        lost: usize,
    },
    /// The node was rebuilt from its durable persists and started.
    Restart {
        /// The node.
        node: NodeId,
        /// How many durable persists it was rebuilt from.
        durable: usize,
    },
    /// The network was split into these groups (nodes not listed are isolated).
    Partition {
        /// The groups; messages flow only within a group.
        groups: Vec<Vec<NodeId>>,
    },
    /// Messages from `from` to `to` are dropped (one way).
    Block {
        /// The sender whose messages are dropped.
        from: NodeId,
        /// The receiver that no longer hears `from`.
        to: NodeId,
    },
    /// Every partition and block was removed.
    Heal,
    /// The node was frozen (a stop-the-world pause: GC, VM migration, SIGSTOP): nothing is
    /// delivered to it, none of its timers fire and its disk stands still until `until`;
    /// its clock keeps running.
    Pause {
        /// The node.
        node: NodeId,
        /// When it resumes.
        until: Instant,
    },
    /// The node's clock was skewed.
    ClockSkew {
        /// The node.
        node: NodeId,
        /// Offset added to virtual time, in nanoseconds.
        offset_nanos: i64,
        /// Rate error in parts per million.
        drift_ppm: i64,
    },
}

/// Counters and outcome of a run, from [`Sim::report`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The seed of the run.
    pub seed: u64,
    /// Events processed.
    pub steps: u64,
    /// Virtual time reached.
    pub now: Instant,
    /// Messages nodes sent (each duplicate counts once more in `duplicated`).
    pub messages_sent: u64,
    /// Messages delivered to a node.
    pub messages_delivered: u64,
    /// Messages lost by the network's random drops.
    pub dropped_random: u64,
    /// Messages dropped by a partition or a one-way block.
    pub dropped_partition: u64,
    /// Messages dropped because the recipient was down (or is not a node of the simulation).
    pub dropped_down: u64,
    /// Messages the network duplicated.
    pub duplicated: u64,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Persists that became durable.
    pub persists: u64,
    /// Un-synced persists lost in crashes.
    pub persists_lost: u64,
    /// Client requests issued.
    pub requests: u64,
    /// Client requests lost (node down, or `client_drop_rate`).
    pub requests_dropped: u64,
    /// Replies that reached the client.
    pub replies: u64,
    /// Replies lost (`client_drop_rate`).
    pub replies_dropped: u64,
    /// Faults injected (crashes, restarts, partitions, blocks, heals, skews).
    pub faults: u64,
    /// Crashes among `faults`.
    pub crashes: u64,
    /// Restarts among `faults`.
    pub restarts: u64,
    /// The invariant violation that stopped the run, if any.
    pub violation: Option<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} | {} steps to t={:?} | msgs sent {} delivered {} dropped {}/{}/{} \
             (random/partition/down) dup {} | timers {} | persists {} lost {} | \
             requests {} (dropped {}) replies {} (dropped {}) | faults {} (crash {} restart {})",
            self.seed,
            self.steps,
            self.now,
            self.messages_sent,
            self.messages_delivered,
            self.dropped_random,
            self.dropped_partition,
            self.dropped_down,
            self.duplicated,
            self.timers_fired,
            self.persists,
            self.persists_lost,
            self.requests,
            self.requests_dropped,
            self.replies,
            self.replies_dropped,
            self.faults,
            self.crashes,
            self.restarts,
        )?;
        if let Some(v) = &self.violation {
            write!(f, " | VIOLATION: {v}")?;
        }
        Ok(())
    }
}

/// A reply that reached the client, with the virtual time it arrived.
#[derive(Debug)]
pub struct Reply<P: Protocol> {
    /// The request it answers.
    pub id: RequestId,
    /// The node that answered.
    pub from: NodeId,
    /// The answer.
    pub response: P::Response,
    /// When the client received it.
    pub at: Instant,
}

enum Ev<P: Protocol> {
    Deliver {
        from: NodeId,
        to: usize,
        msg: P::Message,
    },
    Timer {
        node: usize,
        inc: u64,
        token: u64,
    },
    PersistDone {
        node: usize,
        inc: u64,
    },
    Request {
        node: usize,
        id: RequestId,
        request: P::Request,
    },
    Reply {
        from: NodeId,
        id: RequestId,
        response: P::Response,
    },
    Nemesis {
        epoch: u64,
    },
}

struct Scheduled<P: Protocol> {
    at: Instant,
    seq: u64,
    ev: Ev<P>,
}

impl<P: Protocol> PartialEq for Scheduled<P> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<P: Protocol> Eq for Scheduled<P> {}
impl<P: Protocol> PartialOrd for Scheduled<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<P: Protocol> Ord for Scheduled<P> {
    // Reversed: the BinaryHeap pops the earliest (time, sequence number) first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

struct TimerEntry<T> {
    timer: T,
    deadline: Instant,
    token: u64,
}

struct Slot<P: Protocol> {
    id: NodeId,
    node: Option<P>,
    incarnation: u64,
    gate: PersistGate<P>,
    timers: Vec<TimerEntry<P::Timer>>,
    next_token: u64,
    in_flight: VecDeque<(PersistId, P::Persist)>,
    last_persist_done: Instant,
    durable: Vec<P::Persist>,
    offset_nanos: i64,
    drift_ppm: i64,
    last_local: Instant,
    paused_until: Instant,
}

impl<P: Protocol> Slot<P> {
    fn raw_local(&self, global: Instant) -> i128 {
        let g = i128::from(global.as_nanos());
        g * (1_000_000 + i128::from(self.drift_ppm)) / 1_000_000 + i128::from(self.offset_nanos)
    }

    /// The node's clock reading at virtual time `global`, never below an earlier reading.
    fn local_now(&mut self, global: Instant) -> Instant {
        let raw = self.raw_local(global).clamp(0, i128::from(u64::MAX));
        let local = Instant::from_nanos(u64::try_from(raw).unwrap_or(u64::MAX));
        if local > self.last_local {
            self.last_local = local;
        }
        self.last_local
    }

    /// The earliest virtual time (not before `now`) at which the node's clock reads `local`.
    fn global_for(&self, local: Instant, now: Instant) -> Instant {
        let target = i128::from(local.as_nanos()) - i128::from(self.offset_nanos);
        let denom = 1_000_000 + i128::from(self.drift_ppm);
        let g = if target <= 0 {
            0
        } else {
            (target * 1_000_000 + denom - 1) / denom
        };
        let g = Instant::from_nanos(u64::try_from(g).unwrap_or(u64::MAX));
        g.max(now)
    }
}

/// Read access to a simulation, handed to invariants.
pub struct SimView<'a, P: Protocol> {
    sim: &'a Sim<P>,
}

impl<'a, P: Protocol> SimView<'a, P> {
    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.sim.now
    }

    /// The node, or `None` while it is crashed (or unknown).
    pub fn node(&self, id: NodeId) -> Option<&'a P> {
        self.sim.node(id)
    }

    /// Every node that is up, in id order.
    pub fn up_nodes(&self) -> impl Iterator<Item = (NodeId, &'a P)> + 'a {
        self.sim
            .slots
            .iter()
            .filter_map(|s| s.node.as_ref().map(|n| (s.id, n)))
    }

    /// Every node id, up or not, in order.
    pub fn node_ids(&self) -> &'a [NodeId] {
        &self.sim.ids
    }

    /// Whether the node is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.sim.is_up(id)
    }

    /// Everything the nodes reported so far, in order.
    pub fn events(&self) -> &'a [(Instant, NodeId, P::Event)] {
        &self.sim.events
    }

    /// The node's durable persists, oldest first.
    pub fn durable(&self, id: NodeId) -> &'a [P::Persist] {
        self.sim.durable(id)
    }

    /// The whole simulation.
    pub fn sim(&self) -> &'a Sim<P> {
        self.sim
    }
}

/// A deterministic simulation of protocol nodes.
///
/// Everything happens in one thread, in virtual time, driven by one event queue ordered by
/// (time, sequence number); every random choice comes from one [`DetRng`] seeded with
/// [`SimConfig::seed`] and forked per purpose (network, persistence, nodes, faults, clients), so
/// the same seed and the same calls replay the same run exactly.
///
/// The simulator is a driver of the [`dsp_core::protocol`] contract:
///
/// - each node's outputs go through a [`PersistGate`]: sends, replies and events wait until every
///   earlier persist is durable; timer outputs never wait;
/// - persists of a node complete in order, after a latency drawn from
///   [`SimConfig::persist_latency`], and [`Input::Persisted`] follows each, in order;
/// - `SetTimer` with an equal timer replaces the pending one; a timer fires no earlier than its
///   deadline as read on the node's own (possibly skewed) clock;
/// - a crash drops the node value, its gate, its timers and (per
///   [`SimConfig::lose_unsynced_on_crash`]) its un-synced persists; [`Sim::restart`] rebuilds it
///   with the factory from exactly its durable persists and delivers [`Input::Start`] first.
///
/// Messages already in the network when a node crashes are still delivered if they arrive after
/// it restarted (as with a datagram network); those arriving while it is down are dropped.
pub struct Sim<P: Protocol> {
    config: SimConfig,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Scheduled<P>>,
    slots: Vec<Slot<P>>,
    ids: Vec<NodeId>,
    factory: Factory<P>,
    net_rng: DetRng,
    persist_rng: DetRng,
    node_rng: DetRng,
    fault_rng: DetRng,
    client_rng: DetRng,
    blocked: Vec<bool>,
    any_blocked: bool,
    next_request: u64,
    replies: Vec<Reply<P>>,
    events: Vec<(Instant, NodeId, P::Event)>,
    invariants: Vec<Invariant<P>>,
    violation: Option<Error>,
    faults: Vec<(Instant, Fault)>,
    report: Report,
    hash: u64,
    out: Outputs<P>,
    scratch: Vec<Output<P>>,
    plan: Option<FaultPlan>,
    plan_epoch: u64,
}

impl<P: Protocol> fmt::Debug for Sim<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.config.seed)
            .field("now", &self.now)
            .field("nodes", &self.ids)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

fn mix(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(FNV_PRIME).rotate_left(5)
}

impl<P: Protocol> Sim<P> {
    /// Builds a simulation of `nodes`, each made by `factory` with an empty durable state, and
    /// delivers [`Input::Start`] to each, in id order, at time zero.
    ///
    /// `factory(id, durable, rng)` is also called on every [`Sim::restart`], with the node's
    /// durable persists in the order they were emitted.
    pub fn new(
        config: SimConfig,
        nodes: impl IntoIterator<Item = NodeId>,
        factory: impl FnMut(NodeId, &[P::Persist], DetRng) -> P + 'static,
    ) -> Result<Self> {
        config.validate()?;
        let mut ids: Vec<NodeId> = nodes.into_iter().collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::DuplicateNode(w[0]));
        }
        let mut root = DetRng::from_seed(config.seed);
        let n = ids.len();
        let mut sim = Sim {
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::with_capacity(n),
            factory: Box::new(factory),
            net_rng: root.fork(1),
            persist_rng: root.fork(2),
            node_rng: root.fork(3),
            fault_rng: root.fork(4),
            client_rng: root.fork(5),
            blocked: vec![false; n * n],
            any_blocked: false,
            next_request: 1,
            replies: Vec::new(),
            events: Vec::new(),
            invariants: Vec::new(),
            violation: None,
            faults: Vec::new(),
            report: Report {
                seed: config.seed,
                ..Report::default()
            },
            hash: 0xCBF2_9CE4_8422_2325 ^ config.seed,
            out: Outputs::new(),
            scratch: Vec::new(),
            plan: None,
            plan_epoch: 0,
            ids: ids.clone(),
            config,
        };
        for &id in &ids {
            sim.slots.push(Slot {
                id,
                node: None,
                incarnation: 0,
                gate: PersistGate::new(),
                timers: Vec::new(),
                next_token: 0,
                in_flight: VecDeque::new(),
                last_persist_done: Instant::ZERO,
                durable: Vec::new(),
                offset_nanos: 0,
                drift_ppm: 0,
                last_local: Instant::ZERO,
                paused_until: Instant::ZERO,
            });
        }
        for idx in 0..n {
            sim.boot(idx);
        }
        Ok(sim)
    }

    fn index(&self, id: NodeId) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    fn schedule(&mut self, at: Instant, ev: Ev<P>) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn trace(&self, what: fmt::Arguments<'_>) {
        if self.config.trace {
            eprintln!(
                "[dsp-sim seed={} t={:?}] {what}",
                self.config.seed, self.now
            );
        }
    }

    /// Builds the node at `idx` from its durable state and starts it.
    fn boot(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let id = slot.id;
        let stream = id.0.rotate_left(20) ^ slot.incarnation;
        let rng = self.node_rng.fork(stream);
        let node = (self.factory)(id, &slot.durable, rng);
        self.slots[idx].node = Some(node);
        self.trace(format_args!(
            "{id} start (durable {})",
            self.slots[idx].durable.len()
        ));
        self.feed(idx, Input::Start);
    }

    /// Hands one input to the node at `idx` (if up) and carries out what it released.
    fn feed(&mut self, idx: usize, input: Input<P>) {
        let slot = &mut self.slots[idx];
        if slot.node.is_none() {
            return;
        }
        let local = slot.local_now(self.now);
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        node.handle(local, input, &mut self.out);
        slot.gate.extend(&mut self.out);
        self.flush(idx);
    }

    fn flush(&mut self, idx: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.extend(self.slots[idx].gate.ready());
        for o in scratch.drain(..) {
            self.carry_out(idx, o);
        }
        self.scratch = scratch;
    }

    fn delay(&mut self) -> Duration {
        let net = &self.config.network;
        let (lo, hi) = if net.slow_rate > 0.0 && self.net_rng.gen_bool(net.slow_rate) {
            net.slow_delay
        } else {
            net.delay
        };
        self.net_rng.gen_duration(lo..hi)
    }

    fn is_blocked(&self, from: usize, to: usize) -> bool {
        self.any_blocked && self.blocked[from * self.ids.len() + to]
    }

    fn carry_out(&mut self, idx: usize, output: Output<P>) {
        let from = self.slots[idx].id;
        match output {
            Output::Send { to, msg } => {
                self.report.messages_sent += 1;
                let Some(t) = self.index(to) else {
                    self.report.dropped_down += 1;
                    self.trace(format_args!("{from} -> {to} DROP (unknown node) {msg:?}"));
                    return;
                };
                if self.is_blocked(idx, t) {
                    self.report.dropped_partition += 1;
                    self.trace(format_args!("{from} -> {to} DROP (partition) {msg:?}"));
                    return;
                }
                if self.net_rng.gen_bool(self.config.network.drop_rate) {
                    self.report.dropped_random += 1;
                    self.trace(format_args!("{from} -> {to} DROP (random) {msg:?}"));
                    return;
                }
                if self.net_rng.gen_bool(self.config.network.duplicate_rate) {
                    self.report.duplicated += 1;
                    let at = self.now + self.delay();
                    self.trace(format_args!("{from} -> {to} DUP {msg:?}"));
                    self.schedule(
                        at,
                        Ev::Deliver {
                            from,
                            to: t,
                            msg: msg.clone(),
                        },
                    );
                }
                let at = self.now + self.delay();
                self.schedule(at, Ev::Deliver { from, to: t, msg });
            }
            Output::Persist { id, op } => {
                let (lo, hi) = self.config.persist_latency;
                let latency = self.persist_rng.gen_duration(lo..hi);
                let slot = &mut self.slots[idx];
                let done = (self.now + latency).max(slot.last_persist_done);
                slot.last_persist_done = done;
                slot.in_flight.push_back((id, op));
                let inc = slot.incarnation;
                self.schedule(done, Ev::PersistDone { node: idx, inc });
            }
            Output::SetTimer { timer, at } => {
                let now = self.now;
                let slot = &mut self.slots[idx];
                slot.next_token += 1;
                let token = slot.next_token;
                match slot.timers.iter_mut().find(|e| e.timer == timer) {
                    Some(e) => {
                        e.deadline = at;
                        e.token = token;
                    }
                    None => slot.timers.push(TimerEntry {
                        timer,
                        deadline: at,
                        token,
                    }),
                }
                let global = slot.global_for(at, now);
                let inc = slot.incarnation;
                self.schedule(
                    global,
                    Ev::Timer {
                        node: idx,
                        inc,
                        token,
                    },
                );
            }
            Output::CancelTimer(timer) => {
                self.slots[idx].timers.retain(|e| e.timer != timer);
            }
            Output::Reply { id, response } => {
                if self
                    .client_rng
                    .gen_bool(self.config.network.client_drop_rate)
                {
                    self.report.replies_dropped += 1;
                    self.trace(format_args!("{from} reply {id:?} DROP {response:?}"));
                    return;
                }
                let at = self.now + self.delay();
                self.schedule(at, Ev::Reply { from, id, response });
            }
            Output::Event(event) => {
                self.trace(format_args!("{from} event {event:?}"));
                self.hash = mix(self.hash, 0xE0 ^ from.0);
                self.events.push((self.now, from, event));
            }
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The configuration the simulation runs with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The seed of the run.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// Processes the next scheduled event, advancing virtual time to it. Returns `false` when
    /// nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(Scheduled { at, seq, ev }) = self.queue.pop() else {
            return false;
        };
        debug_assert!(at >= self.now);
        self.now = at;
        let target = match &ev {
            Ev::Deliver { to, .. } => Some(*to),
            Ev::Timer { node, .. } | Ev::PersistDone { node, .. } | Ev::Request { node, .. } => {
                Some(*node)
            }
            Ev::Reply { .. } | Ev::Nemesis { .. } => None,
        };
        if let Some(t) = target {
            let slot = &self.slots[t];
            if slot.paused_until > at && slot.node.is_some() {
                // Frozen: everything bound for the node waits, in order, until it resumes.
                let until = slot.paused_until;
                self.hash = mix(self.hash, 0x60 ^ t as u64);
                self.schedule(until, ev);
                return true;
            }
        }
        self.report.steps += 1;
        self.hash = mix(mix(self.hash, at.as_nanos()), seq);
        match ev {
            Ev::Deliver { from, to, msg } => {
                self.hash = mix(self.hash, 0x10 ^ from.0 ^ ((to as u64) << 32));
                let fi = self.index(from);
                if self.slots[to].node.is_none() {
                    self.report.dropped_down += 1;
                    self.trace(format_args!(
                        "{from} -> {} DROP (down) {msg:?}",
                        self.ids[to]
                    ));
                } else if fi.is_some_and(|f| self.is_blocked(f, to)) {
                    self.report.dropped_partition += 1;
                    self.trace(format_args!(
                        "{from} -> {} DROP (partition) {msg:?}",
                        self.ids[to]
                    ));
                } else {
                    self.report.messages_delivered += 1;
                    self.trace(format_args!("{from} -> {} {msg:?}", self.ids[to]));
                    self.feed(to, Input::Message { from, msg });
                }
            }
            Ev::Timer { node, inc, token } => {
                let now = self.now;
                let slot = &mut self.slots[node];
                if slot.incarnation != inc || slot.node.is_none() {
                    return true;
                }
                let Some(pos) = slot.timers.iter().position(|e| e.token == token) else {
                    return true; // replaced or cancelled
                };
                let local = slot.local_now(now);
                let deadline = slot.timers[pos].deadline;
                if local < deadline {
                    // The node's clock was slowed since the timer was set: not due yet.
                    let again = slot.global_for(deadline, now + Duration::from_nanos(1));
                    self.schedule(again, Ev::Timer { node, inc, token });
                    return true;
                }
                let entry = slot.timers.swap_remove(pos);
                self.report.timers_fired += 1;
                self.hash = mix(self.hash, 0x20 ^ node as u64);
                self.trace(format_args!("{} timer {:?}", self.ids[node], entry.timer));
                self.feed(node, Input::Timer(entry.timer));
            }
            Ev::PersistDone { node, inc } => {
                let slot = &mut self.slots[node];
                if slot.incarnation != inc {
                    return true;
                }
                let Some((id, op)) = slot.in_flight.pop_front() else {
                    return true;
                };
                if self.config.trace {
                    eprintln!(
                        "[dsp-sim seed={} t={:?}] {} persisted {id:?} {op:?}",
                        self.config.seed, self.now, slot.id
                    );
                }
                slot.durable.push(op);
                slot.gate.persisted(id);
                self.hash = mix(self.hash, 0x30 ^ node as u64 ^ (id.0 << 16));
                self.report.persists += 1;
                self.flush(node);
                self.feed(node, Input::Persisted(id));
            }
            Ev::Request { node, id, request } => {
                self.hash = mix(self.hash, 0x40 ^ node as u64 ^ (id.0 << 16));
                if self.slots[node].node.is_none() {
                    self.report.requests_dropped += 1;
                    self.trace(format_args!(
                        "client -> {} DROP (down) {id:?} {request:?}",
                        self.ids[node]
                    ));
                } else {
                    self.trace(format_args!(
                        "client -> {} {id:?} {request:?}",
                        self.ids[node]
                    ));
                    self.feed(node, Input::Request { id, request });
                }
            }
            Ev::Reply { from, id, response } => {
                self.hash = mix(self.hash, 0x50 ^ from.0 ^ (id.0 << 16));
                self.report.replies += 1;
                self.trace(format_args!("{from} -> client {id:?} {response:?}"));
                self.replies.push(Reply {
                    id,
                    from,
                    response,
                    at,
                });
            }
            Ev::Nemesis { epoch } => {
                if epoch == self.plan_epoch {
                    self.nemesis();
                }
            }
        }
        self.check_invariants();
        true
    }

    fn check_invariants(&mut self) {
        if self.invariants.is_empty() || self.violation.is_some() {
            return;
        }
        let mut invariants = std::mem::take(&mut self.invariants);
        let mut failed = None;
        for (name, check) in &mut invariants {
            let view = SimView { sim: self };
            if let Err(message) = check(&view) {
                failed = Some((name.clone(), message));
                break;
            }
        }
        self.invariants = invariants;
        if let Some((name, message)) = failed {
            self.trace(format_args!("INVARIANT {name:?} VIOLATED: {message}"));
            self.report.violation = Some(format!("{name}: {message}"));
            self.violation = Some(Error::InvariantViolated {
                name,
                message,
                seed: self.config.seed,
                step: self.report.steps,
                at: self.now,
            });
        }
    }

    fn guard(&self) -> Result<()> {
        if let Some(v) = &self.violation {
            return Err(v.clone());
        }
        if self.report.steps >= self.config.max_steps {
            return Err(Error::StepLimit {
                limit: self.config.max_steps,
                seed: self.config.seed,
                at: self.now,
            });
        }
        Ok(())
    }

    /// Runs every event scheduled within `d` of now, then sets the clock to now + `d`.
    ///
    /// Stops early with [`Error::InvariantViolated`] (leaving the state as it was after the
    /// failing step) or [`Error::StepLimit`].
    pub fn run_for(&mut self, d: Duration) -> Result<()> {
        self.guard()?;
        let target = self.now + d;
        while self.queue.peek().is_some_and(|s| s.at <= target) {
            self.step();
            self.guard()?;
        }
        self.now = self.now.max(target);
        Ok(())
    }

    /// Runs until `pred` holds (checked before the first step and after each) or `limit` of
    /// virtual time has passed. Returns whether `pred` held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Self) -> bool,
    ) -> Result<bool> {
        self.guard()?;
        if pred(self) {
            return Ok(true);
        }
        let target = self.now + limit;
        while self.queue.peek().is_some_and(|s| s.at <= target) {
            self.step();
            self.guard()?;
            if pred(self) {
                return Ok(true);
            }
        }
        self.now = self.now.max(target);
        Ok(false)
    }

    /// The node, or `None` while it is crashed (or if `id` is not a node of the simulation).
    pub fn node(&self, id: NodeId) -> Option<&P> {
        self.index(id).and_then(|i| self.slots[i].node.as_ref())
    }

    /// Mutable access to a node that is up, for white-box tests. Changing it outside
    /// [`Protocol::handle`] is the caller's responsibility (it bypasses the contract).
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut P> {
        let i = self.index(id)?;
        self.slots[i].node.as_mut()
    }

    /// Every node id, up or not, in order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.ids.clone()
    }

    /// Whether the node is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// The node's durable persists, oldest first (empty for an unknown id).
    pub fn durable(&self, id: NodeId) -> &[P::Persist] {
        self.index(id).map_or(&[], |i| &self.slots[i].durable)
    }

    /// The node's clock reading now (its skewed view of virtual time).
    pub fn local_time(&self, id: NodeId) -> Option<Instant> {
        let slot = &self.slots[self.index(id)?];
        let raw = slot.raw_local(self.now).clamp(0, i128::from(u64::MAX));
        let local = Instant::from_nanos(u64::try_from(raw).unwrap_or(u64::MAX));
        Some(local.max(slot.last_local))
    }

    fn record(&mut self, fault: Fault) {
        self.trace(format_args!("FAULT {fault:?}"));
        self.report.faults += 1;
        let code = match &fault {
            Fault::Crash { node, .. } => 1 ^ (node.0 << 8),
            Fault::Restart { node, .. } => 2 ^ (node.0 << 8),
            Fault::Partition { groups } => 3 ^ ((groups.len() as u64) << 8),
            Fault::Block { from, to } => 4 ^ (from.0 << 8) ^ (to.0 << 32),
            Fault::Heal => 5,
            Fault::Pause { node, until } => 7 ^ (node.0 << 8) ^ until.as_nanos().rotate_left(17),
            Fault::ClockSkew {
                node,
                offset_nanos,
                drift_ppm,
            } => 6 ^ (node.0 << 8) ^ (*offset_nanos as u64) ^ ((*drift_ppm as u64) << 40),
        };
        self.hash = mix(self.hash, code);
        self.faults.push((self.now, fault));
    }

    /// Crashes the node: drops its value, gate, timers and un-synced persists (see
    /// [`SimConfig::lose_unsynced_on_crash`]). Does nothing if it is already down or unknown.
    pub fn crash(&mut self, id: NodeId) {
        let Some(idx) = self.index(id) else { return };
        if self.slots[idx].node.is_none() {
            return;
        }
        let lose = self.config.lose_unsynced_on_crash;
        let p = self.config.unsynced_survival;
        let slot = &mut self.slots[idx];
        slot.node = None;
        slot.gate.clear();
        slot.timers.clear();
        slot.paused_until = Instant::ZERO;
        slot.incarnation += 1;
        slot.last_persist_done = self.now;
        let mut survived = 0;
        let mut lost = 0;
        let mut surviving = !lose;
        for (_, op) in slot.in_flight.drain(..) {
            surviving = surviving && self.persist_rng.gen_bool(p);
            if surviving {
                slot.durable.push(op);
                survived += 1;
            } else {
                lost += 1;
            }
        }
        self.out.clear();
        self.report.crashes += 1;
        self.report.persists_lost += lost as u64;
        self.report.persists += survived as u64;
        self.record(Fault::Crash {
            node: id,
            survived,
            lost,
        });
        self.check_invariants();
    }

    /// Restarts a crashed node: the factory rebuilds it from exactly its durable persists, then
    /// it receives [`Input::Start`]. Does nothing if it is up or unknown.
    pub fn restart(&mut self, id: NodeId) {
        let Some(idx) = self.index(id) else { return };
        if self.slots[idx].node.is_some() {
            return;
        }
        self.report.restarts += 1;
        let durable = self.slots[idx].durable.len();
        self.record(Fault::Restart { node: id, durable });
        self.boot(idx);
        self.check_invariants();
    }

    /// Freezes an up node for `d` (a stop-the-world pause): messages, requests, timers and
    /// persist completions bound for it wait until it resumes and are then handled in their
    /// original order; its clock keeps running, so it wakes up late. Pausing a paused node
    /// extends the pause to the later end. Does nothing if the node is down or unknown; a
    /// crash ends the pause.
    pub fn pause(&mut self, id: NodeId, d: Duration) {
        let Some(idx) = self.index(id) else { return };
        if self.slots[idx].node.is_none() {
            return;
        }
        let until = (self.now + d).max(self.slots[idx].paused_until);
        self.slots[idx].paused_until = until;
        self.record(Fault::Pause { node: id, until });
        self.check_invariants();
    }

    /// Whether the node is up and frozen by [`Sim::pause`].
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.index(id)
            .is_some_and(|i| self.slots[i].node.is_some() && self.slots[i].paused_until > self.now)
    }

    fn set_blocked(&mut self, from: usize, to: usize, blocked: bool) {
        let n = self.ids.len();
        if from != to {
            self.blocked[from * n + to] = blocked;
            self.any_blocked |= blocked;
        }
    }

    /// Splits the network into `groups`: messages flow only between nodes of the same group;
    /// nodes not listed are isolated. Replaces any earlier partition or block.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let n = self.ids.len();
        let mut group_of = vec![usize::MAX; n];
        for (g, members) in groups.iter().enumerate() {
            for id in members.iter() {
                if let Some(i) = self.index(*id) {
                    group_of[i] = g;
                }
            }
        }
        self.blocked.iter_mut().for_each(|b| *b = false);
        self.any_blocked = false;
        for a in 0..n {
            for b in 0..n {
                let same = group_of[a] != usize::MAX && group_of[a] == group_of[b];
                self.set_blocked(a, b, !same);
            }
        }
        let groups = groups.iter().map(|g| g.to_vec()).collect();
        self.record(Fault::Partition { groups });
        self.check_invariants();
    }

    /// Drops every message from `from` to `to` from now on (one way), until [`Sim::heal`].
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        if let (Some(a), Some(b)) = (self.index(from), self.index(to)) {
            self.set_blocked(a, b, true);
        }
        self.record(Fault::Block { from, to });
        self.check_invariants();
    }

    /// Removes every partition and block.
    pub fn heal(&mut self) {
        self.blocked.iter_mut().for_each(|b| *b = false);
        self.any_blocked = false;
        self.record(Fault::Heal);
        self.check_invariants();
    }

    /// Whether messages from `from` to `to` are currently blocked.
    pub fn is_blocked_link(&self, from: NodeId, to: NodeId) -> bool {
        match (self.index(from), self.index(to)) {
            (Some(a), Some(b)) => self.is_blocked(a, b),
            _ => false,
        }
    }

    /// Skews the node's clock: from now on it reads `virtual × (1 + drift_ppm / 10⁶) +
    /// offset_nanos`, clamped to `[0, u64::MAX]` and never going backwards (a change that would
    /// move it back makes it stand still until it catches up). `drift_ppm` is clamped to
    /// ±[`MAX_DRIFT_PPM`]. Pending timers fire when the skewed clock reaches their deadline.
    pub fn set_clock_skew(&mut self, id: NodeId, offset_nanos: i64, drift_ppm: i64) {
        let Some(idx) = self.index(id) else { return };
        let drift_ppm = drift_ppm.clamp(-MAX_DRIFT_PPM, MAX_DRIFT_PPM);
        let slot = &mut self.slots[idx];
        slot.offset_nanos = offset_nanos;
        slot.drift_ppm = drift_ppm;
        // Pending timers keep their local deadlines; reschedule them for the new clock. The
        // old queue entries stay valid by token and are re-checked when they fire.
        let now = self.now;
        let inc = slot.incarnation;
        let resched: Vec<(Instant, u64)> = slot
            .timers
            .iter()
            .map(|e| (slot.global_for(e.deadline, now), e.token))
            .collect();
        for (at, token) in resched {
            self.schedule(
                at,
                Ev::Timer {
                    node: idx,
                    inc,
                    token,
                },
            );
        }
        self.record(Fault::ClockSkew {
            node: id,
            offset_nanos,
            drift_ppm,
        });
    }

    /// Sends a client request to `to`; it arrives after a network delay (and is lost if the
    /// node is down then). Returns the id its reply will carry.
    pub fn request(&mut self, to: NodeId, request: P::Request) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.report.requests += 1;
        let Some(node) = self.index(to) else {
            self.report.requests_dropped += 1;
            return id;
        };
        if self
            .client_rng
            .gen_bool(self.config.network.client_drop_rate)
        {
            self.report.requests_dropped += 1;
            self.trace(format_args!("client -> {to} DROP {id:?} {request:?}"));
            return id;
        }
        let at = self.now + self.delay();
        self.schedule(at, Ev::Request { node, id, request });
        id
    }

    /// Takes the replies that reached the client so far, in arrival order.
    pub fn take_replies(&mut self) -> Vec<(RequestId, NodeId, P::Response)> {
        self.replies
            .drain(..)
            .map(|r| (r.id, r.from, r.response))
            .collect()
    }

    /// Takes the replies that reached the client so far, with their arrival times.
    pub fn take_replies_timed(&mut self) -> Vec<Reply<P>> {
        std::mem::take(&mut self.replies)
    }

    /// Everything the nodes reported, in order, with the virtual time it was carried out (an
    /// event emitted after a persist is carried out once that persist is durable, and is lost
    /// if the node crashes first).
    pub fn events(&self) -> &[(Instant, NodeId, P::Event)] {
        &self.events
    }

    /// Every fault injected so far, in order.
    pub fn faults(&self) -> &[(Instant, Fault)] {
        &self.faults
    }

    /// Adds an invariant checked after every step and every fault. When it returns `Err`, the
    /// run stops and [`Sim::run_for`] / [`Sim::run_until`] return [`Error::InvariantViolated`]
    /// with the message and the seed.
    pub fn add_invariant(
        &mut self,
        name: &str,
        check: impl FnMut(&SimView<'_, P>) -> Result<(), String> + 'static,
    ) {
        self.invariants.push((name.to_owned(), Box::new(check)));
    }

    /// Checks every invariant now, outside a step.
    pub fn check(&mut self) -> Result<()> {
        self.check_invariants();
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    /// A read-only view, as invariants get.
    pub fn view(&self) -> SimView<'_, P> {
        SimView { sim: self }
    }

    /// A hash of everything that happened (event times, kinds, nodes, faults): two runs with
    /// the same seed and the same calls have the same hash.
    pub fn trace_hash(&self) -> u64 {
        self.hash
    }

    /// Counters and outcome of the run so far.
    pub fn report(&self) -> Report {
        let mut r = self.report.clone();
        r.now = self.now;
        r
    }

    /// Drives random faults from `plan` (replacing any earlier plan), starting one interval
    /// from now. Every fault is recorded like a manual one.
    pub fn set_fault_plan(&mut self, plan: FaultPlan) -> Result<()> {
        plan.validate()?;
        self.plan_epoch += 1;
        let (lo, hi) = plan.interval;
        let at = self.now + self.fault_rng.gen_duration(lo..hi);
        self.plan = Some(plan);
        let epoch = self.plan_epoch;
        self.schedule(at, Ev::Nemesis { epoch });
        Ok(())
    }

    /// Stops the random faults (faults already injected stay: see [`Sim::recover_all`]).
    pub fn clear_fault_plan(&mut self) {
        self.plan = None;
        self.plan_epoch += 1;
    }

    /// Heals the network, removes clock skew and restarts every crashed node.
    pub fn recover_all(&mut self) {
        self.heal();
        for idx in 0..self.ids.len() {
            let id = self.ids[idx];
            if self.slots[idx].offset_nanos != 0 || self.slots[idx].drift_ppm != 0 {
                self.set_clock_skew(id, 0, 0);
            }
            self.restart(id);
        }
    }

    fn nemesis(&mut self) {
        let Some(plan) = self.plan.clone() else {
            return;
        };
        let ids = self.ids.clone();
        let up: Vec<NodeId> = ids.iter().copied().filter(|&id| self.is_up(id)).collect();
        let down: Vec<NodeId> = ids.iter().copied().filter(|&id| !self.is_up(id)).collect();
        let max_down = plan.max_down.unwrap_or(ids.len().saturating_sub(1) / 2);
        let action = plan.pick(&mut self.fault_rng, &up, &down, max_down, self.any_blocked);
        match action {
            Some(FaultAction::Crash(id)) => self.crash(id),
            Some(FaultAction::Restart(id)) => self.restart(id),
            Some(FaultAction::Partition(groups)) => {
                let refs: Vec<&[NodeId]> = groups.iter().map(Vec::as_slice).collect();
                self.partition(&refs);
            }
            Some(FaultAction::Block(from, to)) => self.block(from, to),
            Some(FaultAction::Heal) => self.heal(),
            Some(FaultAction::Skew(id, offset, drift)) => self.set_clock_skew(id, offset, drift),
            Some(FaultAction::Pause(id, d)) => self.pause(id, d),
            None => {}
        }
        let (lo, hi) = plan.interval;
        let at = self.now + self.fault_rng.gen_duration(lo..hi);
        let epoch = self.plan_epoch;
        self.schedule(at, Ev::Nemesis { epoch });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slot(offset_nanos: i64, drift_ppm: i64) -> Slot<dsp_core::example::PingPong> {
        Slot {
            id: NodeId(1),
            node: None,
            incarnation: 0,
            gate: PersistGate::new(),
            timers: Vec::new(),
            next_token: 0,
            in_flight: VecDeque::new(),
            last_persist_done: Instant::ZERO,
            durable: Vec::new(),
            offset_nanos,
            drift_ppm,
            last_local: Instant::ZERO,
            paused_until: Instant::ZERO,
        }
    }

    proptest! {
        #[test]
        fn timer_time_is_the_earliest_global_instant_reading_the_deadline(
            offset in -10_000_000_000i64..10_000_000_000,
            drift in -MAX_DRIFT_PPM..=MAX_DRIFT_PPM,
            deadline in 0u64..100_000_000_000,
            now in 0u64..50_000_000_000,
        ) {
            let s = slot(offset, drift);
            let local = Instant::from_nanos(deadline);
            let now = Instant::from_nanos(now);
            let g = s.global_for(local, now);
            prop_assert!(g >= now);
            // At g the clock reads at least the deadline...
            prop_assert!(s.raw_local(g) >= i128::from(deadline));
            // ...and one nanosecond earlier (if that is still after `now`) it did not.
            if g > now {
                let before = Instant::from_nanos(g.as_nanos() - 1);
                prop_assert!(s.raw_local(before) < i128::from(deadline));
            }
        }

        #[test]
        fn local_clock_never_goes_backwards(
            steps in proptest::collection::vec((0u64..1_000_000_000, -1_000_000_000i64..1_000_000_000, -MAX_DRIFT_PPM..=MAX_DRIFT_PPM), 1..50),
        ) {
            let mut s = slot(0, 0);
            let mut global = Instant::ZERO;
            let mut last = Instant::ZERO;
            for (advance, offset, drift) in steps {
                global += Duration::from_nanos(advance);
                s.offset_nanos = offset;
                s.drift_ppm = drift;
                let now = s.local_now(global);
                prop_assert!(now >= last);
                last = now;
            }
        }
    }
}
