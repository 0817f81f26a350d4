//! A labelled tour of dsp-core: three PingPong nodes stepped by a tiny hand-written driver that
//! applies the contract's ordering rule with `PersistGate`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use dsp_core::example::{Config, PingPong, Request};
use dsp_core::protocol::PersistGate;
use dsp_core::{Clock, Input, ManualClock, NodeId, Output, Outputs, Protocol, RequestId};

fn main() {
    println!(
        "dsp-core tour: 3 PingPong nodes, a virtual clock, and the persist-before-send rule\n"
    );
    let clock = ManualClock::new();
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes: BTreeMap<NodeId, PingPong> = ids
        .iter()
        .map(|&id| (id, PingPong::new(id, ids.to_vec(), Config::default())))
        .collect();
    let mut gates: BTreeMap<NodeId, PersistGate<PingPong>> =
        ids.iter().map(|&id| (id, PersistGate::new())).collect();
    let mut timers: Vec<(NodeId, dsp_core::Instant, dsp_core::example::Timer)> = Vec::new();
    let mut inbox: VecDeque<(NodeId, Input<PingPong>)> =
        ids.iter().map(|&id| (id, Input::Start)).collect();
    inbox.push_back((
        NodeId(2),
        Input::Request {
            id: RequestId(1),
            request: Request::Increment,
        },
    ));
    inbox.push_back((
        NodeId(2),
        Input::Request {
            id: RequestId(2),
            request: Request::Increment,
        },
    ));

    let mut out = Outputs::new();
    for round in 0..3 {
        while let Some((id, input)) = inbox.pop_front() {
            let Some(node) = nodes.get_mut(&id) else {
                continue;
            };
            node.handle(clock.now(), input, &mut out);
            let Some(gate) = gates.get_mut(&id) else {
                continue;
            };
            gate.extend(&mut out);
            // This driver's "disk" is instant: each released persist is durable at once.
            let mut durable = Vec::new();
            loop {
                let ready: Vec<_> = gate.ready().collect();
                if ready.is_empty() {
                    break;
                }
                for o in ready {
                    match o {
                        Output::Send { to, msg } => {
                            println!("  {id} -> {to}: {msg:?}");
                            inbox.push_back((to, Input::Message { from: id, msg }));
                        }
                        Output::Persist { id: pid, op } => {
                            println!("  {id} persists {op:?} (then replies may go out)");
                            durable.push(pid);
                            gate.persisted(pid);
                        }
                        Output::SetTimer { timer, at } => {
                            timers.retain(|(n, _, t)| !(*n == id && *t == timer));
                            timers.push((id, at, timer));
                        }
                        Output::CancelTimer(timer) => {
                            timers.retain(|(n, _, t)| !(*n == id && *t == timer))
                        }
                        Output::Reply { id: rid, response } => {
                            println!("  {id} replies to {rid:?}: {response:?}")
                        }
                        Output::Event(e) => println!("  {id} reports {e:?}"),
                    }
                }
            }
            for pid in durable {
                inbox.push_back((id, Input::Persisted(pid)));
            }
        }
        clock.advance(Duration::from_millis(100));
        println!(
            "\n-- round {round}: virtual time {:?}, firing due timers",
            clock.now()
        );
        let now = clock.now();
        let (due, later): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(_, at, _)| *at <= now);
        timers = later;
        for (id, _, t) in due {
            inbox.push_back((id, Input::Timer(t)));
        }
    }
    for (id, node) in &nodes {
        println!("{id}: counter {} heard {:?}", node.counter(), node.heard());
    }
    println!("\ntour done: every reply above was printed after the persist it depends on.");
}
