//! The bully algorithm: the highest live id bullies its way to leadership.

use dsp_clock::{FencingToken, Generation};
use dsp_core::{DetRng, Input, Instant, NodeId, Outputs, Protocol};

use crate::state::Core;
use crate::{ElectionConfig, Event, LeaderView, Persist, Request, Response, Result, Role, Status};

/// A message between [`Bully`] nodes. Every message carries the sender's generation, so
/// generations spread with the election traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    /// "I am holding an election": sent to every higher id.
    Election {
        /// The highest generation the sender has seen.
        generation: Generation,
    },
    /// "I am alive and higher than you; I take over": the reply to `Election`.
    Answer {
        /// The highest generation the sender has seen.
        generation: Generation,
    },
    /// "I am the leader in `generation`": sent by the winner to every other member.
    Coordinator {
        /// The winner's new generation.
        generation: Generation,
    },
    /// Sent by the leader every heartbeat interval; followers treat it like `Coordinator`.
    Heartbeat {
        /// The leader's generation.
        generation: Generation,
    },
}

/// The timers of a [`Bully`] node. `epoch` detects stale firings.
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
    /// Candidate: no higher node answered; take over.
    AnswerTimeout {
        /// The node's epoch when the timer was set.
        epoch: u64,
    },
    /// Candidate: a higher node answered but never announced itself; start over.
    CoordinatorTimeout {
        /// The node's epoch when the timer was set.
        epoch: u64,
    },
}

/// A node running the bully algorithm, as a sans-IO [`Protocol`].
///
/// * On start, and whenever its leader goes silent for the leader timeout, a node holds an
///   election: it sends `Election` to every higher id. With no `Answer` within the answer
///   timeout it mints a new generation, persists it, and announces itself with `Coordinator`.
/// * A node that receives `Election` from a lower id answers and holds its own election (or,
///   if it already leads in a current generation, re-announces itself to the sender).
/// * A node accepts a leader claim (`Coordinator` or `Heartbeat`) from a higher id whose
///   generation is at least the highest it has seen, after persisting that generation. A claim
///   from a lower id makes it take over; a claim with an older generation makes it hold an
///   election so that the stale leader learns of the newer generation.
#[derive(Clone, Debug)]
pub struct Bully {
    core: Core,
    /// Candidate only: whether a higher node has answered.
    answered: bool,
}

impl Bully {
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
            answered: false,
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

    fn start_election(&mut self, now: Instant, out: &mut Outputs<Self>) {
        self.core.become_candidate(out);
        self.answered = false;
        let higher: Vec<NodeId> = self.core.peers().filter(|&p| p > self.core.id).collect();
        if higher.is_empty() {
            self.take_over(now, out);
            return;
        }
        let generation = self.core.max_seen;
        for h in higher {
            out.send(h, Message::Election { generation });
        }
        let at = now + self.core.config.answer_timeout;
        out.set_timer(
            Timer::AnswerTimeout {
                epoch: self.core.epoch,
            },
            at,
        );
    }

    fn take_over(&mut self, now: Instant, out: &mut Outputs<Self>) {
        let g = self.core.mint();
        self.core.become_leader(g, out);
        let peers: Vec<NodeId> = self.core.peers().collect();
        for p in peers {
            out.send(p, Message::Coordinator { generation: g });
        }
        self.arm_heartbeat(now, out);
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

    fn arm_leader_timeout(&mut self, now: Instant, out: &mut Outputs<Self>) {
        let at = self.core.leader_deadline(now);
        out.set_timer(
            Timer::LeaderTimeout {
                epoch: self.core.epoch,
            },
            at,
        );
    }

    /// `leader` claims leadership in `g` (a `Coordinator` or a `Heartbeat`).
    fn on_claim(&mut self, now: Instant, leader: NodeId, g: Generation, out: &mut Outputs<Self>) {
        let stale = g < self.core.max_seen;
        if leader < self.core.id {
            // A lower node leads while we are alive: bully it.
            match (self.core.role, self.core.view) {
                (Role::Leader, Some(mine)) if mine.generation > g => {
                    out.send(
                        leader,
                        Message::Coordinator {
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
            return;
        }
        if stale {
            // A deposed leader, or ours has been overtaken: ignore it. If it is ours, the leader
            // timeout fires and we hold an election, which tells it of the newer generation.
            return;
        }
        self.core.follow(leader, g, out);
        self.arm_leader_timeout(now, out);
    }
}

impl Bully {
    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Outputs<Self>) {
        let current = |epoch: u64| epoch == self.core.epoch;
        match (timer, self.core.role) {
            (Timer::Heartbeat { epoch }, Role::Leader) if current(epoch) => {
                if let Some(v) = self.core.view {
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
            (Timer::AnswerTimeout { epoch }, Role::Candidate)
                if current(epoch) && !self.answered =>
            {
                self.take_over(now, out);
            }
            (Timer::CoordinatorTimeout { epoch }, Role::Candidate) if current(epoch) => {
                self.start_election(now, out);
            }
            _ => {} // stale (protocol rule 3)
        }
    }
}

pub(crate) fn leader_token(core: &Core) -> Option<FencingToken> {
    match (core.role, core.view) {
        (Role::Leader, Some(v)) if core.status().durable >= v.generation => Some(v.token()),
        _ => None,
    }
}

impl Protocol for Bully {
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
                    Message::Election { generation } => {
                        self.core.observe(generation);
                        if from > self.core.id {
                            // Elections only go upwards; a confused peer. Ignore.
                            return;
                        }
                        out.send(
                            from,
                            Message::Answer {
                                generation: self.core.max_seen,
                            },
                        );
                        match (self.core.role, self.core.view) {
                            (Role::Leader, Some(mine)) if mine.generation >= self.core.max_seen => {
                                out.send(
                                    from,
                                    Message::Coordinator {
                                        generation: mine.generation,
                                    },
                                );
                            }
                            (Role::Candidate, _) => {}
                            _ => self.start_election(now, out),
                        }
                    }
                    Message::Answer { generation } => {
                        self.core.observe(generation);
                        if from > self.core.id
                            && self.core.role == Role::Candidate
                            && !self.answered
                        {
                            self.answered = true;
                            self.core.epoch += 1;
                            let at = now + self.core.config.coordinator_timeout;
                            out.set_timer(
                                Timer::CoordinatorTimeout {
                                    epoch: self.core.epoch,
                                },
                                at,
                            );
                        }
                    }
                    Message::Coordinator { generation } | Message::Heartbeat { generation } => {
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

    use dsp_core::{PersistId, RequestId};

    use super::*;
    use crate::testutil::{Out, msg, step};

    fn g(v: u64) -> Generation {
        Generation(v)
    }
    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }
    fn config() -> ElectionConfig {
        ElectionConfig {
            timeout_jitter: Duration::ZERO,
            ..ElectionConfig::with_members([NodeId(1), NodeId(2), NodeId(3)])
        }
    }
    fn node(id: u64) -> Bully {
        Bully::new(NodeId(id), config(), DetRng::from_seed(id)).unwrap()
    }

    #[test]
    fn highest_node_takes_over_at_start() {
        let mut n3 = node(3);
        assert_eq!(
            step(&mut n3, ms(0), Input::Start),
            vec![
                Out::Event(Event::ElectionStarted { generation: g(0) }),
                Out::Persist(PersistId(1), Persist::Generation(g(3))),
                Out::Event(Event::BecameLeader { generation: g(3) }),
                Out::Event(Event::LeaderElected {
                    leader: NodeId(3),
                    generation: g(3)
                }),
                Out::Send(NodeId(1), Message::Coordinator { generation: g(3) }),
                Out::Send(NodeId(2), Message::Coordinator { generation: g(3) }),
                Out::SetTimer(Timer::Heartbeat { epoch: 2 }, ms(100)),
            ]
        );
        // The fencing token is only handed out once the generation is durable.
        assert_eq!(n3.fencing_token(), None);
        assert!(step(&mut n3, ms(1), Input::Persisted(PersistId(1))).is_empty());
        assert_eq!(n3.fencing_token(), Some(FencingToken(3)));
        assert_eq!(
            step(
                &mut n3,
                ms(100),
                Input::Timer(Timer::Heartbeat { epoch: 2 })
            ),
            vec![
                Out::Send(NodeId(1), Message::Heartbeat { generation: g(3) }),
                Out::Send(NodeId(2), Message::Heartbeat { generation: g(3) }),
                Out::SetTimer(Timer::Heartbeat { epoch: 2 }, ms(200)),
            ]
        );
    }

    #[test]
    fn lower_node_waits_for_answer_then_follows_then_takes_over_when_leader_is_lost() {
        let mut n1 = node(1);
        assert_eq!(
            step(&mut n1, ms(0), Input::Start),
            vec![
                Out::Event(Event::ElectionStarted { generation: g(0) }),
                Out::Send(NodeId(2), Message::Election { generation: g(0) }),
                Out::Send(NodeId(3), Message::Election { generation: g(0) }),
                Out::SetTimer(Timer::AnswerTimeout { epoch: 1 }, ms(200)),
            ]
        );
        assert_eq!(
            step(
                &mut n1,
                ms(10),
                msg(3, Message::Answer { generation: g(0) })
            ),
            vec![Out::SetTimer(
                Timer::CoordinatorTimeout { epoch: 2 },
                ms(610)
            )]
        );
        // A second answer changes nothing.
        assert!(
            step(
                &mut n1,
                ms(11),
                msg(2, Message::Answer { generation: g(0) })
            )
            .is_empty()
        );
        assert_eq!(
            step(
                &mut n1,
                ms(20),
                msg(3, Message::Coordinator { generation: g(3) })
            ),
            vec![
                Out::Persist(PersistId(1), Persist::Generation(g(3))),
                Out::Event(Event::LeaderElected {
                    leader: NodeId(3),
                    generation: g(3)
                }),
                Out::SetTimer(Timer::LeaderTimeout { epoch: 3 }, ms(520)),
            ]
        );
        assert_eq!(
            step(
                &mut n1,
                ms(21),
                Input::Request {
                    id: RequestId(7),
                    request: Request::WhoIsLeader
                }
            ),
            vec![Out::Reply(
                RequestId(7),
                Response::Leader(Some(LeaderView {
                    leader: NodeId(3),
                    generation: g(3)
                }))
            )]
        );
        // A heartbeat only pushes the deadline back; the stale answer timer is ignored.
        assert_eq!(
            step(
                &mut n1,
                ms(120),
                msg(3, Message::Heartbeat { generation: g(3) })
            ),
            vec![Out::SetTimer(Timer::LeaderTimeout { epoch: 3 }, ms(620))]
        );
        assert!(
            step(
                &mut n1,
                ms(200),
                Input::Timer(Timer::AnswerTimeout { epoch: 1 })
            )
            .is_empty()
        );
        assert!(
            step(
                &mut n1,
                ms(610),
                Input::Timer(Timer::CoordinatorTimeout { epoch: 2 })
            )
            .is_empty()
        );
        // The leader goes silent: a new election, which nobody answers.
        assert_eq!(
            step(
                &mut n1,
                ms(620),
                Input::Timer(Timer::LeaderTimeout { epoch: 3 })
            ),
            vec![
                Out::Event(Event::LeaderLost {
                    leader: NodeId(3),
                    generation: g(3)
                }),
                Out::Event(Event::ElectionStarted { generation: g(3) }),
                Out::Send(NodeId(2), Message::Election { generation: g(3) }),
                Out::Send(NodeId(3), Message::Election { generation: g(3) }),
                Out::SetTimer(Timer::AnswerTimeout { epoch: 4 }, ms(820)),
            ]
        );
        assert_eq!(
            step(
                &mut n1,
                ms(820),
                Input::Timer(Timer::AnswerTimeout { epoch: 4 })
            ),
            vec![
                Out::Persist(PersistId(2), Persist::Generation(g(4))),
                Out::Event(Event::BecameLeader { generation: g(4) }),
                Out::Event(Event::LeaderElected {
                    leader: NodeId(1),
                    generation: g(4)
                }),
                Out::Send(NodeId(2), Message::Coordinator { generation: g(4) }),
                Out::Send(NodeId(3), Message::Coordinator { generation: g(4) }),
                Out::SetTimer(Timer::Heartbeat { epoch: 5 }, ms(920)),
            ]
        );
        assert_eq!(n1.role(), Role::Leader);
    }

    #[test]
    fn leader_answers_and_reasserts_itself_to_a_lower_elector() {
        let mut n3 = node(3);
        step(&mut n3, ms(0), Input::Start);
        assert_eq!(
            step(
                &mut n3,
                ms(5),
                msg(1, Message::Election { generation: g(0) })
            ),
            vec![
                Out::Send(NodeId(1), Message::Answer { generation: g(3) }),
                Out::Send(NodeId(1), Message::Coordinator { generation: g(3) }),
            ]
        );
    }

    #[test]
    fn follower_answers_a_lower_elector_and_holds_its_own_election() {
        let mut n2 = node(2);
        step(&mut n2, ms(0), Input::Start);
        step(
            &mut n2,
            ms(1),
            msg(3, Message::Coordinator { generation: g(3) }),
        );
        assert_eq!(
            step(
                &mut n2,
                ms(5),
                msg(1, Message::Election { generation: g(0) })
            ),
            vec![
                Out::Send(NodeId(1), Message::Answer { generation: g(3) }),
                Out::Event(Event::ElectionStarted { generation: g(3) }),
                Out::Send(NodeId(3), Message::Election { generation: g(3) }),
                Out::SetTimer(Timer::AnswerTimeout { epoch: 3 }, ms(205)),
            ]
        );
    }

    #[test]
    fn a_lower_leader_is_bullied_and_a_stale_claim_is_ignored() {
        // n3 leads in g3 and hears a heartbeat from n1 in an older generation: it reasserts.
        let mut n3 = node(3);
        step(&mut n3, ms(0), Input::Start);
        assert_eq!(
            step(
                &mut n3,
                ms(5),
                msg(1, Message::Heartbeat { generation: g(1) })
            ),
            vec![Out::Send(
                NodeId(1),
                Message::Coordinator { generation: g(3) }
            )]
        );
        // n1 claims a newer generation: n3 steps down and takes over again, above it.
        let out = step(
            &mut n3,
            ms(6),
            msg(1, Message::Heartbeat { generation: g(4) }),
        );
        assert_eq!(out[0], Out::Event(Event::SteppedDown { generation: g(3) }));
        assert!(out.contains(&Out::Persist(PersistId(2), Persist::Generation(g(6)))));
        assert!(out.contains(&Out::Event(Event::BecameLeader { generation: g(6) })));

        // n2 follows n3 in g6 and then hears from n3 in g3: a stale claim, ignored (not even
        // the leader timeout is pushed back).
        let mut n2 = node(2);
        step(&mut n2, ms(0), Input::Start);
        step(
            &mut n2,
            ms(1),
            msg(3, Message::Coordinator { generation: g(6) }),
        );
        assert!(
            step(
                &mut n2,
                ms(2),
                msg(3, Message::Heartbeat { generation: g(3) })
            )
            .is_empty()
        );
        assert_eq!(
            n2.leader(),
            Some(LeaderView {
                leader: NodeId(3),
                generation: g(6)
            })
        );
    }

    #[test]
    fn restarted_node_never_reuses_a_durable_generation() {
        let durable = [Persist::Generation(g(3))];
        let mut n3 = Bully::recover(NodeId(3), config(), DetRng::from_seed(3), &durable).unwrap();
        assert_eq!(n3.status().durable, g(3));
        let out = step(&mut n3, ms(0), Input::Start);
        assert_eq!(
            out[1],
            Out::Persist(PersistId(1), Persist::Generation(g(6)))
        );
        assert_eq!(
            n3.leader(),
            Some(LeaderView {
                leader: NodeId(3),
                generation: g(6)
            })
        );
    }

    #[test]
    fn messages_from_strangers_are_dropped() {
        let mut n1 = node(1);
        step(&mut n1, ms(0), Input::Start);
        assert_eq!(
            step(
                &mut n1,
                ms(1),
                msg(9, Message::Coordinator { generation: g(100) })
            ),
            vec![Out::Event(Event::Dropped { from: NodeId(9) })]
        );
        assert_eq!(n1.status().max_seen, g(0));
    }

    #[test]
    fn invalid_config_is_rejected() {
        let err = Bully::new(NodeId(4), config(), DetRng::from_seed(0)).unwrap_err();
        assert_eq!(err, crate::Error::NotAMember(NodeId(4)));
    }
}
