//! Steps the example protocol by hand and checks the exact outputs, and the driver-side ordering
//! helper.

use std::time::Duration;

use dsp_core::example::{Config, Event, Msg, Persist, PingPong, Request, Response, Timer};
use dsp_core::protocol::PersistGate;
use dsp_core::{
    Clock, Input, ManualClock, NodeId, Output, Outputs, PersistId, Protocol, RequestId,
};

type Out = Output<PingPong>;

fn collect(out: &mut Outputs<PingPong>) -> Vec<String> {
    out.drain().map(|o| format!("{o:?}")).collect()
}

#[test]
fn example_protocol_emits_exact_outputs_when_stepped_by_hand() {
    let clock = ManualClock::new();
    let interval = Duration::from_millis(50);
    let mut a = PingPong::new(
        NodeId(1),
        vec![NodeId(1), NodeId(2), NodeId(3)],
        Config { interval },
    );
    let mut b = PingPong::new(NodeId(2), vec![NodeId(1), NodeId(3)], Config { interval });
    let mut out = Outputs::new();

    a.handle(clock.now(), Input::Start, &mut out);
    assert_eq!(
        collect(&mut out),
        [format!(
            "{:?}",
            Out::SetTimer {
                timer: Timer::Heartbeat { epoch: 1 },
                at: clock.now() + interval
            }
        )]
    );

    // A stale heartbeat (old epoch) does nothing.
    a.handle(
        clock.now(),
        Input::Timer(Timer::Heartbeat { epoch: 0 }),
        &mut out,
    );
    assert!(out.is_empty());

    clock.advance(interval);
    a.handle(
        clock.now(),
        Input::Timer(Timer::Heartbeat { epoch: 1 }),
        &mut out,
    );
    let expected: Vec<String> = vec![
        format!(
            "{:?}",
            Out::Send {
                to: NodeId(2),
                msg: Msg::Ping { counter: 0 }
            }
        ),
        format!(
            "{:?}",
            Out::Send {
                to: NodeId(3),
                msg: Msg::Ping { counter: 0 }
            }
        ),
        format!(
            "{:?}",
            Out::SetTimer {
                timer: Timer::Heartbeat { epoch: 2 },
                at: clock.now() + interval
            }
        ),
    ];
    assert_eq!(collect(&mut out), expected);

    // b increments twice; each reply follows its persist.
    for (rid, value) in [(10, 1), (11, 2)] {
        b.handle(
            clock.now(),
            Input::Request {
                id: RequestId(rid),
                request: Request::Increment,
            },
            &mut out,
        );
        assert_eq!(
            collect(&mut out),
            [
                format!(
                    "{:?}",
                    Out::Persist {
                        id: PersistId(value),
                        op: Persist::Counter(value)
                    }
                ),
                format!(
                    "{:?}",
                    Out::Reply {
                        id: RequestId(rid),
                        response: Response::Value(value)
                    }
                ),
            ]
        );
    }

    // a pings b; b answers with its counter and reports a's.
    b.handle(
        clock.now(),
        Input::Message {
            from: NodeId(1),
            msg: Msg::Ping { counter: 0 },
        },
        &mut out,
    );
    assert_eq!(
        collect(&mut out),
        [format!(
            "{:?}",
            Out::Send {
                to: NodeId(1),
                msg: Msg::Pong { counter: 2 }
            }
        )]
    );

    a.handle(
        clock.now(),
        Input::Message {
            from: NodeId(2),
            msg: Msg::Pong { counter: 2 },
        },
        &mut out,
    );
    assert_eq!(
        collect(&mut out),
        [format!(
            "{:?}",
            Out::Event(Event::PeerCounter {
                peer: NodeId(2),
                counter: 2
            })
        )]
    );
    // A duplicate pong changes nothing.
    a.handle(
        clock.now(),
        Input::Message {
            from: NodeId(2),
            msg: Msg::Pong { counter: 2 },
        },
        &mut out,
    );
    assert!(out.is_empty());
    // A stranger is reported, not answered.
    a.handle(
        clock.now(),
        Input::Message {
            from: NodeId(9),
            msg: Msg::Ping { counter: 5 },
        },
        &mut out,
    );
    assert_eq!(
        collect(&mut out),
        [format!("{:?}", Out::Event(Event::UnknownPeer(NodeId(9))))]
    );
    assert_eq!(a.heard().get(&NodeId(2)), Some(&2));

    // Crash b: rebuild from its durable persists only.
    let durable = [Persist::Counter(1), Persist::Counter(2)];
    let mut b2 = PingPong::recover(
        NodeId(2),
        vec![NodeId(1), NodeId(3)],
        Config { interval },
        &durable,
    );
    b2.handle(
        clock.now(),
        Input::Request {
            id: RequestId(12),
            request: Request::Get,
        },
        &mut out,
    );
    assert_eq!(
        collect(&mut out),
        [format!(
            "{:?}",
            Out::Reply {
                id: RequestId(12),
                response: Response::Value(2)
            }
        )]
    );
}

#[test]
fn gate_holds_replies_behind_persists_but_not_timers_or_earlier_sends() {
    let mut gate: PersistGate<PingPong> = PersistGate::new();
    gate.push(Out::Send {
        to: NodeId(2),
        msg: Msg::Ping { counter: 0 },
    });
    gate.push(Out::Persist {
        id: PersistId(1),
        op: Persist::Counter(1),
    });
    gate.push(Out::Reply {
        id: RequestId(1),
        response: Response::Value(1),
    });
    gate.push(Out::SetTimer {
        timer: Timer::Heartbeat { epoch: 1 },
        at: dsp_core::Instant::ZERO,
    });
    gate.push(Out::Persist {
        id: PersistId(2),
        op: Persist::Counter(2),
    });
    gate.push(Out::Reply {
        id: RequestId(2),
        response: Response::Value(2),
    });

    let first: Vec<_> = gate.ready().map(|o| format!("{o:?}")).collect();
    assert_eq!(
        first,
        [
            format!(
                "{:?}",
                Out::Send {
                    to: NodeId(2),
                    msg: Msg::Ping { counter: 0 }
                }
            ),
            format!(
                "{:?}",
                Out::Persist {
                    id: PersistId(1),
                    op: Persist::Counter(1)
                }
            ),
            format!(
                "{:?}",
                Out::SetTimer {
                    timer: Timer::Heartbeat { epoch: 1 },
                    at: dsp_core::Instant::ZERO
                }
            ),
            format!(
                "{:?}",
                Out::Persist {
                    id: PersistId(2),
                    op: Persist::Counter(2)
                }
            ),
        ]
    );
    assert!(
        !gate.persisted(PersistId(7)),
        "unknown persist ids are refused"
    );
    assert!(gate.persisted(PersistId(1)));
    let second: Vec<_> = gate.ready().map(|o| format!("{o:?}")).collect();
    assert_eq!(
        second,
        [format!(
            "{:?}",
            Out::Reply {
                id: RequestId(1),
                response: Response::Value(1)
            }
        )]
    );
    assert!(!gate.is_idle());
    assert!(gate.persisted(PersistId(2)));
    assert_eq!(gate.ready().count(), 1);
    assert!(gate.is_idle());
}

#[test]
fn gate_completing_a_later_persist_completes_earlier_ones() {
    let mut gate: PersistGate<PingPong> = PersistGate::new();
    for v in 1..=3 {
        gate.push(Out::Persist {
            id: PersistId(v),
            op: Persist::Counter(v),
        });
        gate.push(Out::Reply {
            id: RequestId(v),
            response: Response::Value(v),
        });
    }
    assert_eq!(gate.ready().count(), 3);
    assert!(gate.persisted(PersistId(2)));
    assert_eq!(gate.in_flight().collect::<Vec<_>>(), [PersistId(3)]);
    assert_eq!(gate.ready().count(), 2);
    // A reply emitted after everything is durable is released at once.
    assert!(gate.persisted(PersistId(3)));
    gate.push(Out::Reply {
        id: RequestId(9),
        response: Response::Value(3),
    });
    assert_eq!(gate.ready().count(), 2);
    assert!(gate.is_idle());
}

#[test]
fn outputs_compare_exactly() {
    let a: Out = Out::Reply {
        id: RequestId(1),
        response: Response::Value(1),
    };
    assert_eq!(
        a,
        Out::Reply {
            id: RequestId(1),
            response: Response::Value(1)
        }
    );
    assert_ne!(
        a,
        Out::Reply {
            id: RequestId(1),
            response: Response::Value(2)
        }
    );
    assert_ne!(a, Out::Event(Event::UnknownPeer(NodeId(1))));
    let i: Input<PingPong> = Input::Persisted(PersistId(3));
    assert_eq!(i, Input::Persisted(PersistId(3)));
    assert_ne!(i, Input::Start);
}
