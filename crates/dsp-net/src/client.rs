//! A client of a node's request port: request pipeline, request batch, request waiting list, and
//! idempotent retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dsp_core::sync::atomic::{AtomicU64, Ordering};
use dsp_core::{Clock, Protocol};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::TokioClock;
use crate::frame::{self, Frame};
use crate::waiting::WaitingList;
use crate::{Error, Result};

/// Configuration of a [`Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The node's listen address.
    pub addr: SocketAddr,
    /// This client's id for the node's idempotent receiver; must be unique among its clients.
    /// [`ClientConfig::new`] derives one from the process id, the time and a counter.
    pub client_id: u64,
    /// Request pipeline: the most requests in flight at once; callers wait for room beyond it.
    /// Keep it below the node's `dedup_per_client`, or retries of the oldest requests in flight
    /// may be refused as expired.
    pub window: usize,
    /// Request waiting list: how long a request waits for its response.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The largest frame payload sent or accepted.
    pub max_frame: usize,
    /// Request batch: the most bytes of queued requests coalesced into one write.
    pub batch_max_bytes: usize,
}

impl ClientConfig {
    /// Defaults for a client of the node at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let client_id =
            nanos ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Self {
            addr,
            client_id,
            window: 64,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            max_frame: 1 << 20,
            batch_max_bytes: 64 * 1024,
        }
    }

    /// Checks every bound.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.into(),
            })
        };
        if self.window == 0 || self.window > Semaphore::MAX_PERMITS {
            return bad(
                "window",
                "must be non-zero and at most Semaphore::MAX_PERMITS",
            );
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be non-zero");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be non-zero");
        }
        if self.max_frame < 64 || self.max_frame > crate::config::MAX_FRAME_LIMIT {
            return bad("max_frame", "out of range");
        }
        if self.batch_max_bytes == 0 {
            return bad("batch_max_bytes", "must be non-zero");
        }
        Ok(())
    }
}

struct Call<Q, R> {
    /// `None` for a first attempt: the connection task assigns the next sequence number as it
    /// writes the request, so fresh requests reach the node in sequence order (the idempotency
    /// table forgets the lowest numbers first).
    seq: Option<u64>,
    request: Q,
    reply: Waiter<R>,
}

/// A client of one node's request port, for protocol `P`.
pub type NodeClient<P> = Client<<P as Protocol>::Request, <P as Protocol>::Response>;

/// A pipelined client of a node's request port.
///
/// Many requests can be in flight on its one connection (up to `window`); requests queued
/// together are written in one batch; responses are matched to requests by sequence number in a
/// waiting list, each with a timeout, and every waiting request fails with
/// [`Error::ConnectionClosed`] when the connection dies. The next request reconnects.
/// [`Client::request_idempotent`] retries with the same sequence number, which the node's
/// idempotent receiver recognises, so a retried request runs at most once.
pub struct Client<Q, R> {
    calls: mpsc::Sender<Call<Q, R>>,
    window: Arc<Semaphore>,
    client_id: u64,
    task: JoinHandle<()>,
}

impl<Q, R> std::fmt::Debug for Client<Q, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl<Q, R> Drop for Client<Q, R> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<Q, R> Client<Q, R>
where
    Q: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// Connects to the node at `config.addr`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], or the connect error.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        config.validate()?;
        let conn = Conn::open(&config, 0).await?;
        let (calls, rx) = mpsc::channel(config.window);
        let window = Arc::new(Semaphore::new(config.window));
        let client_id = config.client_id;
        let task = tokio::spawn(drive::<Q, R>(config, rx, conn));
        Ok(Self {
            calls,
            window,
            client_id,
            task,
        })
    }

    /// This client's id.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Sends `request` once and waits for its response.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::ConnectionClosed`], a connect error, or the node's
    /// [`Error::RequestExpired`] / [`Error::NodeStopped`].
    pub async fn request(&self, request: Q) -> Result<R> {
        self.call(None, request).await.1
    }

    /// Sends `request`, retrying up to `attempts` times in all with the same sequence number
    /// after a timeout or a lost connection; the node executes it at most once and answers a
    /// retry of a completed request from its idempotency table.
    ///
    /// The table keeps the node's last `dedup_per_client` answers per client: a retry that comes
    /// back after more of this client's later requests completed is refused with
    /// [`Error::RequestExpired`] rather than run twice.
    ///
    /// # Errors
    /// The last attempt's error.
    pub async fn request_idempotent(&self, request: Q, attempts: u32) -> Result<R>
    where
        Q: Clone,
    {
        let mut seq = None;
        let mut delay = Duration::from_millis(10);
        let mut attempt = 1;
        loop {
            let (assigned, result) = self.call(seq, request.clone()).await;
            seq = seq.or(assigned);
            match result {
                Err(Error::Timeout | Error::ConnectionClosed | Error::Io(_))
                    if attempt < attempts =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// One attempt within the window: the sequence number it went out under (if it did) and the
    /// outcome.
    async fn call(&self, seq: Option<u64>, request: Q) -> (Option<u64>, Result<R>) {
        let Ok(_permit) = self.window.acquire().await else {
            return (seq, Err(Error::ConnectionClosed));
        };
        let (reply, rx) = oneshot::channel();
        if self
            .calls
            .send(Call {
                seq,
                request,
                reply,
            })
            .await
            .is_err()
        {
            return (seq, Err(Error::ConnectionClosed));
        }
        rx.await.unwrap_or((seq, Err(Error::ConnectionClosed)))
    }
}

/// One live connection: its writer and the task that reads responses from it.
struct Conn {
    generation: u64,
    writer: OwnedWriteHalf,
    reader: Option<JoinHandle<()>>,
    stream: Option<BufReader<tokio::net::tcp::OwnedReadHalf>>,
}

impl Conn {
    async fn open(config: &ClientConfig, generation: u64) -> Result<Self> {
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(config.addr))
            .await
            .map_err(|_| Error::Io(std::io::ErrorKind::TimedOut.into()))??;
        let _ = stream.set_nodelay(true);
        let (rd, mut writer) = stream.into_split();
        let hello = Frame::<(), (), ()>::ClientHello {
            client_id: config.client_id,
        };
        writer
            .write_all(&frame::encode(&hello, config.max_frame)?)
            .await?;
        Ok(Self {
            generation,
            writer,
            reader: None,
            stream: Some(BufReader::new(rd)),
        })
    }

    fn start_reader<Q, R>(&mut self, max_frame: usize, tx: ResponseTx<Q, R>)
    where
        Q: DeserializeOwned + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let Some(mut rd) = self.stream.take() else {
            return;
        };
        let generation = self.generation;
        self.reader = Some(tokio::spawn(async move {
            let mut scratch = Vec::new();
            loop {
                let r =
                    frame::read_frame::<Frame<(), Q, R>, _>(&mut rd, max_frame, &mut scratch).await;
                let end = !matches!(r, Ok(Some(_)));
                let item = match r {
                    Ok(Some(f)) => Ok(f),
                    Ok(None) => Err(Error::ConnectionClosed),
                    Err(e) => Err(e),
                };
                if tx.send((generation, item)).await.is_err() || end {
                    return;
                }
            }
        }));
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(r) = &self.reader {
            r.abort();
        }
    }
}

/// Where an attempt's outcome goes, with the sequence number it went out under.
type Waiter<R> = oneshot::Sender<(Option<u64>, Result<R>)>;

/// Responses read from a connection, tagged with its generation.
type ResponseTx<Q, R> = mpsc::Sender<(u64, Result<Frame<(), Q, R>>)>;

async fn drive<Q, R>(config: ClientConfig, mut calls: mpsc::Receiver<Call<Q, R>>, first: Conn)
where
    Q: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let clock = TokioClock::new();
    let (resp_tx, mut responses) = mpsc::channel(config.window.max(16));
    let mut conn = Some(first);
    if let Some(c) = conn.as_mut() {
        c.start_reader::<Q, R>(config.max_frame, resp_tx.clone());
    }
    let mut generation = 0u64;
    let mut waiting: WaitingList<u64, Waiter<R>> = WaitingList::new();
    let mut next_seq = 1u64;
    let mut buf = Vec::new();
    let fail_all = |waiting: &mut WaitingList<u64, Waiter<R>>| {
        for (seq, w) in waiting.drain() {
            let _ = w.send((Some(seq), Err(Error::ConnectionClosed)));
        }
    };
    loop {
        let wake = waiting.next_deadline().and_then(|d| clock.to_tokio(d));
        tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { return };
                if conn.is_none() {
                    generation += 1;
                    match Conn::open(&config, generation).await {
                        Ok(mut c) => {
                            c.start_reader::<Q, R>(config.max_frame, resp_tx.clone());
                            conn = Some(c);
                        }
                        Err(e) => {
                            let _ = call.reply.send((call.seq, Err(e)));
                            continue;
                        }
                    }
                }
                // Request batch: everything queued now goes out in one write.
                buf.clear();
                let deadline = clock.now() + config.timeout;
                let mut next = Some(call);
                while let Some(call) = next.take() {
                    let seq = call.seq.unwrap_or_else(|| {
                        next_seq += 1;
                        next_seq - 1
                    });
                    let f = Frame::<(), Q, R>::ClientRequest {
                        client_id: config.client_id,
                        seq,
                        request: call.request,
                    };
                    match frame::encode_into(&f, config.max_frame, &mut buf) {
                        Ok(()) => {
                            if let Some(old) = waiting.insert(seq, deadline, call.reply) {
                                let _ = old.send((Some(seq), Err(Error::ConnectionClosed)));
                            }
                        }
                        Err(e) => {
                            let _ = call.reply.send((Some(seq), Err(e)));
                        }
                    }
                    if buf.len() < config.batch_max_bytes {
                        next = calls.try_recv().ok();
                    }
                }
                if let Some(c) = conn.as_mut()
                    && !buf.is_empty()
                    && c.writer.write_all(&buf).await.is_err()
                {
                    conn = None;
                    fail_all(&mut waiting);
                }
            }
            Some(first) = responses.recv() => {
                // Handle every response already read, not just one per wake-up.
                let mut next = Some(first);
                while let Some((g, item)) = next.take() {
                    if conn.as_ref().map(|c| c.generation) == Some(g) {
                        match item {
                            Ok(Frame::ClientResponse { seq, result }) => {
                                if let Some(w) = waiting.take(seq) {
                                    let _ = w.send((Some(seq), result.map_err(Error::from)));
                                }
                            }
                            Ok(_) => {
                                tracing::warn!(addr = %config.addr, "unexpected frame from node; closing");
                                conn = None;
                                fail_all(&mut waiting);
                            }
                            Err(e) => {
                                tracing::debug!(addr = %config.addr, error = %e, "connection to node ended");
                                conn = None;
                                fail_all(&mut waiting);
                            }
                        }
                    } // else: from a connection already replaced
                    next = responses.try_recv().ok();
                }
            }
            () = async {
                match wake {
                    Some(w) => tokio::time::sleep_until(w).await,
                    None => std::future::pending().await,
                }
            } => {
                for (seq, w) in waiting.expire(clock.now()) {
                    let _ = w.send((Some(seq), Err(Error::Timeout)));
                }
            }
        }
    }
}
