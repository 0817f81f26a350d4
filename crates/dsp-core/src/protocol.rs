//! The sans-IO protocol contract shared by every networked and durable protocol in dsp.
//!
//! A protocol is a deterministic state machine. It never opens a socket, touches a disk, reads a
//! clock, sleeps, spawns or draws randomness of its own. A *driver* feeds it [`Input`]s — the
//! start signal, a peer's message, a timer that fired, a client request, the completion of a
//! persistence request — together with the current time, and carries out the [`Output`]s it
//! emits — messages to peers, data to persist, timers to set, replies to clients, events. The same
//! protocol code therefore runs under `dsp-sim` (one thread, virtual time, injected faults, many
//! seeds) and under `dsp-net` (tokio, real TCP, real disks), and can be stepped by hand in a unit
//! test (see [`crate::example`]).
//!
//! # Why one ordered stream of outputs
//!
//! Replicated protocols must make some state durable before a message that depends on it leaves
//! the node: a Raft follower must persist entries before acknowledging them, a voter must persist
//! its vote before granting it, a 2PC participant must log "prepared" before answering "yes".
//! Instead of a separate "ready" handshake, the contract makes the order of outputs meaningful: a
//! protocol emits a [`Output::Persist`] *before* the sends that depend on it, and the driver holds
//! those sends back until the write is durable. Sends that do not depend on a write are emitted
//! before it, and go out at once — which is how a Raft leader writes its own log in parallel with
//! replicating it.
//!
//! # The rules
//!
//! A driver:
//!
//! 1. MUST call [`Protocol::handle`] for one node from one thread at a time, with a `now` that
//!    never decreases for the lifetime of that node value. Instants are only comparable within
//!    one incarnation: a protocol MUST NOT persist an [`Instant`] and compare it after a restart
//!    (a real restart gets a new clock origin).
//! 2. MUST deliver [`Input::Start`] exactly once, before any other input, each time it constructs
//!    a node — whether fresh or rebuilt after a crash.
//! 3. MUST treat all outputs of a node, across calls, as one ordered stream, and MUST NOT carry
//!    out a [`Output::Send`], [`Output::Reply`] or [`Output::Event`] until every
//!    [`Output::Persist`] that precedes it in the stream is durable. Outputs that precede a persist
//!    MAY be carried out before, during or after it.
//! 4. MUST make persists durable in stream order: after a crash, the durable persists are always a
//!    prefix of those emitted. A driver that cannot make a persist durable (disk full, I/O error)
//!    MUST stop the node rather than carry out anything after it (fail-stop).
//! 5. MUST deliver [`Input::Persisted`] exactly once for each persist, after it is durable and in
//!    stream order, and never for a persist of a previous incarnation of the node.
//! 6. MUST deliver [`Input::Timer`] for a timer set with [`Output::SetTimer`] no earlier than its
//!    deadline (by the driver's clock) and at most once per setting. Setting a timer equal (`==`)
//!    to a pending one replaces that one's deadline; [`Output::CancelTimer`] removes a pending
//!    equal timer. Timers do not survive a crash. Timer outputs are not held back by rule 3.
//! 7. On restart after a crash, MUST rebuild the node from exactly its durable persists, in order
//!    (how is the protocol's constructor's business: typically a `recover` function that folds
//!    them). Nothing else survives: not volatile state, not timers, not queued messages. Before
//!    it loads the durable persists for a new incarnation, the driver MUST have stopped every
//!    effect of the old one: no write, send, reply or timer of a dead incarnation may land after
//!    its successor has started (an in-process "crash" must fence its storage writer too).
//! 8. MAY lose, delay, duplicate and reorder messages, and MAY lose requests and replies (the
//!    network does); it MUST NOT corrupt or forge them. A client that retries MAY cause the
//!    same request to arrive more than once under different [`RequestId`]s: a protocol that needs
//!    at-most-once execution carries a client id and sequence number in the request itself.
//!
//! When a persist becomes durable, a driver releases the outputs it held back and delivers
//! [`Input::Persisted`]; protocols MUST NOT depend on the relative order of those two.
//!
//! A protocol:
//!
//! 1. MUST be deterministic: its outputs depend only on its construction arguments (including any
//!    [`DetRng`](crate::DetRng) it was given) and the sequence of `(now, input)` it received.
//! 2. MUST emit a persist before any send, reply or event that relies on that state being durable.
//! 3. MUST tolerate a timer it no longer wants: a cancel can race with a firing in a real driver.
//!    Put a token (an epoch, a counter) in the timer value and ignore stale ones.
//! 4. MUST tolerate lost, delayed, duplicated and reordered messages, and inputs for requests or
//!    peers it does not know; bad input from a peer is dropped (and may be reported as an event),
//!    never a panic.
//! 5. SHOULD reply to every request exactly once; a driver may still lose the reply.

use std::collections::VecDeque;
use std::fmt::Debug;

use crate::{Instant, NodeId, PersistId, RequestId};

/// A sans-IO protocol node. See the [module documentation](self) for the rules.
pub trait Protocol {
    /// A message between nodes of the protocol. Cloned when a network duplicates it.
    type Message: Clone + Debug;
    /// A timer's identity and token. Equal values name the same timer.
    type Timer: Clone + Debug + PartialEq;
    /// A request to make some state durable, e.g. "append these entries" or "set term 7".
    type Persist: Debug;
    /// A client request.
    type Request: Debug;
    /// The reply to a client request.
    type Response: Debug;
    /// Something the node reports to its operator or test harness, e.g. "became leader".
    type Event: Debug;

    /// Feeds one input to the node at time `now`; the node appends what it wants done to `out`.
    fn handle(&mut self, now: Instant, input: Input<Self>, out: &mut Outputs<Self>);
}

/// Something that happened to a node.
///
/// Deliberately exhaustive: a protocol must handle every input, so a new variant is a breaking
/// change that the compiler points out, never one silently ignored by a `_` arm.
pub enum Input<P: Protocol + ?Sized> {
    /// The node was just constructed (fresh, or rebuilt from its durable state after a crash).
    /// Delivered once, first. Typically arms the node's timers.
    Start,
    /// A message from a peer.
    Message {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: P::Message,
    },
    /// A timer set earlier has reached its deadline.
    Timer(P::Timer),
    /// A client request; answer it with [`Output::Reply`] carrying the same `id`.
    Request {
        /// Matches the reply to the request.
        id: RequestId,
        /// The request.
        request: P::Request,
    },
    /// The persist with this id is durable. Delivered once per persist, in emission order, so
    /// every persist emitted before it is durable too. Ids are the protocol's own and may
    /// restart with each incarnation: drivers never deliver a previous incarnation's completions.
    Persisted(PersistId),
}

/// Something a node wants its driver to do.
///
/// Deliberately exhaustive: a driver must carry out every output, so a new variant is a
/// breaking change that the compiler points out, never one silently dropped by a `_` arm.
pub enum Output<P: Protocol + ?Sized> {
    /// Send `msg` to `to`. Held back until preceding persists are durable.
    Send {
        /// The recipient (may be the node itself).
        to: NodeId,
        /// The message.
        msg: P::Message,
    },
    /// Make `op` durable, then deliver [`Input::Persisted`] with `id`.
    Persist {
        /// Echoed back in [`Input::Persisted`].
        id: PersistId,
        /// What to make durable.
        op: P::Persist,
    },
    /// Deliver [`Input::Timer`] with this value at or after `at`, replacing any pending equal timer.
    SetTimer {
        /// The timer (identity and token).
        timer: P::Timer,
        /// The deadline.
        at: Instant,
    },
    /// Remove a pending timer equal to this one, if any.
    CancelTimer(P::Timer),
    /// Answer the client request `id`. Held back until preceding persists are durable.
    Reply {
        /// The request being answered.
        id: RequestId,
        /// The answer.
        response: P::Response,
    },
    /// Report an event. Held back until preceding persists are durable.
    Event(P::Event),
}

impl<P: Protocol + ?Sized> Debug for Input<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Start => f.write_str("Start"),
            Input::Message { from, msg } => f
                .debug_struct("Message")
                .field("from", from)
                .field("msg", msg)
                .finish(),
            Input::Timer(t) => f.debug_tuple("Timer").field(t).finish(),
            Input::Request { id, request } => f
                .debug_struct("Request")
                .field("id", id)
                .field("request", request)
                .finish(),
            Input::Persisted(id) => f.debug_tuple("Persisted").field(id).finish(),
        }
    }
}

impl<P: Protocol + ?Sized> Debug for Output<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Send { to, msg } => f
                .debug_struct("Send")
                .field("to", to)
                .field("msg", msg)
                .finish(),
            Output::Persist { id, op } => f
                .debug_struct("Persist")
                .field("id", id)
                .field("op", op)
                .finish(),
            Output::SetTimer { timer, at } => f
                .debug_struct("SetTimer")
                .field("timer", timer)
                .field("at", at)
                .finish(),
            Output::CancelTimer(t) => f.debug_tuple("CancelTimer").field(t).finish(),
            Output::Reply { id, response } => f
                .debug_struct("Reply")
                .field("id", id)
                .field("response", response)
                .finish(),
            Output::Event(e) => f.debug_tuple("Event").field(e).finish(),
        }
    }
}

impl<P> PartialEq for Input<P>
where
    P: Protocol + ?Sized,
    P::Message: PartialEq,
    P::Request: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Input::Start, Input::Start) => true,
            (Input::Message { from: a, msg: x }, Input::Message { from: b, msg: y }) => {
                a == b && x == y
            }
            (Input::Timer(a), Input::Timer(b)) => a == b,
            (Input::Request { id: a, request: x }, Input::Request { id: b, request: y }) => {
                a == b && x == y
            }
            (Input::Persisted(a), Input::Persisted(b)) => a == b,
            _ => false,
        }
    }
}

/// Outputs compare equal when they are the same variant with equal fields, so protocol tests
/// can assert the exact output stream.
impl<P> PartialEq for Output<P>
where
    P: Protocol + ?Sized,
    P::Message: PartialEq,
    P::Persist: PartialEq,
    P::Response: PartialEq,
    P::Event: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Output::Send { to: a, msg: x }, Output::Send { to: b, msg: y }) => a == b && x == y,
            (Output::Persist { id: a, op: x }, Output::Persist { id: b, op: y }) => {
                a == b && x == y
            }
            (Output::SetTimer { timer: a, at: x }, Output::SetTimer { timer: b, at: y }) => {
                a == b && x == y
            }
            (Output::CancelTimer(a), Output::CancelTimer(b)) => a == b,
            (Output::Reply { id: a, response: x }, Output::Reply { id: b, response: y }) => {
                a == b && x == y
            }
            (Output::Event(a), Output::Event(b)) => a == b,
            _ => false,
        }
    }
}

impl<P: Protocol + ?Sized> Output<P> {
    /// Whether rule 3 holds this output back behind preceding persists.
    pub fn waits_for_persist(&self) -> bool {
        matches!(
            self,
            Output::Send { .. } | Output::Reply { .. } | Output::Event(_)
        )
    }
}

/// The ordered buffer a node appends its outputs to.
///
/// Drivers own one per node and drain it after each [`Protocol::handle`] call, in order.
pub struct Outputs<P: Protocol + ?Sized> {
    queue: VecDeque<Output<P>>,
}

impl<P: Protocol + ?Sized> Default for Outputs<P> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
        }
    }
}

impl<P: Protocol + ?Sized> Debug for Outputs<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.queue.iter()).finish()
    }
}

impl<P: Protocol + ?Sized> Outputs<P> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends any output.
    pub fn push(&mut self, output: Output<P>) {
        self.queue.push_back(output);
    }

    /// Appends [`Output::Send`].
    pub fn send(&mut self, to: NodeId, msg: P::Message) {
        self.push(Output::Send { to, msg });
    }

    /// Appends [`Output::Persist`].
    pub fn persist(&mut self, id: PersistId, op: P::Persist) {
        self.push(Output::Persist { id, op });
    }

    /// Appends [`Output::SetTimer`].
    pub fn set_timer(&mut self, timer: P::Timer, at: Instant) {
        self.push(Output::SetTimer { timer, at });
    }

    /// Appends [`Output::CancelTimer`].
    pub fn cancel_timer(&mut self, timer: P::Timer) {
        self.push(Output::CancelTimer(timer));
    }

    /// Appends [`Output::Reply`].
    pub fn reply(&mut self, id: RequestId, response: P::Response) {
        self.push(Output::Reply { id, response });
    }

    /// Appends [`Output::Event`].
    pub fn event(&mut self, event: P::Event) {
        self.push(Output::Event(event));
    }

    /// Removes and returns the oldest output.
    pub fn pop(&mut self) -> Option<Output<P>> {
        self.queue.pop_front()
    }

    /// Removes and returns all outputs, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Output<P>> + '_ {
        self.queue.drain(..)
    }

    /// The buffered outputs, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Output<P>> + '_ {
        self.queue.iter()
    }

    /// The number of buffered outputs.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Discards everything buffered (a driver does this when the node crashes).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

/// A helper for drivers: applies rule 3 to the stream of a node's outputs.
///
/// Push every output the node emits with [`PersistGate::extend`], then take what may be carried
/// out now with [`PersistGate::ready`]. Persists are released at once (a driver starts writing
/// them, in order, possibly batching several into one sync); each send, reply or event is released
/// only when every persist emitted before it is durable, which the driver reports with
/// [`PersistGate::persisted`]. Timer outputs are never held back. Released outputs keep their
/// relative stream order.
///
/// ```
/// # use dsp_core::example::{PingPong, Request};
/// # use dsp_core::{Instant, NodeId, Outputs, Output, PersistId, RequestId, Input, Protocol};
/// # use dsp_core::protocol::PersistGate;
/// let mut node = PingPong::new(NodeId(1), vec![NodeId(2)], Default::default());
/// let mut out = Outputs::new();
/// node.handle(Instant::ZERO, Input::Request { id: RequestId(1), request: Request::Increment }, &mut out);
/// let mut gate = PersistGate::new();
/// gate.extend(&mut out);
/// // Only the persist is released; the reply waits for it.
/// let first: Vec<_> = gate.ready().collect();
/// assert!(matches!(first.as_slice(), [Output::Persist { .. }]));
/// assert!(gate.persisted(PersistId(1)));
/// assert!(gate.ready().any(|o| matches!(o, Output::Reply { .. })));
/// ```
pub struct PersistGate<P: Protocol + ?Sized> {
    /// Outputs that may be carried out now, in order.
    released: VecDeque<Output<P>>,
    /// Held outputs with the number of persists that must be durable first, in order.
    held: VecDeque<(u64, Output<P>)>,
    /// Persists released and not yet durable, in order.
    in_flight: VecDeque<PersistId>,
    /// Persists released so far.
    issued: u64,
    /// Persists known to be durable.
    durable: u64,
}

impl<P: Protocol + ?Sized> Default for PersistGate<P> {
    fn default() -> Self {
        Self {
            released: VecDeque::new(),
            held: VecDeque::new(),
            in_flight: VecDeque::new(),
            issued: 0,
            durable: 0,
        }
    }
}

impl<P: Protocol + ?Sized> Debug for PersistGate<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistGate")
            .field("released", &self.released.len())
            .field("held", &self.held.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<P: Protocol + ?Sized> PersistGate<P> {
    /// An empty gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one output to the stream.
    pub fn push(&mut self, output: Output<P>) {
        match output {
            Output::Persist { id, op } => {
                self.issued += 1;
                self.in_flight.push_back(id);
                self.released.push_back(Output::Persist { id, op });
            }
            o if o.waits_for_persist() && self.durable < self.issued => {
                self.held.push_back((self.issued, o));
            }
            o => self.released.push_back(o),
        }
    }

    /// Appends everything in `outputs` (draining it) to the stream.
    pub fn extend(&mut self, outputs: &mut Outputs<P>) {
        for o in outputs.drain() {
            self.push(o);
        }
    }

    /// Takes the outputs that may be carried out now, in order.
    ///
    /// A released [`Output::Persist`] stays in flight until [`PersistGate::persisted`] is called
    /// with its id.
    pub fn ready(&mut self) -> impl Iterator<Item = Output<P>> + '_ {
        self.released.drain(..)
    }

    /// Records that the in-flight persist `id` (and every earlier one) is durable, releasing the
    /// outputs that waited for it.
    ///
    /// Returns `false`, and changes nothing, if `id` is not in flight.
    pub fn persisted(&mut self, id: PersistId) -> bool {
        let Some(pos) = self.in_flight.iter().position(|&p| p == id) else {
            return false;
        };
        self.in_flight.drain(..=pos);
        self.durable += pos as u64 + 1;
        while self
            .held
            .front()
            .is_some_and(|(needs, _)| *needs <= self.durable)
        {
            if let Some((_, o)) = self.held.pop_front() {
                self.released.push_back(o);
            }
        }
        true
    }

    /// Whether nothing is released, held or in flight.
    pub fn is_idle(&self) -> bool {
        self.released.is_empty() && self.held.is_empty() && self.in_flight.is_empty()
    }

    /// The persists released and not yet durable, oldest first.
    pub fn in_flight(&self) -> impl Iterator<Item = PersistId> + '_ {
        self.in_flight.iter().copied()
    }

    /// Forgets everything (the node crashed).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}
