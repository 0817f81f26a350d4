//! The error type of `dsp-net`.

use dsp_core::NodeId;

/// Errors returned by `dsp-net`.
///
/// Frame errors (`BadMagic` to `UnexpectedFrame`) close the one connection that produced them and
/// nothing else; storage errors stop the node (fail-stop, see [`crate::spawn`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range. Nothing was started.
    #[error("invalid config: {field} {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A command-line argument could not be parsed. Nothing was started.
    #[error("invalid argument {arg:?}: {reason}")]
    InvalidArgument {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An operating-system I/O error (socket or file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A frame did not start with the dsp-net magic byte; the connection was closed.
    #[error("bad frame magic 0x{found:02x}")]
    BadMagic {
        /// The byte found instead.
        found: u8,
    },
    /// A frame carried a protocol version this build does not speak; the connection was closed.
    #[error("unsupported frame version {found}, expected {expected}")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
        /// The version this build speaks.
        expected: u8,
    },
    /// A frame announced a payload larger than `max_frame`; the connection was closed before
    /// reading it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A frame's checksum did not match its payload; the connection was closed.
    #[error("frame checksum mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}")]
    ChecksumMismatch {
        /// The checksum carried by the frame.
        stored: u32,
        /// The checksum of the bytes received.
        computed: u32,
    },
    /// A payload could not be encoded or decoded with postcard.
    #[error("codec error: {0}")]
    Codec(#[from] postcard::Error),
    /// A well-formed frame arrived where the connection state does not allow it (for example a
    /// peer message before the handshake); the connection was closed.
    #[error("unexpected frame: {0}")]
    UnexpectedFrame(&'static str),
    /// A connection did not complete its handshake in time; it was closed.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// Durable storage is corrupt before its tail (a torn tail is truncated, not reported).
    #[error("storage corrupt at offset {offset}: {reason}")]
    StorageCorrupt {
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A storage implementation failed for a reason of its own.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The node has stopped (shut down, or failed); the request was not executed, or its reply
    /// was lost.
    #[error("node stopped")]
    NodeStopped,
    /// The node stopped because its storage failed (fail-stop); nothing after the failed persist
    /// was carried out.
    #[error("node {node} stopped after a storage failure: {reason}")]
    NodeFailed {
        /// The node.
        node: NodeId,
        /// The storage error.
        reason: String,
    },
    /// A request got no response within its timeout; it was removed from the waiting list (the
    /// server may still execute it).
    #[error("request timed out")]
    Timeout,
    /// The connection carrying a request closed before its response arrived (the server may or
    /// may not have executed it; retrying with the same sequence number is safe).
    #[error("connection closed")]
    ConnectionClosed,
    /// The server no longer remembers this (client, sequence) pair, so it cannot tell whether it
    /// already executed it; it did not execute it again.
    #[error("request sequence number expired from the idempotency table")]
    RequestExpired,
    /// A bounded queue was full and the caller asked not to wait.
    #[error("queue full")]
    Busy,
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
