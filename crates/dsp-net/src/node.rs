//! The node task (singular update queue) that drives one sans-IO protocol value, and its handle.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dsp_core::protocol::PersistGate;
use dsp_core::sync::atomic::Ordering;
use dsp_core::{Clock, Input, Instant, NodeId, Output, Outputs, PersistId, Protocol, RequestId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::TokioClock;
use crate::dedup::{IdempotencyTable, Seen};
use crate::frame::{self, Frame, RemoteError};
use crate::transport::{self, Counters, Ctx, Inbound};
use crate::{Error, NetConfig, Result, Storage};

/// A [`Protocol`] whose values can run under [`spawn`]: messages, persists, requests and
/// responses are serde types (they cross sockets and disks) and everything is `Send`.
///
/// Implemented automatically for every protocol that qualifies.
pub trait NetProtocol:
    Protocol<
        Message: Serialize + DeserializeOwned + Send + 'static,
        Persist: Serialize + DeserializeOwned + Send + 'static,
        Request: Serialize + DeserializeOwned + Send + 'static,
        Response: Serialize + DeserializeOwned + Send + 'static,
        Event: Send + 'static,
        Timer: Send + 'static,
    > + Send
    + 'static
{
}

impl<P> NetProtocol for P
where
    P: Protocol + Send + 'static,
    P::Message: Serialize + DeserializeOwned + Send + 'static,
    P::Persist: Serialize + DeserializeOwned + Send + 'static,
    P::Request: Serialize + DeserializeOwned + Send + 'static,
    P::Response: Serialize + DeserializeOwned + Send + 'static,
    P::Event: Send + 'static,
    P::Timer: Send + 'static,
{
}

type WireFrame<P> =
    Frame<<P as Protocol>::Message, <P as Protocol>::Request, <P as Protocol>::Response>;

/// A snapshot of a node's transport counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Outbound peer connections established (including reconnects).
    pub connects: u64,
    /// Connections closed because of a malformed, oversized or wrong-version frame.
    pub bad_frames: u64,
    /// Messages dropped because a peer's queue was full, the peer is unknown, or the message
    /// exceeded `max_frame`.
    pub dropped_messages: u64,
    /// Events dropped because the event receiver was full.
    pub dropped_events: u64,
    /// Socket writes to peers (each carries one batch of frames).
    pub batches: u64,
    /// Frames written to peers.
    pub frames_sent: u64,
}

enum Command<P: Protocol> {
    Request {
        request: P::Request,
        reply: oneshot::Sender<P::Response>,
    },
}

/// Sends local requests to a node through its bounded command queue. Cheap to clone.
pub struct Requester<P: Protocol> {
    commands: mpsc::Sender<Command<P>>,
}

impl<P: Protocol> Clone for Requester<P> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Requester<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester").finish_non_exhaustive()
    }
}

impl<P: Protocol> Requester<P> {
    /// Hands `request` to the node and waits for its reply. Waits for room when the command
    /// queue is full (backpressure). If the protocol never replies, this waits until the node
    /// stops: wrap it in `tokio::time::timeout` for protocols that may drop requests.
    ///
    /// # Errors
    /// [`Error::NodeStopped`] if the node stopped before replying (or the protocol dropped the
    /// request without replying).
    pub async fn request(&self, request: P::Request) -> Result<P::Response> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Request { request, reply })
            .await
            .map_err(|_| Error::NodeStopped)?;
        rx.await.map_err(|_| Error::NodeStopped)
    }

    /// Like [`request`](Self::request), but fails with [`Error::Busy`] instead of waiting when
    /// the command queue is full.
    ///
    /// # Errors
    /// [`Error::Busy`], or as [`request`](Self::request).
    pub async fn try_request(&self, request: P::Request) -> Result<P::Response> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .try_send(Command::Request { request, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Busy,
                mpsc::error::TrySendError::Closed(_) => Error::NodeStopped,
            })?;
        rx.await.map_err(|_| Error::NodeStopped)
    }
}

/// The handle of a running node: local requests, its address, its counters, and shutdown.
pub struct NodeHandle<P: Protocol> {
    id: NodeId,
    requester: Requester<P>,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Arc<Notify>,
    fence: Arc<StorageFence>,
    task: JoinHandle<Result<()>>,
}

impl<P: Protocol> std::fmt::Debug for NodeHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> NodeHandle<P> {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the node listens on (the actual port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A cloneable sender of local requests.
    pub fn requester(&self) -> Requester<P> {
        self.requester.clone()
    }

    /// Hands `request` to the node and waits for its reply (see [`Requester::request`]).
    ///
    /// # Errors
    /// [`Error::NodeStopped`] if the node stopped first.
    pub async fn request(&self, request: P::Request) -> Result<P::Response> {
        self.requester.request(request).await
    }

    /// Counters of the node's transport.
    pub fn stats(&self) -> NetStats {
        let c = &self.counters;
        NetStats {
            connects: c.connects.load(Ordering::Relaxed),
            bad_frames: c.bad_frames.load(Ordering::Relaxed),
            dropped_messages: c.dropped_messages.load(Ordering::Relaxed),
            dropped_events: c.dropped_events.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
        }
    }

    /// Whether the node task has ended (shut down or failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the node: the listener closes, every connection and task ends, persists already
    /// handed to storage complete. Returns how the node ended.
    ///
    /// # Errors
    /// [`Error::NodeFailed`] if the node had already stopped after a storage failure.
    pub async fn shutdown(self) -> Result<()> {
        // Not through the command queue: shutdown works even when that queue is full, or while
        // the node has stopped taking commands until storage catches up.
        self.stop.notify_one();
        self.wait().await
    }

    /// Stops the node abruptly, as a crash would: the node task is cancelled wherever it is,
    /// nothing queued is carried out, connections and the listener close as their tasks see the
    /// node gone. Persists already handed to storage may or may not complete (a real crash
    /// leaves a durable prefix, which is what a restarted node recovers from).
    ///
    /// When this returns, the node's storage is quiescent: an append in progress has finished
    /// (this blocks the calling thread for at most that one append) and nothing of this
    /// incarnation is appended afterwards, so a node restarted from the same storage is rebuilt
    /// from a prefix that does not grow behind its back.
    pub fn abort(self) {
        self.fence.stop();
        self.task.abort();
    }

    /// Waits until the node stops on its own (a storage failure, or every handle dropped) and
    /// returns how it ended, without asking it to stop.
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown).
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(Error::NodeFailed {
                node: self.id,
                reason: format!("node task: {e}"),
            }),
        }
    }
}

/// Where a reply goes.
enum ReplyTo<R> {
    Local(oneshot::Sender<R>),
    Remote {
        client_id: u64,
        seq: u64,
        conn: mpsc::Sender<Bytes>,
    },
}

/// The most queued peer messages and client requests handled per wake-up of the node task.
const INBOUND_BATCH: usize = 64;

type PersistBatch<T> = Vec<(PersistId, T)>;
type PersistDone = Result<Vec<PersistId>>;

/// Keeps a dead incarnation's storage quiescent. The storage thread appends only while holding
/// the lock and only if the node has not been stopped; [`StorageFence::stop`] takes the lock, so
/// once it returns no append is in progress and none will start. Without it, an aborted (or
/// panicked) node's storage thread could finish appends after a new incarnation loaded the same
/// storage, and interleave them with that incarnation's own (rules 4 and 7).
#[derive(Debug, Default)]
struct StorageFence {
    stopped: std::sync::Mutex<bool>,
}

impl StorageFence {
    fn lock(&self) -> std::sync::MutexGuard<'_, bool> {
        self.stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for an append in progress, then forbids any further one.
    fn stop(&self) {
        *self.lock() = true;
    }
}

/// Stops the storage fence when the node value is dropped, whether the task ended, was aborted or
/// panicked.
#[derive(Debug)]
struct StopOnDrop(Arc<StorageFence>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Spawns a node on the current tokio runtime and returns its handle and its events.
///
/// `storage` is loaded first (on a blocking thread) and `factory` builds the node from the
/// durable operations (rule 7; a fresh node gets an empty slice). Then the listener binds
/// `config.listen`, one single-socket-channel task starts per peer, and the node task starts by
/// delivering [`Input::Start`].
///
/// The node task owns the protocol value (singular update queue): requests, peer messages, client
/// requests, timers and persist completions all reach it through bounded channels, one at a time.
/// It obeys the driver rules of [`dsp_core::protocol`]: outputs pass through a
/// [`PersistGate`], persists are appended to `storage` (with `fsync`) in order on a blocking
/// thread, and only then are the sends, replies and events behind them carried out, followed by
/// [`Input::Persisted`]. If storage fails, the node stops at once (fail-stop): nothing behind the
/// failed persist is carried out, and [`NodeHandle::shutdown`] returns [`Error::NodeFailed`].
///
/// Events go to the returned receiver (capacity `config.event_queue`); when it is full, events
/// are dropped and counted ([`NetStats::dropped_events`]) rather than stalling the node.
///
/// # Errors
/// [`Error::InvalidConfig`], a storage load error, or [`Error::Io`] if the listener cannot bind.
pub async fn spawn<P, S>(
    config: NetConfig,
    mut storage: S,
    factory: impl FnOnce(&[P::Persist]) -> P,
) -> Result<(NodeHandle<P>, mpsc::Receiver<P::Event>)>
where
    P: NetProtocol,
    S: Storage<P::Persist>,
{
    config.validate()?;
    let (storage, durable) = tokio::task::spawn_blocking(move || {
        let durable = storage.load();
        (storage, durable)
    })
    .await
    .map_err(|e| Error::Storage(format!("load task: {e}")))?;
    let durable = durable?;
    let protocol = factory(&durable);
    drop(durable);

    let listener = TcpListener::bind(config.listen).await?;
    let local_addr = listener.local_addr()?;
    let config = Arc::new(config);
    let counters = Arc::new(Counters::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ctx = Ctx {
        id: config.id,
        config: Arc::clone(&config),
        counters: Arc::clone(&counters),
        shutdown: shutdown_rx,
    };

    let mut tasks = Vec::new();
    let mut peers = BTreeMap::new();
    for (&peer, &addr) in &config.peers {
        let (tx, rx) = mpsc::channel(config.peer_queue);
        peers.insert(peer, tx);
        tasks.push(tokio::spawn(transport::peer_sender(
            ctx.clone_ctx(),
            peer,
            addr,
            rx,
        )));
    }
    let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_queue);
    tasks.push(tokio::spawn(transport::accept_loop::<
        P::Message,
        P::Request,
        P::Response,
    >(ctx.clone_ctx(), listener, inbound_tx)));

    let (persist_tx, persist_rx) = mpsc::unbounded_channel::<PersistBatch<P::Persist>>();
    let (done_tx, done_rx) = mpsc::unbounded_channel::<PersistDone>();
    let fence = Arc::new(StorageFence::default());
    let worker_fence = Arc::clone(&fence);
    // A plain thread rather than `spawn_blocking`: a long-lived blocking task would stop paused
    // tokio time from auto-advancing in tests.
    std::thread::Builder::new()
        .name(format!("dsp-net-storage-{}", config.id))
        .spawn(move || storage_worker(storage, persist_rx, done_tx, &worker_fence))?;

    let (cmd_tx, cmd_rx) = mpsc::channel(config.command_queue);
    let stop = Arc::new(Notify::new());
    let (event_tx, event_rx) = mpsc::channel(config.event_queue);
    let node = Node::<P> {
        id: config.id,
        protocol,
        out: Outputs::new(),
        gate: PersistGate::new(),
        clock: TokioClock::new(),
        timers: Vec::new(),
        next_request: 0,
        replies: HashMap::new(),
        remote_pending: HashMap::new(),
        dedup: IdempotencyTable::new(
            config.dedup_clients,
            config.dedup_per_client,
            config.dedup_ttl,
        ),
        peers,
        local: VecDeque::new(),
        persist_tx: Some(persist_tx),
        unsynced: 0,
        events: event_tx,
        counters: Arc::clone(&counters),
        config: Arc::clone(&config),
        stop: Arc::clone(&stop),
        _fence: StopOnDrop(Arc::clone(&fence)),
    };
    let task = tokio::spawn(node.run(cmd_rx, inbound_rx, done_rx, shutdown_tx, tasks));
    let handle = NodeHandle {
        id: config.id,
        requester: Requester { commands: cmd_tx },
        local_addr,
        counters,
        stop,
        fence,
        task,
    };
    Ok((handle, event_rx))
}

/// Appends persist batches in order, coalescing whatever is queued into one append (group
/// commit), and reports completions. Stops at the first failure, and as soon as `fence` is
/// stopped (the node is gone).
fn storage_worker<T, S: Storage<T>>(
    mut storage: S,
    mut rx: mpsc::UnboundedReceiver<PersistBatch<T>>,
    done: mpsc::UnboundedSender<PersistDone>,
    fence: &StorageFence,
) {
    let mut ids = Vec::new();
    let mut ops = Vec::new();
    while let Some(batch) = rx.blocking_recv() {
        for (id, op) in batch
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()).flatten())
        {
            ids.push(id);
            ops.push(op);
        }
        let stopped = fence.lock();
        if *stopped {
            return;
        }
        let appended = storage.append(&ops);
        drop(stopped);
        match appended {
            Ok(()) => {
                ops.clear();
                if done.send(Ok(std::mem::take(&mut ids))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        }
    }
}

struct Node<P: NetProtocol> {
    id: NodeId,
    protocol: P,
    out: Outputs<P>,
    gate: PersistGate<P>,
    clock: TokioClock,
    /// Pending timers: at most one per distinct (`==`) timer value.
    timers: Vec<(Instant, P::Timer)>,
    next_request: u64,
    replies: HashMap<RequestId, ReplyTo<P::Response>>,
    remote_pending: HashMap<(u64, u64), RequestId>,
    dedup: IdempotencyTable<Bytes>,
    peers: BTreeMap<NodeId, mpsc::Sender<Bytes>>,
    /// Messages the node sent to itself, delivered as inputs in order.
    local: VecDeque<P::Message>,
    persist_tx: Option<mpsc::UnboundedSender<PersistBatch<P::Persist>>>,
    unsynced: usize,
    events: mpsc::Sender<P::Event>,
    counters: Arc<Counters>,
    config: Arc<NetConfig>,
    /// Signalled by [`NodeHandle::shutdown`].
    stop: Arc<Notify>,
    /// Dropped with the node value: its storage thread appends nothing afterwards.
    _fence: StopOnDrop,
}

impl<P: NetProtocol> Node<P> {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command<P>>,
        mut inbound: mpsc::Receiver<Inbound<P::Message, P::Request>>,
        mut done: mpsc::UnboundedReceiver<PersistDone>,
        shutdown: watch::Sender<bool>,
        tasks: Vec<JoinHandle<()>>,
    ) -> Result<()> {
        let result = self
            .event_loop(&mut commands, &mut inbound, &mut done)
            .await;
        if let Err(e) = &result {
            tracing::error!(node = %self.id, error = %e, "node stopped");
        }
        // Clean shutdown: stop every connection task and the listener, let storage finish what
        // it was given (never releasing what waited for it), then report.
        let _ = shutdown.send(true);
        self.persist_tx = None;
        drop(commands);
        drop(inbound);
        for t in tasks {
            let _ = t.await;
        }
        // The storage thread drops its sender when it has finished everything it was given.
        let mut result = result;
        while let Some(d) = done.recv().await {
            if let (Err(e), Ok(())) = (d, &result) {
                result = Err(self.failed(e));
            }
        }
        result
    }

    fn failed(&self, e: Error) -> Error {
        match e {
            e @ Error::NodeFailed { .. } => e,
            e => Error::NodeFailed {
                node: self.id,
                reason: e.to_string(),
            },
        }
    }

    async fn event_loop(
        &mut self,
        commands: &mut mpsc::Receiver<Command<P>>,
        inbound: &mut mpsc::Receiver<Inbound<P::Message, P::Request>>,
        done: &mut mpsc::UnboundedReceiver<PersistDone>,
    ) -> Result<()> {
        self.step(Input::Start)?;
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let stop = Arc::clone(&self.stop);
        loop {
            if let Some(msg) = self.local.pop_front() {
                self.step(Input::Message { from: self.id, msg })?;
                tokio::task::yield_now().await;
                continue;
            }
            let next = self.timers.iter().map(|(at, _)| *at).min();
            let wake = next.and_then(|at| self.clock.to_tokio(at));
            if next != armed {
                armed = next;
                if let Some(w) = wake {
                    sleep.as_mut().reset(w);
                }
            }
            let open = self.unsynced < self.config.max_unsynced_persists;
            tokio::select! {
                biased;
                () = stop.notified() => return Ok(()),
                d = done.recv() => match d {
                    Some(Ok(ids)) => self.persisted(ids)?,
                    Some(Err(e)) => return Err(self.failed(e)),
                    None => return Err(self.failed(Error::Storage("storage thread ended".into()))),
                },
                () = &mut sleep, if wake.is_some() => self.fire_timers()?,
                cmd = commands.recv(), if open => match cmd {
                    None => return Ok(()),
                    Some(Command::Request { request, reply }) => {
                        let id = self.request_id();
                        self.replies.insert(id, ReplyTo::Local(reply));
                        self.step(Input::Request { id, request })?;
                    }
                },
                msg = inbound.recv(), if open => {
                    let Some(first) = msg else { return Ok(()) };
                    // Take a bounded run of what is already queued in one wake-up.
                    let mut next = Some(first);
                    let mut budget = INBOUND_BATCH;
                    while let Some(msg) = next.take() {
                        match msg {
                            Inbound::Peer { from, msg } => self.step(Input::Message { from, msg })?,
                            Inbound::Client { client_id, seq, request, reply } => {
                                self.client_request(client_id, seq, request, reply)?;
                            }
                        }
                        budget -= 1;
                        if budget > 0 && self.unsynced < self.config.max_unsynced_persists {
                            next = inbound.try_recv().ok();
                        }
                    }
                }
            }
        }
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Idempotent receiver: a request already executed is answered from the table.
    fn client_request(
        &mut self,
        client_id: u64,
        seq: u64,
        request: P::Request,
        conn: mpsc::Sender<Bytes>,
    ) -> Result<()> {
        match self.dedup.check(client_id, seq, self.clock.now()) {
            Seen::Fresh => {
                let id = self.request_id();
                self.replies.insert(
                    id,
                    ReplyTo::Remote {
                        client_id,
                        seq,
                        conn,
                    },
                );
                self.remote_pending.insert((client_id, seq), id);
                self.step(Input::Request { id, request })?;
            }
            Seen::InProgress => {
                // Answer on the connection the client used last.
                if let Some(id) = self.remote_pending.get(&(client_id, seq))
                    && let Some(ReplyTo::Remote { conn: c, .. }) = self.replies.get_mut(id)
                {
                    *c = conn;
                }
            }
            Seen::Done(frame) => {
                tracing::debug!(node = %self.id, client_id, seq, "duplicate request answered from the table");
                let _ = conn.try_send(frame);
            }
            Seen::Expired => {
                let f = WireFrame::<P>::ClientResponse {
                    seq,
                    result: Err(RemoteError::Expired),
                };
                if let Ok(frame) = frame::encode(&f, self.config.max_frame) {
                    let _ = conn.try_send(frame);
                }
            }
        }
        Ok(())
    }

    fn persisted(&mut self, ids: Vec<PersistId>) -> Result<()> {
        for id in ids {
            self.unsynced = self.unsynced.saturating_sub(1);
            if self.gate.persisted(id) {
                self.carry_out()?;
            }
            self.step(Input::Persisted(id))?;
        }
        Ok(())
    }

    fn fire_timers(&mut self) -> Result<()> {
        let now = self.clock.now();
        let mut due: Vec<(Instant, P::Timer)> = self
            .timers
            .iter()
            .filter(|(at, _)| *at <= now)
            .cloned()
            .collect();
        due.sort_by_key(|(at, _)| *at);
        // Fire the timers due on entry, earliest first, one at a time: a firing may set or cancel
        // the others. Timers set during this call for a deadline already past fire on the next
        // turn of the loop, so a protocol that keeps re-arming at `now` cannot starve the task.
        for (_, timer) in due {
            let Some(pos) = self
                .timers
                .iter()
                .position(|(at, t)| *t == timer && *at <= now)
            else {
                continue; // cancelled or moved later by an earlier firing
            };
            let (_, timer) = self.timers.swap_remove(pos);
            self.step(Input::Timer(timer))?;
        }
        Ok(())
    }

    fn step(&mut self, input: Input<P>) -> Result<()> {
        let now = self.clock.now();
        self.protocol.handle(now, input, &mut self.out);
        self.gate.extend(&mut self.out);
        self.carry_out()
    }

    fn carry_out(&mut self) -> Result<()> {
        let ready: Vec<Output<P>> = self.gate.ready().collect();
        let mut persists = Vec::new();
        for output in ready {
            match output {
                Output::Send { to, msg } => self.send(to, msg),
                Output::Persist { id, op } => persists.push((id, op)),
                Output::SetTimer { timer, at } => {
                    match self.timers.iter_mut().find(|(_, t)| *t == timer) {
                        Some(slot) => slot.0 = at,
                        None => self.timers.push((at, timer)),
                    }
                }
                Output::CancelTimer(timer) => self.timers.retain(|(_, t)| *t != timer),
                Output::Reply { id, response } => self.reply(id, response),
                Output::Event(e) => match self.events.try_send(e) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(e)) => {
                        Counters::bump(&self.counters.dropped_events);
                        tracing::warn!(node = %self.id, event = ?e, "event queue full; event dropped");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                },
            }
        }
        if !persists.is_empty() {
            self.unsynced += persists.len();
            let sent = self.persist_tx.as_ref().map(|tx| tx.send(persists).is_ok());
            if sent != Some(true) {
                return Err(self.failed(Error::Storage("storage thread ended".into())));
            }
        }
        Ok(())
    }

    fn send(&mut self, to: NodeId, msg: P::Message) {
        if to == self.id {
            self.local.push_back(msg);
            return;
        }
        let Some(tx) = self.peers.get(&to) else {
            Counters::bump(&self.counters.dropped_messages);
            tracing::debug!(node = %self.id, %to, "message to unknown peer dropped");
            return;
        };
        let bytes = match frame::encode(&WireFrame::<P>::Message(msg), self.config.max_frame) {
            Ok(b) => b,
            Err(e) => {
                Counters::bump(&self.counters.dropped_messages);
                tracing::warn!(node = %self.id, %to, error = %e, "message not encodable; dropped");
                return;
            }
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(bytes) {
            Counters::bump(&self.counters.dropped_messages);
            tracing::debug!(node = %self.id, %to, "peer queue full; message dropped");
        }
    }

    fn reply(&mut self, id: RequestId, response: P::Response) {
        match self.replies.remove(&id) {
            Some(ReplyTo::Local(tx)) => {
                let _ = tx.send(response);
            }
            Some(ReplyTo::Remote {
                client_id,
                seq,
                conn,
            }) => {
                self.remote_pending.remove(&(client_id, seq));
                let f = WireFrame::<P>::ClientResponse {
                    seq,
                    result: Ok(response),
                };
                match frame::encode(&f, self.config.max_frame) {
                    Ok(frame) => {
                        self.dedup
                            .complete(client_id, seq, frame.clone(), self.clock.now());
                        let _ = conn.try_send(frame);
                    }
                    Err(e) => {
                        self.dedup.abandon(client_id, seq);
                        tracing::warn!(node = %self.id, client_id, seq, error = %e, "response not encodable");
                    }
                }
            }
            None => tracing::debug!(node = %self.id, ?id, "reply to an unknown request ignored"),
        }
    }
}
