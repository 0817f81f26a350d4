//! Connections: the single socket channel to each peer, the listener, and coalescing writers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dsp_core::NodeId;
use dsp_core::sync::atomic::{AtomicU64, Ordering};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::frame::{self, Frame};
use crate::{Error, NetConfig, Result};

/// Counters shared by a node's tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connects: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) dropped_messages: AtomicU64,
    pub(crate) dropped_events: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes `first` and whatever else is queued in `rx` as one batch (request batch pattern):
/// everything already queued, up to `max_bytes`, and when `delay` is non-zero, whatever arrives
/// within `delay` while the batch is not full. Returns the number of frames written.
pub(crate) async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut W,
    first: Bytes,
    rx: &mut mpsc::Receiver<Bytes>,
    buf: &mut Vec<u8>,
    max_bytes: usize,
    delay: Duration,
) -> std::io::Result<u64> {
    buf.clear();
    buf.extend_from_slice(&first);
    let mut frames = 1;
    let deadline = tokio::time::Instant::now() + delay;
    while buf.len() < max_bytes {
        match rx.try_recv() {
            Ok(b) => {
                buf.extend_from_slice(&b);
                frames += 1;
            }
            Err(mpsc::error::TryRecvError::Empty) if !delay.is_zero() => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(b)) => {
                        buf.extend_from_slice(&b);
                        frames += 1;
                    }
                    _ => break,
                }
            }
            Err(_) => break,
        }
    }
    w.write_all(buf).await?;
    w.flush().await?;
    Ok(frames)
}

/// Everything a connection task needs from its node.
pub(crate) struct Ctx {
    pub(crate) id: NodeId,
    pub(crate) config: Arc<NetConfig>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Ctx {
    pub(crate) fn clone_ctx(&self) -> Self {
        Self {
            id: self.id,
            config: Arc::clone(&self.config),
            counters: Arc::clone(&self.counters),
            shutdown: self.shutdown.clone(),
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // Resolves when shutdown is signalled or the node task is gone.
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Single socket channel: one ordered outbound connection to `peer`, re-established with
/// exponential backoff and jitter; frames queue in `rx` (bounded) while it is down.
pub(crate) async fn peer_sender(
    ctx: Ctx,
    peer: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let Ctx {
        id,
        config,
        counters,
        mut shutdown,
    } = ctx;
    let (min, max) = config.connect_backoff;
    let mut backoff = Backoff::new(min, max, config.seed ^ peer.0.rotate_left(17));
    let hello = frame::encode(&Frame::<(), (), ()>::Hello { from: id }, config.max_frame);
    let Ok(hello) = hello else { return };
    let mut buf = Vec::new();
    loop {
        let attempt = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            r = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)) => r,
        };
        let stream = match attempt {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::debug!(node = %id, %peer, %addr, error = %e, "connect failed");
                None
            }
            Err(_) => {
                tracing::debug!(node = %id, %peer, %addr, "connect timed out");
                None
            }
        };
        if let Some(stream) = stream {
            let _ = stream.set_nodelay(true);
            let (mut rd, mut wr) = stream.into_split();
            if wr.write_all(&hello).await.is_ok() {
                Counters::bump(&counters.connects);
                tracing::debug!(node = %id, %peer, %addr, "connected");
                backoff.reset();
                let mut probe = [0u8; 1];
                loop {
                    tokio::select! {
                        biased;
                        _ = stopped(&mut shutdown) => return,
                        // Peers never write on this connection: a read returns only when it closes.
                        _ = rd.read(&mut probe) => {
                            tracing::debug!(node = %id, %peer, "connection closed by peer");
                            break;
                        }
                        next = rx.recv() => {
                            let Some(first) = next else { return };
                            match write_batch(&mut wr, first, &mut rx, &mut buf,
                                config.batch_max_bytes, config.batch_delay).await
                            {
                                Ok(n) => {
                                    Counters::bump(&counters.batches);
                                    counters.frames_sent.fetch_add(n, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    tracing::debug!(node = %id, %peer, error = %e, "write failed; batch lost");
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// What a connection hands to the node task.
pub(crate) enum Inbound<M, Q> {
    Peer {
        from: NodeId,
        msg: M,
    },
    Client {
        client_id: u64,
        seq: u64,
        request: Q,
        reply: mpsc::Sender<Bytes>,
    },
}

/// Accepts connections until shutdown, serving each in its own task; ends them all on shutdown.
pub(crate) async fn accept_loop<M, Q, R>(
    ctx: Ctx,
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound<M, Q>>,
) where
    M: DeserializeOwned + Send + 'static,
    Q: DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let mut shutdown = ctx.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let ctx = ctx.clone_ctx();
                    let inbound = inbound.clone();
                    conns.spawn(async move {
                        let counters = Arc::clone(&ctx.counters);
                        let node = ctx.id;
                        if let Err(e) = serve_conn::<M, Q, R>(ctx, stream, inbound).await {
                            if is_frame_error(&e) {
                                Counters::bump(&counters.bad_frames);
                                tracing::warn!(%node, %addr, error = %e, "closing connection after a bad frame");
                            } else {
                                tracing::debug!(%node, %addr, error = %e, "connection ended");
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(node = %ctx.id, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    drop(listener);
    conns.shutdown().await;
}

fn is_frame_error(e: &Error) -> bool {
    matches!(
        e,
        Error::BadMagic { .. }
            | Error::UnsupportedVersion { .. }
            | Error::FrameTooLarge { .. }
            | Error::ChecksumMismatch { .. }
            | Error::Codec(_)
            | Error::UnexpectedFrame(_)
            | Error::HandshakeTimeout
    )
}

async fn serve_conn<M, Q, R>(
    ctx: Ctx,
    stream: TcpStream,
    inbound: mpsc::Sender<Inbound<M, Q>>,
) -> Result<()>
where
    M: DeserializeOwned + Send + 'static,
    Q: DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let max = ctx.config.max_frame;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut scratch = Vec::new();
    let first = tokio::time::timeout(
        ctx.config.handshake_timeout,
        frame::read_frame::<Frame<M, Q, R>, _>(&mut rd, max, &mut scratch),
    )
    .await
    .map_err(|_| Error::HandshakeTimeout)??;
    match first {
        None => Ok(()),
        Some(Frame::Hello { from }) => {
            tracing::debug!(node = %ctx.id, peer = %from, "peer connected");
            loop {
                match frame::read_frame::<Frame<M, Q, R>, _>(&mut rd, max, &mut scratch).await? {
                    None => return Ok(()),
                    Some(Frame::Message(msg)) => {
                        if inbound.send(Inbound::Peer { from, msg }).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(_) => {
                        return Err(Error::UnexpectedFrame(
                            "peer connections carry only messages",
                        ));
                    }
                }
            }
        }
        Some(first @ (Frame::ClientRequest { .. } | Frame::ClientHello { .. })) => {
            // Request pipeline: the client may have many requests in flight; responses go out
            // through this connection's own writer as the node produces them.
            let (tx, mut rx) = mpsc::channel::<Bytes>(ctx.config.command_queue);
            let config = Arc::clone(&ctx.config);
            let writer = tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(first) = rx.recv().await {
                    if write_batch(
                        &mut wr,
                        first,
                        &mut rx,
                        &mut buf,
                        config.batch_max_bytes,
                        Duration::ZERO,
                    )
                    .await
                    .is_err()
                    {
                        break;
                    }
                }
            });
            let result = async {
                let mut next = match first {
                    Frame::ClientRequest {
                        client_id,
                        seq,
                        request,
                    } => Some((client_id, seq, request)),
                    _ => None,
                };
                loop {
                    if let Some((client_id, seq, request)) = next.take() {
                        let reply = tx.clone();
                        let msg = Inbound::Client {
                            client_id,
                            seq,
                            request,
                            reply,
                        };
                        if inbound.send(msg).await.is_err() {
                            return Ok(());
                        }
                    }
                    match frame::read_frame::<Frame<M, Q, R>, _>(&mut rd, max, &mut scratch).await?
                    {
                        None => return Ok(()),
                        Some(Frame::ClientRequest {
                            client_id,
                            seq,
                            request,
                        }) => {
                            next = Some((client_id, seq, request));
                        }
                        Some(_) => {
                            return Err(Error::UnexpectedFrame(
                                "client connections carry only requests",
                            ));
                        }
                    }
                }
            }
            .await;
            writer.abort();
            result
        }
        Some(_) => Err(Error::UnexpectedFrame(
            "a connection must start with a hello or a client request",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_frames_go_out_in_one_write_up_to_the_size_limit() {
        let (tx, mut rx) = mpsc::channel(16);
        for i in 1..=9u8 {
            tx.send(Bytes::from(vec![i; 10])).await.unwrap();
        }
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let first = Bytes::from(vec![0u8; 10]);
        // 35-byte limit: the batch stops once it holds 40 bytes (4 frames).
        let n = write_batch(&mut out, first, &mut rx, &mut buf, 35, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(out.len(), 40);
        let n = write_batch(
            &mut out,
            Bytes::from_static(b"x"),
            &mut rx,
            &mut buf,
            1 << 20,
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(n, 7, "everything still queued");
        assert_eq!(out.len(), 40 + 1 + 60);
    }

    #[tokio::test(start_paused = true)]
    async fn batch_delay_waits_for_more_frames() {
        let (tx, mut rx) = mpsc::channel(16);
        let sender = tokio::spawn(async move {
            for i in 0..3u8 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.send(Bytes::from(vec![i])).await.unwrap();
            }
        });
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let first = Bytes::from_static(b"f");
        let n = write_batch(
            &mut out,
            first,
            &mut rx,
            &mut buf,
            1024,
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert_eq!(n, 4, "frames arriving within the delay join the batch");
        assert_eq!(out, [b'f', 0, 1, 2]);
        sender.await.unwrap();
    }
}
