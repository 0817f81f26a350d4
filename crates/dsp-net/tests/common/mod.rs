//! Shared test helpers: a serde-ready wrapper around `dsp_core::example::PingPong`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use dsp_core::example::{self as pp, PingPong};
use dsp_core::{Input, Instant, NodeId, Output, Outputs, Protocol};
use serde::{Deserialize, Serialize};

/// `PingPong`'s message, with serde.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    Ping(u64),
    Pong(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Req {
    Increment,
    Get,
}

/// The counter value after the request.
pub type Resp = u64;

/// `PingPong` with serde-ready wire types (dsp-core's example types do not derive serde).
#[derive(Debug)]
pub struct Node {
    inner: PingPong,
    out: Outputs<PingPong>,
}

impl Node {
    pub fn new(id: NodeId, peers: Vec<NodeId>, interval: Duration, durable: &[u64]) -> Self {
        let ops: Vec<pp::Persist> = durable.iter().map(|&v| pp::Persist::Counter(v)).collect();
        let inner = PingPong::recover(id, peers, pp::Config { interval }, &ops);
        Self {
            inner,
            out: Outputs::new(),
        }
    }
}

impl Protocol for Node {
    type Message = Msg;
    type Timer = pp::Timer;
    type Persist = u64;
    type Request = Req;
    type Response = Resp;
    type Event = pp::Event;

    fn handle(&mut self, now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        let input = match input {
            Input::Start => Input::Start,
            Input::Message { from, msg } => Input::Message {
                from,
                msg: match msg {
                    Msg::Ping(c) => pp::Msg::Ping { counter: c },
                    Msg::Pong(c) => pp::Msg::Pong { counter: c },
                },
            },
            Input::Timer(t) => Input::Timer(t),
            Input::Request { id, request } => Input::Request {
                id,
                request: match request {
                    Req::Increment => pp::Request::Increment,
                    Req::Get => pp::Request::Get,
                },
            },
            Input::Persisted(id) => Input::Persisted(id),
        };
        self.inner.handle(now, input, &mut self.out);
        for o in self.out.drain() {
            match o {
                Output::Send { to, msg } => out.send(
                    to,
                    match msg {
                        pp::Msg::Ping { counter } => Msg::Ping(counter),
                        pp::Msg::Pong { counter } => Msg::Pong(counter),
                    },
                ),
                Output::Persist {
                    id,
                    op: pp::Persist::Counter(v),
                } => out.persist(id, v),
                Output::SetTimer { timer, at } => out.set_timer(timer, at),
                Output::CancelTimer(t) => out.cancel_timer(t),
                Output::Reply {
                    id,
                    response: pp::Response::Value(v),
                } => out.reply(id, v),
                Output::Event(e) => out.event(e),
            }
        }
    }
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A free port on 127.0.0.1 (bound then released; good enough for tests that restart a node on
/// the same address).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
