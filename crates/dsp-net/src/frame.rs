//! The wire format: every frame is a 10-byte header and a postcard payload.
//!
//! ```text
//! +-------+---------+----------------+-------------------+-----------------+
//! | magic | version | length u32 LE  | crc32c u32 LE     | payload         |
//! | 0xD5  | 1       | payload bytes  | of the payload    | postcard(Frame) |
//! +-------+---------+----------------+-------------------+-----------------+
//! ```
//!
//! The first frame on a connection says what the connection is: [`Frame::Hello`] opens a peer
//! connection (node to node, one direction), [`Frame::ClientHello`] or [`Frame::ClientRequest`]
//! opens a client connection (requests in, [`Frame::ClientResponse`]s out). A frame with the wrong magic or version, a
//! length above `max_frame`, a checksum mismatch or an undecodable payload closes its connection
//! with a typed [`Error`].

use bytes::Bytes;
use dsp_core::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Error, Result};

/// The first byte of every frame.
pub const MAGIC: u8 = 0xD5;
/// The wire-format version this build speaks.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 10;

/// Everything that travels over a dsp-net connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame<M, Q, R> {
    /// Handshake of a peer connection: the sender's node id.
    Hello {
        /// The connecting node.
        from: NodeId,
    },
    /// A protocol message from the connecting node.
    Message(M),
    /// A client request (idempotent receiver: `(client_id, seq)` identifies it across retries).
    ClientRequest {
        /// The client's id, unique per client.
        client_id: u64,
        /// The request's sequence number, unique per client (retries reuse it).
        seq: u64,
        /// The request.
        request: Q,
    },
    /// The answer to the client request with this `seq`.
    ClientResponse {
        /// The request's sequence number.
        seq: u64,
        /// The protocol's response, or why there is none.
        result: std::result::Result<R, RemoteError>,
    },
    /// Handshake of a client connection that has no request to send yet (so the node's
    /// handshake timeout does not close an idle client).
    ClientHello {
        /// The client's id.
        client_id: u64,
    },
}

/// Why a node answered a client request without a protocol response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteError {
    /// The idempotency table no longer remembers this sequence number; not executed again.
    Expired,
    /// The node is shutting down or failed.
    Stopped,
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Expired => Error::RequestExpired,
            RemoteError::Stopped => Error::NodeStopped,
        }
    }
}

/// Appends one encoded frame carrying `value` to `buf`.
///
/// # Errors
/// [`Error::Codec`] if serialization fails, [`Error::FrameTooLarge`] if the payload exceeds
/// `max_frame` (`buf` is left as it was).
pub fn encode_into<T: Serialize>(value: &T, max_frame: usize, buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[MAGIC, VERSION, 0, 0, 0, 0, 0, 0, 0, 0]);
    let encoded = postcard::to_extend(value, std::mem::take(buf));
    *buf = match encoded {
        Ok(b) => b,
        Err(e) => return Err(Error::Codec(e)),
    };
    let len = buf.len() - start - HEADER_LEN;
    if len > max_frame || u32::try_from(len).is_err() {
        buf.truncate(start);
        return Err(Error::FrameTooLarge {
            len: len as u64,
            max: max_frame,
        });
    }
    let crc = crc32c::crc32c(&buf[start + HEADER_LEN..]);
    buf[start + 2..start + 6].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 6..start + 10].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Encodes one frame carrying `value`.
///
/// # Errors
/// As [`encode_into`].
pub fn encode<T: Serialize>(value: &T, max_frame: usize) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(64);
    encode_into(value, max_frame, &mut buf)?;
    Ok(Bytes::from(buf))
}

/// Checks a header and returns the payload length and checksum it announces.
fn parse_header(h: &[u8; HEADER_LEN], max_frame: usize) -> Result<(usize, u32)> {
    if h[0] != MAGIC {
        return Err(Error::BadMagic { found: h[0] });
    }
    if h[1] != VERSION {
        return Err(Error::UnsupportedVersion {
            found: h[1],
            expected: VERSION,
        });
    }
    let len = u32::from_le_bytes([h[2], h[3], h[4], h[5]]);
    let crc = u32::from_le_bytes([h[6], h[7], h[8], h[9]]);
    if len as usize > max_frame {
        return Err(Error::FrameTooLarge {
            len: u64::from(len),
            max: max_frame,
        });
    }
    Ok((len as usize, crc))
}

fn check_payload<T: DeserializeOwned>(payload: &[u8], stored: u32) -> Result<T> {
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(Error::ChecksumMismatch { stored, computed });
    }
    Ok(postcard::from_bytes(payload)?)
}

/// Decodes the first frame in `buf`: `Ok(None)` if `buf` holds only part of one, else the value
/// and the number of bytes it took.
///
/// # Errors
/// A typed error for a bad magic byte, version, length, checksum or payload.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max_frame: usize) -> Result<Option<(T, usize)>> {
    if let Some(&first) = buf.first()
        && first != MAGIC
    {
        return Err(Error::BadMagic { found: first });
    }
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(header);
    let (len, crc) = parse_header(&h, max_frame)?;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((check_payload(payload, crc)?, HEADER_LEN + len)))
}

/// Reads one frame from `reader`; `Ok(None)` on a clean end of stream between frames.
///
/// `scratch` is reused for the payload. The header is checked before any payload is read, so an
/// oversized length never allocates.
///
/// # Errors
/// A typed error for a bad frame; [`Error::Io`] (`UnexpectedEof`) if the stream ends inside one.
pub async fn read_frame<T, Rd>(
    reader: &mut Rd,
    max_frame: usize,
    scratch: &mut Vec<u8>,
) -> Result<Option<T>>
where
    T: DeserializeOwned,
    Rd: AsyncRead + Unpin,
{
    let mut h = [0u8; HEADER_LEN];
    if reader.read(&mut h[..1]).await? == 0 {
        return Ok(None);
    }
    if h[0] != MAGIC {
        return Err(Error::BadMagic { found: h[0] });
    }
    reader.read_exact(&mut h[1..]).await?;
    let (len, crc) = parse_header(&h, max_frame)?;
    scratch.clear();
    scratch.resize(len, 0);
    reader.read_exact(scratch).await?;
    check_payload(scratch, crc).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    type F = Frame<String, u32, u64>;

    #[test]
    fn frames_round_trip() {
        let frames: Vec<F> = vec![
            Frame::Hello { from: NodeId(7) },
            Frame::Message("hi".into()),
            Frame::ClientRequest {
                client_id: 1,
                seq: 2,
                request: 3,
            },
            Frame::ClientResponse {
                seq: 2,
                result: Ok(9),
            },
            Frame::ClientResponse {
                seq: 3,
                result: Err(RemoteError::Expired),
            },
            Frame::ClientHello { client_id: 4 },
        ];
        let mut buf = Vec::new();
        for f in &frames {
            encode_into(f, 1024, &mut buf).unwrap();
        }
        let mut at = 0;
        for f in &frames {
            let (g, used) = decode::<F>(&buf[at..], 1024).unwrap().unwrap();
            assert_eq!(&g, f);
            at += used;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn partial_frames_are_incomplete_not_errors() {
        let bytes = encode(&F::Message("hello".into()), 1024).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode::<F>(&bytes[..cut], 1024).unwrap().is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn damaged_frames_are_typed_errors() {
        let good = encode(&F::Message("hello".into()), 1024).unwrap().to_vec();
        let mut b = good.clone();
        b[0] = 0x00;
        assert!(matches!(
            decode::<F>(&b, 1024),
            Err(Error::BadMagic { found: 0 })
        ));
        let mut b = good.clone();
        b[1] = 9;
        assert!(matches!(
            decode::<F>(&b, 1024),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 0xff;
        assert!(matches!(
            decode::<F>(&b, 1024),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            decode::<F>(&good, 3),
            Err(Error::FrameTooLarge { max: 3, .. })
        ));
        // A valid checksum over bytes that are not a frame.
        let mut b = vec![MAGIC, VERSION, 1, 0, 0, 0];
        b.extend_from_slice(&crc32c::crc32c(&[0xff]).to_le_bytes());
        b.push(0xff);
        assert!(matches!(decode::<F>(&b, 1024), Err(Error::Codec(_))));
    }

    #[test]
    fn oversized_outgoing_frame_is_refused_and_buffer_untouched() {
        let mut buf = vec![1, 2, 3];
        let r = encode_into(&F::Message("x".repeat(100)), 16, &mut buf);
        assert!(matches!(r, Err(Error::FrameTooLarge { .. })));
        assert_eq!(buf, [1, 2, 3]);
    }

    #[tokio::test]
    async fn read_frame_reads_a_stream_and_stops_cleanly() {
        let mut buf = Vec::new();
        encode_into(&F::Hello { from: NodeId(1) }, 64, &mut buf).unwrap();
        encode_into(&F::Message("a".into()), 64, &mut buf).unwrap();
        let mut rd = &buf[..];
        let mut scratch = Vec::new();
        let a: Option<F> = read_frame(&mut rd, 64, &mut scratch).await.unwrap();
        assert_eq!(a, Some(Frame::Hello { from: NodeId(1) }));
        let b: Option<F> = read_frame(&mut rd, 64, &mut scratch).await.unwrap();
        assert_eq!(b, Some(Frame::Message("a".into())));
        let c: Option<F> = read_frame(&mut rd, 64, &mut scratch).await.unwrap();
        assert_eq!(c, None);
        let mut torn = &buf[..5];
        assert!(matches!(
            read_frame::<F, _>(&mut torn, 64, &mut scratch).await,
            Err(Error::Io(_))
        ));
    }
}
