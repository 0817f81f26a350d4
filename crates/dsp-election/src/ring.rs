//! The ring algorithm: an election message collects the live ids around a logical ring.

use std::collections::BTreeMap;

use dsp_clock::{FencingToken, Generation};
use dsp_core::{DetRng, Input, Instant, NodeId, Outputs, Protocol};

use crate::bully::leader_token;
use crate::state::Core;
use crate::{ElectionConfig, Event, LeaderView, Persist, Request, Response, Result, Role, Status};

/// A message between [`Ring`] nodes.
///
/// `Election` and `Coordinator` travel around the ring (members in ascending id order, wrapping
/// around); each hop is acknowledged with `Ack` so that a sender can skip a successor that does
/// not answer within the hop timeout. `Heartbeat` goes straight from the leader to every member.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    /// An election collecting the ids of the live nodes it passes.
    Election {
        /// The sender's token for this hop, echoed in `Ack`.
        hop: u64,
        /// The nodes the message has passed, initiator first.
        candidates: Vec<NodeId>,
        /// The highest generation seen by the nodes it has passed.
        generation: Generation,
    },
    /// The outcome of an election, circulating once around the ring.
    Coordinator {
        /// The sender's token for this hop, echoed in `Ack`.
        hop: u64,
        /// The highest id among the candidates.
        leader: NodeId,
        /// The generation the leader minted for this outcome.
        generation: Generation,
        /// The nodes the message has passed.
        visited: Vec<NodeId>,
    },
    /// "You won the round": sent by the node that completed a round to the highest candidate,
    /// which then mints a generation and circulates `Coordinator`.
    Elected {
        /// The candidates of the completed round.
        candidates: Vec<NodeId>,
        /// The highest generation seen by the nodes the round passed.
        generation: Generation,
    },
    /// "I got your ring message `hop`."
    Ack {
        /// The hop token being acknowledged.
        hop: u64,
    },
    /// Sent by the leader to every member each heartbeat interval.
    Heartbeat {
        /// The leader's generation.
        generation: Generation,
    },
}

/// The timers of a [`Ring`] node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Timer {
    /// Leader: time to send heartbeats.
    Heartbeat {
        /// The node's epoch when the timer was set.
        epoch: u64,
    },
    /// Follower: the leader has been silent for too long.
    LeaderTimeout {
        /// The node's epoch when the timer was set.
        epoch: u64,
    },
    /// Candidate: the election this node started has not produced a leader; start over.
    RoundTimeout {
        /// The node's epoch when the timer was set.
        epoch: u64,
    },
    /// The successor did not acknowledge ring message `hop`; skip it.
    Hop {
        /// The hop token (unique per node incarnation).
        hop: u64,
    },
}

/// A ring message waiting for its acknowledgement.
#[derive(Clone, Debug)]
enum Circulating {
    Election {
        candidates: Vec<NodeId>,
        generation: Generation,
    },
    Coordinator {
        leader: NodeId,
        generation: Generation,
        visited: Vec<NodeId>,
    },
}

/// A node running the ring algorithm, as a sans-IO [`Protocol`].
///
/// * On start, and whenever its leader goes silent for the leader timeout, a node sends an
///   `Election` message carrying `[itself]` to its successor on the ring (ascending ids, wrapping
///   around). Each node appends its id and passes it on; a successor that does not acknowledge
///   within the hop timeout is skipped.
/// * The first node that receives the message with its own id already in it completes the round:
///   the highest candidate wins. That node mints a new generation above every generation the
///   message collected, persists it, and sends a `Coordinator` message once around the ring.
///   Each node persists the generation before adopting the new leader; the leader persists it
///   before it starts sending heartbeats.
/// * Leader claims are judged as in [`Bully`](crate::Bully): a claim by a lower id than oneself
///   (one was skipped) or with an older generation than one has seen triggers a new election.
#[derive(Clone, Debug)]
pub struct Ring {
    core: Core,
    next_hop: u64,
    awaiting_ack: BTreeMap<u64, (NodeId, Circulating)>,
}

impl Ring {
    /// A fresh node (nothing durable yet).
    ///
    /// # Errors
    ///
    /// The configuration is invalid for `id` (see [`ElectionConfig::validate`]).
    pub fn new(id: NodeId, config: ElectionConfig, rng: DetRng) -> Result<Self> {
        Self::recover(id, config, rng, [])
    }

    /// Rebuilds a node from its durable persists, in the order they were emitted.
    ///
    /// # Errors
    ///
    /// The configuration is invalid for `id` (see [`ElectionConfig::validate`]).
    pub fn recover<'a>(
        id: NodeId,
        config: ElectionConfig,
        rng: DetRng,
        durable: impl IntoIterator<Item = &'a Persist>,
    ) -> Result<Self> {
        Ok(Self {
            core: Core::new(id, config, rng, durable)?,
            next_hop: 1,
            awaiting_ack: BTreeMap::new(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.core.id
    }

    /// The node's role.
    pub fn role(&self) -> Role {
        self.core.role
    }

    /// The node's leader view, `None` during an election.
    pub fn leader(&self) -> Option<LeaderView> {
        self.core.view
    }

    /// The node's status.
    pub fn status(&self) -> Status {
        self.core.status()
    }

    /// The fencing token to attach to requests while this node leads: `Some` only if it leads
    /// and its generation is durable.
    pub fn fencing_token(&self) -> Option<FencingToken> {
        leader_token(&self.core)
    }

    /// The member after `node` on the ring.
    fn successor(&self, node: NodeId) -> NodeId {
        let m = &self.core.members;
        m.iter()
            .copied()
            .find(|&x| x > node)
            .or_else(|| m.first().copied())
            .unwrap_or(node)
    }

    /// Sends `msg` to the first member after `after`, awaiting its acknowledgement. If the ring
    /// wraps around to this node, the message is handled here.
    fn pass_on(&mut self, now: Instant, after: NodeId, msg: Circulating, out: &mut Outputs<Self>) {
        let target = self.successor(after);
        if target == self.core.id {
            self.on_circulating(now, msg, out);
            return;
        }
        let hop = self.next_hop;
        self.next_hop += 1;
        let wire = match &msg {
            Circulating::Election {
                candidates,
                generation,
            } => Message::Election {
                hop,
                candidates: candidates.clone(),
                generation: *generation,
            },
            Circulating::Coordinator {
                leader,
                generation,
                visited,
            } => Message::Coordinator {
                hop,
                leader: *leader,
                generation: *generation,
                visited: visited.clone(),
            },
        };
        self.awaiting_ack.insert(hop, (target, msg));
        out.send(target, wire);
        out.set_timer(Timer::Hop { hop }, now + self.core.config.hop_timeout);
    }

    fn start_election(&mut self, now: Instant, out: &mut Outputs<Self>) {
        self.core.become_candidate(out);
        let at = now + self.core.jittered(self.core.config.round_timeout);
        out.set_timer(
            Timer::RoundTimeout {
                epoch: self.core.epoch,
            },
            at,
        );
        let msg = Circulating::Election {
            candidates: vec![self.core.id],
            generation: self.core.max_seen,
        };
        self.pass_on(now, self.core.id, msg, out);
    }

    fn valid_ids(&self, ids: &[NodeId]) -> bool {
        ids.len() <= self.core.members.len()
            && ids.iter().all(|&i| self.core.is_member(i))
            && ids.iter().enumerate().all(|(k, i)| !ids[..k].contains(i))
    }

    /// A ring message reached this node (from a peer, or wrapped around).
    fn on_circulating(&mut self, now: Instant, msg: Circulating, out: &mut Outputs<Self>) {
        match msg {
            Circulating::Election {
                mut candidates,
                generation,
            } => {
                self.core.observe(generation);
                if candidates.contains(&self.core.id) {
                    // Round complete: the highest candidate wins. It mints its own generation,
                    // so that its heartbeats and the coordinator message never race with an
                    // announcement made on its behalf.
                    let leader = candidates.iter().copied().max().unwrap_or(self.core.id);
                    if self.follows_higher_than(leader) {
                        // The round missed a live leader above its winner (it was down or
                        // skipped when the round passed): its result is out of date.
                        return;
                    }
                    if leader == self.core.id {
                        self.lead(now, out);
                    } else {
                        let generation = self.core.max_seen;
                        out.send(
                            leader,
                            Message::Elected {
                                candidates,
                                generation,
                            },
                        );
                    }
                } else {
                    candidates.push(self.core.id);
                    let msg = Circulating::Election {
                        candidates,
                        generation: self.core.max_seen,
                    };
                    self.pass_on(now, self.core.id, msg, out);
                }
            }
            Circulating::Coordinator {
                leader,
                generation,
                mut visited,
            } => {
                if visited.contains(&self.core.id) {
                    return; // it has been all the way round
                }
                if self.on_claim(now, leader, generation, out) {
                    visited.push(self.core.id);
                    let msg = Circulating::Coordinator {
                        leader,
                        generation,
                        visited,
                    };
                    self.pass_on(now, self.core.id, msg, out);
                }
            }
        }
    }

    /// `leader` is announced in `g` (by a heartbeat or a coordinator message). Returns whether
    /// the claim was adopted.
    fn on_claim(
        &mut self,
        now: Instant,
        leader: NodeId,
        g: Generation,
        out: &mut Outputs<Self>,
    ) -> bool {
        if leader == self.core.id {
            // Only this node mints its generations, in `lead`; a claim naming it that it did not
            // make now is a leftover of an earlier incarnation.
            return false;
        }
        let stale = g < self.core.max_seen;
        if leader < self.core.id {
            // We are alive and higher but were left out (skipped, or restarted since).
            match (self.core.role, self.core.view) {
                (Role::Leader, Some(mine)) if mine.generation > g => {
                    out.send(
                        leader,
                        Message::Heartbeat {
                            generation: mine.generation,
                        },
                    );
                }
                // A deposed leader: the current leader's heartbeats will reach it too.
                _ if stale => {}
                (Role::Candidate, _) => self.core.observe(g),
                _ => {
                    self.core.observe(g);
                    self.start_election(now, out);
                }
            }
            return false;
        }
        if stale {
            // A deposed leader, or ours has been overtaken: ignore it. If it is ours, the leader
            // timeout fires and we hold an election, which tells it of the newer generation.
            return false;
        }
        self.core.follow(leader, g, out);
        let at = self.core.leader_deadline(now);
        out.set_timer(
            Timer::LeaderTimeout {
                epoch: self.core.epoch,
            },
            at,
        );
        true
    }

    /// This node won a round: lead in a fresh generation (or, if it already leads in a generation
    /// no one has overtaken, reassert that one) and circulate the result.
    fn lead(&mut self, now: Instant, out: &mut Outputs<Self>) {
        if self.follows_higher_than(self.core.id) {
            return; // an out-of-date round: a higher node leads and we hear its heartbeats
        }
        if let (Role::Leader, Some(v)) = (self.core.role, self.core.view)
            && v.generation >= self.core.max_seen
        {
            self.send_heartbeats(out);
            return;
        }
        let g = self.core.mint();
        self.core.become_leader(g, out);
        self.send_heartbeats(out);
        self.arm_heartbeat(now, out);
        let msg = Circulating::Coordinator {
            leader: self.core.id,
            generation: g,
            visited: vec![self.core.id],
        };
        self.pass_on(now, self.core.id, msg, out);
    }

    /// Whether this node follows a leader with an id above `id` (whose heartbeats keep that
    /// view alive).
    fn follows_higher_than(&self, id: NodeId) -> bool {
        matches!((self.core.role, self.core.view), (Role::Follower, Some(v)) if v.leader > id)
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Outputs<Self>) {
        let current = |epoch: u64| epoch == self.core.epoch;
        match (timer, self.core.role) {
            (Timer::Hop { hop }, _) => {
                if let Some((skipped, msg)) = self.awaiting_ack.remove(&hop) {
                    self.pass_on(now, skipped, msg, out);
                }
            }
            (Timer::Heartbeat { epoch }, Role::Leader) if current(epoch) => {
                self.send_heartbeats(out);
                self.arm_heartbeat(now, out);
            }
            (Timer::LeaderTimeout { epoch }, Role::Follower) if current(epoch) => {
                if let Some(v) = self.core.view {
                    out.event(Event::LeaderLost {
                        leader: v.leader,
                        generation: v.generation,
                    });
                }
                self.start_election(now, out);
            }
            (Timer::RoundTimeout { epoch }, Role::Candidate) if current(epoch) => {
                self.start_election(now, out);
            }
            _ => {} // stale (protocol rule 3)
        }
    }

    fn send_heartbeats(&mut self, out: &mut Outputs<Self>) {
        if let (Role::Leader, Some(v)) = (self.core.role, self.core.view) {
            let peers: Vec<NodeId> = self.core.peers().collect();
            for p in peers {
                out.send(
                    p,
                    Message::Heartbeat {
                        generation: v.generation,
                    },
                );
            }
        }
    }

    fn arm_heartbeat(&mut self, now: Instant, out: &mut Outputs<Self>) {
        let at = now + self.core.config.heartbeat_interval;
        out.set_timer(
            Timer::Heartbeat {
                epoch: self.core.epoch,
            },
            at,
        );
    }
}

impl Protocol for Ring {
    type Message = Message;
    type Timer = Timer;
    type Persist = Persist;
    type Request = Request;
    type Response = Response;
    type Event = Event;

    fn handle(&mut self, now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        match input {
            Input::Start => self.start_election(now, out),
            Input::Message { from, msg } => {
                if !self.core.is_member(from) || from == self.core.id {
                    out.event(Event::Dropped { from });
                    return;
                }
                match msg {
                    Message::Election {
                        hop,
                        candidates,
                        generation,
                    } => {
                        out.send(from, Message::Ack { hop });
                        if !self.valid_ids(&candidates) || candidates.is_empty() {
                            out.event(Event::Dropped { from });
                            return;
                        }
                        let msg = Circulating::Election {
                            candidates,
                            generation,
                        };
                        self.on_circulating(now, msg, out);
                    }
                    Message::Coordinator {
                        hop,
                        leader,
                        generation,
                        visited,
                    } => {
                        out.send(from, Message::Ack { hop });
                        if !self.valid_ids(&visited) || !self.core.is_member(leader) {
                            out.event(Event::Dropped { from });
                            return;
                        }
                        let msg = Circulating::Coordinator {
                            leader,
                            generation,
                            visited,
                        };
                        self.on_circulating(now, msg, out);
                    }
                    Message::Elected {
                        candidates,
                        generation,
                    } => {
                        self.core.observe(generation);
                        let highest = candidates.iter().copied().max();
                        if !self.valid_ids(&candidates) || highest != Some(self.core.id) {
                            out.event(Event::Dropped { from });
                            return;
                        }
                        self.lead(now, out);
                    }
                    Message::Ack { hop } => {
                        if self
                            .awaiting_ack
                            .get(&hop)
                            .is_some_and(|(to, _)| *to == from)
                        {
                            self.awaiting_ack.remove(&hop);
                            out.cancel_timer(Timer::Hop { hop });
                        }
                    }
                    Message::Heartbeat { generation } => {
                        self.on_claim(now, from, generation, out);
                    }
                }
            }
            Input::Timer(timer) => self.on_timer(now, timer, out),
            Input::Request { id, request } => self.core.answer(id, request, out),
            Input::Persisted(id) => self.core.persisted(id),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use dsp_core::PersistId;

    use super::*;
    use crate::testutil::{Out, msg, step};

    fn g(v: u64) -> Generation {
        Generation(v)
    }
    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }
    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }
    fn config(n: u64) -> ElectionConfig {
        ElectionConfig {
            timeout_jitter: Duration::ZERO,
            ..ElectionConfig::with_members((1..=n).map(NodeId))
        }
    }
    fn node(id: u64) -> Ring {
        Ring::new(NodeId(id), config(3), DetRng::from_seed(id)).unwrap()
    }

    #[test]
    fn start_sends_an_election_to_the_successor() {
        let mut n1 = node(1);
        assert_eq!(
            step(&mut n1, ms(0), Input::Start),
            vec![
                Out::Event(Event::ElectionStarted { generation: g(0) }),
                Out::SetTimer(Timer::RoundTimeout { epoch: 1 }, ms(2500)),
                Out::Send(
                    NodeId(2),
                    Message::Election {
                        hop: 1,
                        candidates: ids(&[1]),
                        generation: g(0)
                    }
                ),
                Out::SetTimer(Timer::Hop { hop: 1 }, ms(200)),
            ]
        );
        // No ack: n2 is skipped.
        assert_eq!(
            step(&mut n1, ms(200), Input::Timer(Timer::Hop { hop: 1 })),
            vec![
                Out::Send(
                    NodeId(3),
                    Message::Election {
                        hop: 2,
                        candidates: ids(&[1]),
                        generation: g(0)
                    }
                ),
                Out::SetTimer(Timer::Hop { hop: 2 }, ms(400)),
            ]
        );
        // n3 acks: the hop timer is cancelled and a late firing is ignored.
        assert_eq!(
            step(&mut n1, ms(210), msg(3, Message::Ack { hop: 2 })),
            vec![Out::CancelTimer(Timer::Hop { hop: 2 })]
        );
        assert!(step(&mut n1, ms(400), Input::Timer(Timer::Hop { hop: 2 })).is_empty());
    }

    #[test]
    fn a_full_round_elects_the_highest_which_persists_its_generation_before_leading() {
        let (mut n1, mut n2, mut n3) = (node(1), node(2), node(3));
        for n in [&mut n1, &mut n2, &mut n3] {
            step(n, ms(0), Input::Start);
        }
        // n3 appends itself and passes n1's election (collected by n2) on to n1.
        assert_eq!(
            step(
                &mut n3,
                ms(10),
                msg(
                    2,
                    Message::Election {
                        hop: 7,
                        candidates: ids(&[1, 2]),
                        generation: g(0)
                    }
                )
            ),
            vec![
                Out::Send(NodeId(2), Message::Ack { hop: 7 }),
                Out::Send(
                    NodeId(1),
                    Message::Election {
                        hop: 2,
                        candidates: ids(&[1, 2, 3]),
                        generation: g(0)
                    }
                ),
                Out::SetTimer(Timer::Hop { hop: 2 }, ms(210)),
            ]
        );
        // Back at n1: the round is complete; n1 tells the winner, n3.
        assert_eq!(
            step(
                &mut n1,
                ms(20),
                msg(
                    3,
                    Message::Election {
                        hop: 2,
                        candidates: ids(&[1, 2, 3]),
                        generation: g(0)
                    }
                )
            ),
            vec![
                Out::Send(NodeId(3), Message::Ack { hop: 2 }),
                Out::Send(
                    NodeId(3),
                    Message::Elected {
                        candidates: ids(&[1, 2, 3]),
                        generation: g(0)
                    }
                ),
            ]
        );
        // n3 mints its generation, persists it, then leads and circulates the result.
        assert_eq!(
            step(
                &mut n3,
                ms(30),
                msg(
                    1,
                    Message::Elected {
                        candidates: ids(&[1, 2, 3]),
                        generation: g(0)
                    }
                )
            ),
            vec![
                Out::Persist(PersistId(1), Persist::Generation(g(3))),
                Out::Event(Event::BecameLeader { generation: g(3) }),
                Out::Event(Event::LeaderElected {
                    leader: NodeId(3),
                    generation: g(3)
                }),
                Out::Send(NodeId(1), Message::Heartbeat { generation: g(3) }),
                Out::Send(NodeId(2), Message::Heartbeat { generation: g(3) }),
                Out::SetTimer(Timer::Heartbeat { epoch: 2 }, ms(130)),
                Out::Send(
                    NodeId(1),
                    Message::Coordinator {
                        hop: 3,
                        leader: NodeId(3),
                        generation: g(3),
                        visited: ids(&[3])
                    }
                ),
                Out::SetTimer(Timer::Hop { hop: 3 }, ms(230)),
            ]
        );
        // n1 persists before adopting the leader, then passes the message on.
        assert_eq!(
            step(
                &mut n1,
                ms(40),
                msg(
                    3,
                    Message::Coordinator {
                        hop: 3,
                        leader: NodeId(3),
                        generation: g(3),
                        visited: ids(&[3])
                    }
                )
            ),
            vec![
                Out::Send(NodeId(3), Message::Ack { hop: 3 }),
                Out::Persist(PersistId(1), Persist::Generation(g(3))),
                Out::Event(Event::LeaderElected {
                    leader: NodeId(3),
                    generation: g(3)
                }),
                Out::SetTimer(Timer::LeaderTimeout { epoch: 2 }, ms(540)),
                Out::Send(
                    NodeId(2),
                    Message::Coordinator {
                        hop: 2,
                        leader: NodeId(3),
                        generation: g(3),
                        visited: ids(&[3, 1])
                    }
                ),
                Out::SetTimer(Timer::Hop { hop: 2 }, ms(240)),
            ]
        );
        // Having been all the way round, it stops at n3.
        assert_eq!(
            step(
                &mut n3,
                ms(50),
                msg(
                    2,
                    Message::Coordinator {
                        hop: 9,
                        leader: NodeId(3),
                        generation: g(3),
                        visited: ids(&[3, 1, 2])
                    }
                )
            ),
            vec![Out::Send(NodeId(2), Message::Ack { hop: 9 })]
        );
        // An election result for someone else is dropped.
        assert_eq!(
            step(
                &mut n1,
                ms(60),
                msg(
                    2,
                    Message::Elected {
                        candidates: ids(&[1, 2, 3]),
                        generation: g(0)
                    }
                )
            ),
            vec![Out::Event(Event::Dropped { from: NodeId(2) })]
        );
    }

    #[test]
    fn a_lone_node_elects_itself() {
        let mut n = Ring::new(NodeId(7), config(0).with_only(7), DetRng::from_seed(0)).unwrap();
        let out = step(&mut n, ms(0), Input::Start);
        assert!(out.contains(&Out::Event(Event::BecameLeader { generation: g(1) })));
        assert_eq!(n.role(), Role::Leader);
    }

    #[test]
    fn malformed_ring_messages_are_acked_and_dropped() {
        let mut n1 = node(1);
        step(&mut n1, ms(0), Input::Start);
        assert_eq!(
            step(
                &mut n1,
                ms(1),
                msg(
                    2,
                    Message::Election {
                        hop: 1,
                        candidates: ids(&[2, 2]),
                        generation: g(9)
                    }
                )
            ),
            vec![
                Out::Send(NodeId(2), Message::Ack { hop: 1 }),
                Out::Event(Event::Dropped { from: NodeId(2) }),
            ]
        );
        assert_eq!(n1.status().max_seen, g(0));
    }

    impl ElectionConfig {
        fn with_only(mut self, id: u64) -> Self {
            self.members = vec![NodeId(id)];
            self
        }
    }
}
