//! Configuration of a node's network runtime, and a command-line parser for it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use dsp_core::NodeId;

use crate::{Error, Result};

/// The largest `max_frame` accepted (the frame header stores the length in 32 bits).
pub const MAX_FRAME_LIMIT: usize = u32::MAX as usize;

/// Configuration of one node's runtime: who it is, where it listens, its peers, and the bounds of
/// every queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// This node's id.
    pub id: NodeId,
    /// Where the node listens for peers and clients (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The other nodes and their listen addresses. Must not contain `id`.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The largest frame payload accepted or sent, in bytes. A larger incoming frame closes its
    /// connection; a larger outgoing message is dropped and logged.
    pub max_frame: usize,
    /// Reconnect backoff: first delay and cap. Delays double per failed attempt, with jitter.
    pub connect_backoff: (Duration, Duration),
    /// How long a connect attempt may take before it counts as failed.
    pub connect_timeout: Duration,
    /// Messages queued per peer while its connection is down or slow; more are dropped.
    pub peer_queue: usize,
    /// Request batch: the most bytes coalesced into one socket write.
    pub batch_max_bytes: usize,
    /// Request batch: how long a writer may wait for more messages before writing a batch that
    /// is not full. Zero writes whatever is queued at once (no added latency).
    pub batch_delay: Duration,
    /// Singular update queue: commands (local requests) queued for the node task.
    pub command_queue: usize,
    /// Messages and client requests queued from connections to the node task; readers wait
    /// (TCP backpressure) when it is full.
    pub inbound_queue: usize,
    /// Events buffered for the receiver returned by [`spawn`](crate::spawn); when full, further
    /// events are dropped and logged.
    pub event_queue: usize,
    /// Persists written but not yet durable beyond which the node stops taking new input.
    pub max_unsynced_persists: usize,
    /// How long a new connection may take to send its first frame.
    pub handshake_timeout: Duration,
    /// Idempotent receiver: clients remembered.
    pub dedup_clients: usize,
    /// Idempotent receiver: completed responses remembered per client.
    pub dedup_per_client: usize,
    /// Idempotent receiver: a client silent for this long is forgotten.
    pub dedup_ttl: Duration,
    /// Seed of the jitter added to reconnect delays.
    pub seed: u64,
}

impl NetConfig {
    /// A configuration with default bounds for node `id` listening on `listen`, with no peers.
    pub fn new(id: NodeId, listen: SocketAddr) -> Self {
        Self {
            id,
            listen,
            peers: BTreeMap::new(),
            max_frame: 1 << 20,
            connect_backoff: (Duration::from_millis(20), Duration::from_secs(1)),
            connect_timeout: Duration::from_secs(1),
            peer_queue: 4096,
            batch_max_bytes: 64 * 1024,
            batch_delay: Duration::ZERO,
            command_queue: 1024,
            inbound_queue: 4096,
            event_queue: 4096,
            max_unsynced_persists: 4096,
            handshake_timeout: Duration::from_secs(5),
            dedup_clients: 4096,
            dedup_per_client: 128,
            dedup_ttl: Duration::from_secs(300),
            seed: 0x5eed ^ id.0,
        }
    }

    /// Adds a peer (builder style).
    pub fn with_peer(mut self, id: NodeId, addr: SocketAddr) -> Self {
        self.peers.insert(id, addr);
        self
    }

    /// Checks every bound.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &'static str, reason: impl Into<String>) -> Result<()> {
            Err(Error::InvalidConfig {
                field,
                reason: reason.into(),
            })
        }
        if self.peers.contains_key(&self.id) {
            return bad("peers", format!("contains the node's own id {}", self.id));
        }
        if self.max_frame < 64 || self.max_frame > MAX_FRAME_LIMIT {
            return bad("max_frame", format!("must be in 64..={MAX_FRAME_LIMIT}"));
        }
        let (min, max) = self.connect_backoff;
        if min.is_zero() || min > max {
            return bad("connect_backoff", "needs 0 < first delay <= cap");
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("dedup_ttl", self.dedup_ttl),
        ] {
            if value.is_zero() {
                return bad(field, "must be non-zero");
            }
        }
        for (field, value) in [
            ("peer_queue", self.peer_queue),
            ("batch_max_bytes", self.batch_max_bytes),
            ("command_queue", self.command_queue),
            ("inbound_queue", self.inbound_queue),
            ("event_queue", self.event_queue),
            ("max_unsynced_persists", self.max_unsynced_persists),
            ("dedup_clients", self.dedup_clients),
            ("dedup_per_client", self.dedup_per_client),
        ] {
            if value == 0 {
                return bad(field, "must be non-zero");
            }
        }
        Ok(())
    }

    /// Parses a node configuration from command-line arguments, returning it with the arguments
    /// it did not recognise (in order), so a binary can add flags of its own.
    ///
    /// Recognised: `--id N`, `--listen ADDR`, `--peer N=ADDR` (repeatable),
    /// `--max-frame BYTES`, `--backoff-ms MIN,MAX`, `--batch-delay-us N`, `--seed N`. Both
    /// `--flag value` and `--flag=value` work. `--id` and `--listen` are required. The result is
    /// validated.
    ///
    /// ```
    /// use dsp_net::NetConfig;
    /// let args = ["--id", "1", "--listen", "127.0.0.1:7001", "--peer", "2=127.0.0.1:7002",
    ///             "--peer=3=127.0.0.1:7003", "--data", "/tmp/n1"];
    /// let (config, rest) = NetConfig::from_args(args.iter().map(|s| s.to_string())).unwrap();
    /// assert_eq!(config.id.0, 1);
    /// assert_eq!(config.peers.len(), 2);
    /// assert_eq!(rest, ["--data", "/tmp/n1"]);
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a missing or unparsable value, [`Error::InvalidConfig`] if
    /// the result does not validate.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<(Self, Vec<String>)> {
        let mut id = None;
        let mut listen = None;
        let mut peers = BTreeMap::new();
        let mut max_frame = None;
        let mut backoff = None;
        let mut batch_delay = None;
        let mut seed = None;
        let mut rest = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let known = matches!(
                flag.as_str(),
                "--id"
                    | "--listen"
                    | "--peer"
                    | "--max-frame"
                    | "--backoff-ms"
                    | "--batch-delay-us"
                    | "--seed"
            );
            if !known {
                rest.push(arg);
                continue;
            }
            let value = match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => return Err(invalid(&flag, "missing value")),
            };
            match flag.as_str() {
                "--id" => id = Some(parse_node(&value)?),
                "--listen" => listen = Some(parse_addr(&value)?),
                "--peer" => {
                    let (n, a) = value
                        .split_once('=')
                        .ok_or_else(|| invalid(&value, "expected ID=ADDR"))?;
                    peers.insert(parse_node(n)?, parse_addr(a)?);
                }
                "--max-frame" => max_frame = Some(parse_num(&value)? as usize),
                "--backoff-ms" => {
                    let (a, b) = value
                        .split_once(',')
                        .ok_or_else(|| invalid(&value, "expected MIN,MAX in milliseconds"))?;
                    backoff = Some((
                        Duration::from_millis(parse_num(a)?),
                        Duration::from_millis(parse_num(b)?),
                    ));
                }
                "--batch-delay-us" => batch_delay = Some(Duration::from_micros(parse_num(&value)?)),
                _ => seed = Some(parse_num(&value)?),
            }
        }
        let id = id.ok_or_else(|| invalid("--id", "required"))?;
        let listen = listen.ok_or_else(|| invalid("--listen", "required"))?;
        let mut config = Self::new(id, listen);
        config.peers = peers;
        if let Some(v) = max_frame {
            config.max_frame = v;
        }
        if let Some(v) = backoff {
            config.connect_backoff = v;
        }
        if let Some(v) = batch_delay {
            config.batch_delay = v;
        }
        if let Some(v) = seed {
            config.seed = v;
        }
        config.validate()?;
        Ok((config, rest))
    }
}

impl Default for NetConfig {
    /// Node `n0` listening on `127.0.0.1:0` with no peers.
    fn default() -> Self {
        Self::new(NodeId(0), SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

fn invalid(arg: &str, reason: &str) -> Error {
    Error::InvalidArgument {
        arg: arg.to_owned(),
        reason: reason.to_owned(),
    }
}

fn parse_node(s: &str) -> Result<NodeId> {
    s.parse::<NodeId>().map_err(|e| invalid(s, &e.to_string()))
}

fn parse_addr(s: &str) -> Result<SocketAddr> {
    s.parse::<SocketAddr>()
        .map_err(|e| invalid(s, &e.to_string()))
}

fn parse_num(s: &str) -> Result<u64> {
    s.trim()
        .parse::<u64>()
        .map_err(|e| invalid(s, &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_validates() {
        NetConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_and_inverted_bounds_are_typed_errors() {
        let c = NetConfig {
            peer_queue: 0,
            ..NetConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidConfig {
                field: "peer_queue",
                ..
            })
        ));
        let c = NetConfig {
            connect_backoff: (Duration::from_secs(2), Duration::from_secs(1)),
            ..NetConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidConfig {
                field: "connect_backoff",
                ..
            })
        ));
        let c = NetConfig {
            max_frame: 10,
            ..NetConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidConfig {
                field: "max_frame",
                ..
            })
        ));
        let c = NetConfig::default().with_peer(NodeId(0), "127.0.0.1:1".parse().unwrap());
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidConfig { field: "peers", .. })
        ));
    }

    #[test]
    fn from_args_parses_flags_and_keeps_the_rest() {
        let args = [
            "--id=3",
            "--listen",
            "127.0.0.1:7003",
            "--peer",
            "n1=127.0.0.1:7001",
            "--verbose",
            "--backoff-ms",
            "5,50",
            "--max-frame",
            "4096",
        ];
        let (c, rest) = NetConfig::from_args(args.iter().map(|s| s.to_string())).unwrap();
        assert_eq!(c.id, NodeId(3));
        assert_eq!(c.peers[&NodeId(1)], "127.0.0.1:7001".parse().unwrap());
        assert_eq!(
            c.connect_backoff,
            (Duration::from_millis(5), Duration::from_millis(50))
        );
        assert_eq!(c.max_frame, 4096);
        assert_eq!(rest, ["--verbose"]);
    }

    #[test]
    fn from_args_rejects_bad_input() {
        let parse = |a: &[&str]| NetConfig::from_args(a.iter().map(|s| s.to_string()));
        assert!(matches!(
            parse(&["--listen", "127.0.0.1:1"]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            parse(&["--id", "x", "--listen", "127.0.0.1:1"]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            parse(&["--id", "1", "--listen"]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            parse(&["--id", "1", "--listen", "127.0.0.1:1", "--peer", "2"]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            parse(&[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:1",
                "--peer",
                "1=127.0.0.1:2"
            ]),
            Err(Error::InvalidConfig { .. })
        ));
    }
}
