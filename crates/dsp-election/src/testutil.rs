//! Helpers for hand-stepped tests: outputs as comparable values.

use dsp_core::{Input, Instant, NodeId, Output, Outputs, PersistId, Protocol, RequestId};

/// A comparable copy of an [`Output`].
#[derive(Debug, PartialEq)]
pub(crate) enum Out<M, T, S, R, E> {
    Send(NodeId, M),
    Persist(PersistId, S),
    SetTimer(T, Instant),
    CancelTimer(T),
    Reply(RequestId, R),
    Event(E),
}

/// The comparable outputs of protocol `P`.
pub(crate) type OutOf<P> = Out<
    <P as Protocol>::Message,
    <P as Protocol>::Timer,
    <P as Protocol>::Persist,
    <P as Protocol>::Response,
    <P as Protocol>::Event,
>;

/// Feeds `input` at `now` and returns the outputs.
pub(crate) fn step<P: Protocol>(node: &mut P, now: Instant, input: Input<P>) -> Vec<OutOf<P>> {
    let mut out = Outputs::new();
    node.handle(now, input, &mut out);
    out.drain()
        .map(|o| match o {
            Output::Send { to, msg } => Out::Send(to, msg),
            Output::Persist { id, op } => Out::Persist(id, op),
            Output::SetTimer { timer, at } => Out::SetTimer(timer, at),
            Output::CancelTimer(t) => Out::CancelTimer(t),
            Output::Reply { id, response } => Out::Reply(id, response),
            Output::Event(e) => Out::Event(e),
        })
        .collect()
}

/// A message input.
pub(crate) fn msg<P: Protocol>(from: u64, msg: P::Message) -> Input<P> {
    Input::Message {
        from: NodeId(from),
        msg,
    }
}
