//! The on-disk format: segment header, record frame, file names.

/// First eight bytes of every segment file.
pub(crate) const MAGIC: [u8; 8] = *b"DSPWAL\0\n";
/// Format version written in the header.
pub(crate) const VERSION: u32 = 1;
/// Length of the segment header.
pub(crate) const HEADER_LEN: u64 = 32;
/// Length of a record frame's header (crc, length, index).
pub(crate) const FRAME_HEADER_LEN: usize = 16;
/// Hard upper bound on a record's length (also bounds what recovery believes).
pub(crate) const MAX_RECORD_LIMIT: usize = 1 << 30;
/// Extension of a segment file.
pub(crate) const SEGMENT_EXT: &str = "wal";
/// Suffix of a segment being created.
pub(crate) const TMP_SUFFIX: &str = ".wal.tmp";

/// Name of the segment whose first record has index `first_index`.
pub(crate) fn segment_name(first_index: u64) -> String {
    format!("{first_index:020}.{SEGMENT_EXT}")
}

/// Parses a segment file name: `Some(Ok(first))` for `<20 digits>.wal`, `Some(Err(()))` for a
/// `.wal` file with a malformed stem, `None` for any other name.
pub(crate) fn parse_segment_name(name: &str) -> Option<Result<u64, ()>> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Err(()));
    }
    Some(stem.parse::<u64>().map_err(|_| ()))
}

/// Encodes a segment header.
pub(crate) fn encode_header(first_index: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    // 12..16 flags, 24..28 reserved: zero.
    h[16..24].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header, returning the first index or why it is bad.
pub(crate) fn decode_header(h: &[u8]) -> Result<u64, &'static str> {
    if h.len() < HEADER_LEN as usize {
        return Err("shorter than a segment header");
    }
    if h[0..8] != MAGIC {
        return Err("bad magic (not a dsp-wal segment)");
    }
    if u32_at(h, 28) != crc32c::crc32c(&h[0..28]) {
        return Err("header checksum mismatch");
    }
    if u32_at(h, 8) != VERSION {
        return Err("unsupported format version");
    }
    Ok(u64_at(h, 16))
}

/// Total length of the frame of a `len`-byte record: header + payload padded to 8 bytes.
#[inline]
pub(crate) fn frame_len(len: usize) -> usize {
    FRAME_HEADER_LEN + padded(len)
}

#[inline]
fn padded(len: usize) -> usize {
    (len + 7) & !7
}

/// CRC of a payload's part of a frame: length, payload, padding (computed without the lock).
#[inline]
pub(crate) fn payload_crc(payload: &[u8]) -> u32 {
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, payload);
    let pad = padded(payload.len()) - payload.len();
    crc32c::crc32c_append(crc, &[0u8; 8][..pad])
}

/// Final CRC of a frame: the payload CRC extended with the index.
#[inline]
pub(crate) fn frame_crc(payload_crc: u32, index: u64) -> u32 {
    crc32c::crc32c_append(payload_crc, &index.to_le_bytes())
}

/// Appends the frame of `payload` with `index` to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, index: u64, payload: &[u8], payload_crc: u32) {
    out.extend_from_slice(&frame_crc(payload_crc, index).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    let pad = padded(payload.len()) - payload.len();
    out.extend_from_slice(&[0u8; 8][..pad]);
}

/// Why the bytes at some offset are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than a frame header remain in the file.
    TruncatedHeader,
    /// The frame header is intact but the payload runs past the end of the file.
    TruncatedPayload,
    /// The frame is all zero bytes (typically space the file system allocated but the crash
    /// did not let it fill).
    ZeroFilled,
    /// The length field is larger than any record can be.
    InvalidLength,
    /// The frame holds a different index than its position requires.
    UnexpectedIndex,
    /// The CRC-32C does not match the frame's bytes.
    ChecksumMismatch,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TruncatedHeader => "truncated record header",
            Self::TruncatedPayload => "truncated record payload",
            Self::ZeroFilled => "zero-filled bytes",
            Self::InvalidLength => "invalid record length",
            Self::UnexpectedIndex => "unexpected record index",
            Self::ChecksumMismatch => "checksum mismatch",
        })
    }
}

/// Header fields of a frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameHeader {
    pub(crate) crc: u32,
    pub(crate) len: usize,
    pub(crate) index: u64,
}

#[inline]
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[inline]
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Reads a frame header from the first 16 bytes of `b` (caller guarantees the length).
#[inline]
pub(crate) fn frame_header(b: &[u8]) -> FrameHeader {
    FrameHeader {
        crc: u32_at(b, 0),
        len: u32_at(b, 4) as usize,
        index: u64_at(b, 8),
    }
}

/// Checks the frame at the start of `b`, expected to hold `index`. `b` runs to the end of the
/// file (or further than the frame). Returns the frame's total length.
pub(crate) fn check_frame(b: &[u8], index: u64) -> Result<usize, FrameError> {
    if b.len() < FRAME_HEADER_LEN {
        if b.iter().all(|&x| x == 0) {
            return Err(FrameError::ZeroFilled);
        }
        return Err(FrameError::TruncatedHeader);
    }
    let h = frame_header(b);
    if h.crc == 0 && h.len == 0 && h.index == 0 {
        return Err(FrameError::ZeroFilled);
    }
    if h.len > MAX_RECORD_LIMIT {
        return Err(FrameError::InvalidLength);
    }
    let total = frame_len(h.len);
    if b.len() < total {
        return Err(FrameError::TruncatedPayload);
    }
    let crc = crc32c::crc32c(&b[4..8]);
    let crc = crc32c::crc32c_append(crc, &b[FRAME_HEADER_LEN..total]);
    let crc = crc32c::crc32c_append(crc, &b[8..16]);
    if crc != h.crc {
        return Err(FrameError::ChecksumMismatch);
    }
    if h.index != index {
        return Err(FrameError::UnexpectedIndex);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_detects_every_bit_flip() {
        for len in [0usize, 1, 7, 8, 9, 100] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut buf = Vec::new();
            encode_frame(&mut buf, 42, &payload, payload_crc(&payload));
            assert_eq!(buf.len(), frame_len(len));
            assert_eq!(check_frame(&buf, 42), Ok(buf.len()));
            assert_eq!(check_frame(&buf, 43), Err(FrameError::UnexpectedIndex));
            for bit in 0..buf.len() * 8 {
                let mut bad = buf.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(check_frame(&bad, 42).is_err(), "len {len} bit {bit}");
            }
            for cut in 0..buf.len() {
                assert!(check_frame(&buf[..cut], 42).is_err());
            }
        }
    }

    #[test]
    fn header_round_trips() {
        let h = encode_header(7);
        assert_eq!(decode_header(&h), Ok(7));
        let mut bad = h;
        bad[17] ^= 1;
        assert!(decode_header(&bad).is_err());
        assert!(decode_header(&h[..10]).is_err());
    }

    #[test]
    fn segment_names_parse() {
        assert_eq!(parse_segment_name(&segment_name(12)), Some(Ok(12)));
        assert_eq!(parse_segment_name("12.wal"), Some(Err(())));
        assert_eq!(parse_segment_name("LOCK"), None);
    }
}
