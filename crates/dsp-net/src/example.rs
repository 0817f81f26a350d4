//! [`Echo`], a tiny serde-ready protocol for examples, benchmarks and smoke tests of the runtime.

use std::collections::BTreeMap;

use dsp_core::{Input, Instant, NodeId, Outputs, Protocol, RequestId};
use serde::{Deserialize, Serialize};

/// A request to an [`Echo`] node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EchoRequest {
    /// Reply with these bytes at once.
    Echo(Vec<u8>),
    /// Send these bytes to peer `to`, which sends them back; reply when they return.
    Relay {
        /// The peer.
        to: NodeId,
        /// The bytes.
        payload: Vec<u8>,
    },
}

/// A message between [`Echo`] nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EchoMsg {
    /// "Send `payload` back with this tag."
    Ping {
        /// The sender's correlation tag.
        tag: u64,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// The answer to a ping.
    Pong {
        /// The tag of the ping.
        tag: u64,
        /// The bytes.
        payload: Vec<u8>,
    },
}

/// A stateless echo node: answers requests with their payload, directly or after a round trip
/// through a peer. It persists nothing and sets no timers.
#[derive(Debug, Default)]
pub struct Echo {
    relays: BTreeMap<u64, RequestId>,
    next_tag: u64,
}

impl Echo {
    /// A fresh node.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Protocol for Echo {
    type Message = EchoMsg;
    type Timer = ();
    type Persist = ();
    type Request = EchoRequest;
    type Response = Vec<u8>;
    type Event = ();

    fn handle(&mut self, _now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        match input {
            Input::Request {
                id,
                request: EchoRequest::Echo(bytes),
            } => out.reply(id, bytes),
            Input::Request {
                id,
                request: EchoRequest::Relay { to, payload },
            } => {
                self.next_tag += 1;
                self.relays.insert(self.next_tag, id);
                out.send(
                    to,
                    EchoMsg::Ping {
                        tag: self.next_tag,
                        payload,
                    },
                );
            }
            Input::Message {
                from,
                msg: EchoMsg::Ping { tag, payload },
            } => {
                out.send(from, EchoMsg::Pong { tag, payload });
            }
            Input::Message {
                msg: EchoMsg::Pong { tag, payload },
                ..
            } => {
                if let Some(id) = self.relays.remove(&tag) {
                    out.reply(id, payload);
                }
            }
            _ => {}
        }
    }
}
