//! State and bookkeeping shared by both protocols (crate-private).

use std::collections::VecDeque;
use std::time::Duration;

use dsp_clock::Generation;
use dsp_core::{DetRng, Instant, NodeId, PersistId, Protocol, RequestId};

use crate::{ElectionConfig, Event, LeaderView, Persist, Request, Response, Result, Role, Status};

/// The part of a node that does not depend on the algorithm.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    pub(crate) id: NodeId,
    /// Sorted, unique.
    pub(crate) members: Vec<NodeId>,
    pub(crate) config: ElectionConfig,
    rng: DetRng,
    pub(crate) role: Role,
    pub(crate) view: Option<LeaderView>,
    /// Highest generation seen or minted.
    pub(crate) max_seen: Generation,
    /// Highest generation handed to the driver to persist.
    persisted: Generation,
    /// Highest generation known durable.
    durable: Generation,
    /// Persists in flight, oldest first.
    in_flight: VecDeque<(PersistId, Generation)>,
    next_persist: u64,
    /// Bumped on every role or view change; timers carry it.
    pub(crate) epoch: u64,
}

/// The protocol-specific types shared by both algorithms.
pub(crate) trait ElectionProtocol:
    Protocol<Persist = Persist, Request = Request, Response = Response, Event = Event>
{
}

impl<P> ElectionProtocol for P where
    P: Protocol<Persist = Persist, Request = Request, Response = Response, Event = Event>
{
}

impl Core {
    pub(crate) fn new<'a>(
        id: NodeId,
        config: ElectionConfig,
        rng: DetRng,
        durable: impl IntoIterator<Item = &'a Persist>,
    ) -> Result<Self> {
        config.validate(id)?;
        let mut members = config.members.clone();
        members.sort_unstable();
        let recovered = durable
            .into_iter()
            .map(|p| match p {
                Persist::Generation(g) => *g,
            })
            .max()
            .unwrap_or(Generation::ZERO);
        Ok(Self {
            id,
            members,
            config,
            rng,
            role: Role::Follower,
            view: None,
            max_seen: recovered,
            persisted: recovered,
            durable: recovered,
            in_flight: VecDeque::new(),
            next_persist: 1,
            epoch: 0,
        })
    }

    pub(crate) fn is_member(&self, id: NodeId) -> bool {
        self.members.binary_search(&id).is_ok()
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.id;
        self.members.iter().copied().filter(move |&m| m != me)
    }

    pub(crate) fn observe(&mut self, g: Generation) {
        self.max_seen = self.max_seen.max(g);
    }

    /// The smallest generation above everything seen that this node may mint: generations are
    /// split into residue classes modulo the cluster size, one per member, so two nodes never
    /// mint the same one.
    pub(crate) fn mint(&mut self) -> Generation {
        let n = self.members.len() as u64;
        let rank = self.members.iter().position(|&m| m == self.id).unwrap_or(0) as u64 + 1;
        let above = self.max_seen.get().saturating_add(1);
        let step = (rank % n + n - above % n) % n;
        let g = Generation(above.saturating_add(step));
        self.observe(g);
        g
    }

    /// Emits a persist of `g` unless a generation at least as high is already persisted (or on
    /// its way). Anything emitted afterwards is held by the driver until `g` is durable.
    pub(crate) fn ensure_persisted<P: ElectionProtocol>(
        &mut self,
        g: Generation,
        out: &mut dsp_core::Outputs<P>,
    ) {
        self.observe(g);
        if g > self.persisted {
            let id = PersistId(self.next_persist);
            self.next_persist += 1;
            self.persisted = g;
            self.in_flight.push_back((id, g));
            out.persist(id, Persist::Generation(g));
        }
    }

    pub(crate) fn persisted(&mut self, id: PersistId) {
        if let Some(pos) = self.in_flight.iter().position(|(p, _)| *p == id) {
            for (_, g) in self.in_flight.drain(..=pos) {
                self.durable = self.durable.max(g);
            }
        }
    }

    /// `base` plus a random extra below the configured jitter.
    pub(crate) fn jittered(&mut self, base: Duration) -> Duration {
        let jitter = self.config.timeout_jitter;
        if jitter.is_zero() {
            base
        } else {
            base + self.rng.gen_duration(Duration::ZERO..jitter)
        }
    }

    pub(crate) fn leader_deadline(&mut self, now: Instant) -> Instant {
        now + self.jittered(self.config.leader_timeout)
    }

    pub(crate) fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            leader: self.view,
            max_seen: self.max_seen,
            durable: self.durable,
        }
    }

    pub(crate) fn answer<P: ElectionProtocol>(
        &self,
        id: RequestId,
        request: Request,
        out: &mut dsp_core::Outputs<P>,
    ) {
        let response = match request {
            Request::WhoIsLeader => Response::Leader(self.view),
            Request::Status => Response::Status(self.status()),
        };
        out.reply(id, response);
    }

    /// Leaves the leader role (if held) and clears the view, for a new election.
    pub(crate) fn become_candidate<P: ElectionProtocol>(&mut self, out: &mut dsp_core::Outputs<P>) {
        self.epoch += 1;
        if let (Role::Leader, Some(view)) = (self.role, self.view) {
            out.event(Event::SteppedDown {
                generation: view.generation,
            });
        }
        self.role = Role::Candidate;
        self.view = None;
        out.event(Event::ElectionStarted {
            generation: self.max_seen,
        });
    }

    /// Takes the leader role in `g` (the caller has checked `g` is acceptable).
    pub(crate) fn become_leader<P: ElectionProtocol>(
        &mut self,
        g: Generation,
        out: &mut dsp_core::Outputs<P>,
    ) {
        self.ensure_persisted(g, out);
        self.epoch += 1;
        self.role = Role::Leader;
        self.view = Some(LeaderView {
            leader: self.id,
            generation: g,
        });
        out.event(Event::BecameLeader { generation: g });
        out.event(Event::LeaderElected {
            leader: self.id,
            generation: g,
        });
    }

    /// Follows `leader` in `g` (the caller has checked `g >= max_seen` and `leader != id`).
    /// Returns whether the view changed (the caller re-arms its leader timeout either way).
    pub(crate) fn follow<P: ElectionProtocol>(
        &mut self,
        leader: NodeId,
        g: Generation,
        out: &mut dsp_core::Outputs<P>,
    ) -> bool {
        self.ensure_persisted(g, out);
        let view = LeaderView {
            leader,
            generation: g,
        };
        let changed = self.view != Some(view) || self.role != Role::Follower;
        if changed {
            self.epoch += 1;
            if let (Role::Leader, Some(old)) = (self.role, self.view) {
                out.event(Event::SteppedDown {
                    generation: old.generation,
                });
            }
            self.role = Role::Follower;
            self.view = Some(view);
            out.event(Event::LeaderElected {
                leader,
                generation: g,
            });
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn core(id: u64, n: u64) -> Core {
        let config = ElectionConfig::with_members((1..=n).map(NodeId));
        Core::new(NodeId(id), config, DetRng::from_seed(1), []).unwrap()
    }

    #[test]
    fn minted_generations_are_disjoint_and_above_everything_seen() {
        let mut all = std::collections::BTreeSet::new();
        for id in 1..=5 {
            let mut c = core(id, 5);
            for seen in 0..40 {
                c.max_seen = Generation(seen);
                let g = c.mint();
                assert!(g > Generation(seen));
                assert!(g.get() <= seen + 5);
                assert_eq!(g.get() % 5, id % 5);
                all.insert((g, id));
            }
        }
        // No generation was minted by two different nodes.
        let mut by_gen = std::collections::BTreeMap::new();
        for (g, id) in all {
            assert_eq!(*by_gen.entry(g).or_insert(id), id);
        }
    }

    #[test]
    fn recover_takes_the_highest_durable_generation() {
        let config = ElectionConfig::with_members([NodeId(1), NodeId(2)]);
        let durable = [
            Persist::Generation(Generation(4)),
            Persist::Generation(Generation(2)),
        ];
        let c = Core::new(NodeId(1), config, DetRng::from_seed(1), &durable).unwrap();
        assert_eq!(c.status().durable, Generation(4));
        assert_eq!(c.max_seen, Generation(4));
    }
}
