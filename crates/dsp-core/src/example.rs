//! A tiny protocol that exercises every part of the [contract](crate::protocol): the reference
//! for driver authors and the subject of driver tests.
//!
//! Each [`PingPong`] node keeps a durable counter. A client [`Request::Increment`] persists the
//! new value and replies only once it is durable; [`Request::Get`] reads it. Every `interval` each
//! node pings its peers with its counter; a peer answers with a pong carrying its own. Nodes
//! remember the highest counter they have heard from each peer (volatile state, lost on a crash).
//!
//! ```
//! use std::time::Duration;
//! use dsp_core::example::{Config, Msg, PingPong, Request, Response, Timer};
//! use dsp_core::{Input, Instant, NodeId, Output, Outputs, PersistId, Protocol, RequestId};
//!
//! let mut a = PingPong::new(NodeId(1), vec![NodeId(2)], Config::default());
//! let mut out = Outputs::new();
//! a.handle(Instant::ZERO, Input::Start, &mut out);
//! // Start arms the heartbeat timer.
//! assert!(matches!(out.pop(), Some(Output::SetTimer { timer: Timer::Heartbeat { .. }, .. })));
//!
//! a.handle(Instant::ZERO, Input::Request { id: RequestId(9), request: Request::Increment }, &mut out);
//! assert!(matches!(out.pop(), Some(Output::Persist { id: PersistId(1), .. })));
//! assert!(matches!(out.pop(), Some(Output::Reply { id: RequestId(9), response: Response::Value(1) })));
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Input, Instant, NodeId, Outputs, PersistId, Protocol};

/// Configuration of a [`PingPong`] node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How often a node pings its peers.
    pub interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
        }
    }
}

/// A message between [`PingPong`] nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// "My counter is `counter`; tell me yours."
    Ping {
        /// The sender's durable counter.
        counter: u64,
    },
    /// "My counter is `counter`."
    Pong {
        /// The sender's durable counter.
        counter: u64,
    },
}

/// The timers of a [`PingPong`] node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Time to ping the peers. `epoch` detects stale firings.
    Heartbeat {
        /// Incremented each time the timer is re-armed.
        epoch: u64,
    },
}

/// What a [`PingPong`] node persists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// The counter now has this value.
    Counter(u64),
}

/// A client request to a [`PingPong`] node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Add one to the counter, durably.
    Increment,
    /// Read the counter.
    Get,
}

/// The reply to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The counter's value after the request.
    Value(u64),
}

/// What a [`PingPong`] node reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer's counter, higher than any heard from it before.
    PeerCounter {
        /// The peer.
        peer: NodeId,
        /// Its counter.
        counter: u64,
    },
    /// A message arrived from a node that is not a peer; it was ignored.
    UnknownPeer(NodeId),
}

/// The example protocol node.
#[derive(Clone, Debug)]
pub struct PingPong {
    id: NodeId,
    peers: Vec<NodeId>,
    config: Config,
    counter: u64,
    next_persist: u64,
    heartbeat_epoch: u64,
    heard: BTreeMap<NodeId, u64>,
}

impl PingPong {
    /// A fresh node with counter zero.
    pub fn new(id: NodeId, peers: Vec<NodeId>, config: Config) -> Self {
        Self {
            id,
            peers: peers.into_iter().filter(|&p| p != id).collect(),
            config,
            counter: 0,
            next_persist: 1,
            heartbeat_epoch: 0,
            heard: BTreeMap::new(),
        }
    }

    /// Rebuilds a node from its durable persists, in the order they were emitted (rule 7).
    pub fn recover<'a>(
        id: NodeId,
        peers: Vec<NodeId>,
        config: Config,
        durable: impl IntoIterator<Item = &'a Persist>,
    ) -> Self {
        let mut node = Self::new(id, peers, config);
        for op in durable {
            match op {
                Persist::Counter(v) => node.counter = *v,
            }
        }
        node
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The counter (the last value the node asked to persist).
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The highest counter heard from each peer since the node started.
    pub fn heard(&self) -> &BTreeMap<NodeId, u64> {
        &self.heard
    }

    fn arm_heartbeat(&mut self, now: Instant, out: &mut Outputs<Self>) {
        self.heartbeat_epoch += 1;
        out.set_timer(
            Timer::Heartbeat {
                epoch: self.heartbeat_epoch,
            },
            now + self.config.interval,
        );
    }

    fn hear(&mut self, peer: NodeId, counter: u64, out: &mut Outputs<Self>) -> bool {
        if !self.peers.contains(&peer) {
            out.event(Event::UnknownPeer(peer));
            return false;
        }
        let known = self.heard.entry(peer).or_insert(0);
        if counter > *known {
            *known = counter;
            out.event(Event::PeerCounter { peer, counter });
        }
        true
    }
}

impl Protocol for PingPong {
    type Message = Msg;
    type Timer = Timer;
    type Persist = Persist;
    type Request = Request;
    type Response = Response;
    type Event = Event;

    fn handle(&mut self, now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        match input {
            Input::Start => self.arm_heartbeat(now, out),
            Input::Timer(Timer::Heartbeat { epoch }) => {
                if epoch != self.heartbeat_epoch {
                    return; // stale (rule 3 for protocols)
                }
                for &peer in &self.peers {
                    out.send(
                        peer,
                        Msg::Ping {
                            counter: self.counter,
                        },
                    );
                }
                self.arm_heartbeat(now, out);
            }
            Input::Message {
                from,
                msg: Msg::Ping { counter },
            } => {
                if self.hear(from, counter, out) {
                    out.send(
                        from,
                        Msg::Pong {
                            counter: self.counter,
                        },
                    );
                }
            }
            Input::Message {
                from,
                msg: Msg::Pong { counter },
            } => {
                self.hear(from, counter, out);
            }
            Input::Request {
                id,
                request: Request::Increment,
            } => {
                self.counter += 1;
                let pid = PersistId(self.next_persist);
                self.next_persist += 1;
                out.persist(pid, Persist::Counter(self.counter));
                // Emitted after the persist: the driver holds it until the counter is durable.
                out.reply(id, Response::Value(self.counter));
            }
            Input::Request {
                id,
                request: Request::Get,
            } => {
                out.reply(id, Response::Value(self.counter));
            }
            Input::Persisted(_) => {}
        }
    }
}
