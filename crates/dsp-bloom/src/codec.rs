//! The byte format shared by every filter.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "DSPB"
//! 4       1     format version (1)
//! 5       1     kind: 1 classic (also the concurrent filter), 2 blocked, 3 counting, 4 scalable
//! 6       2     reserved, zero
//! 8       8     hasher fingerprint (u64)
//! 16      ..    kind-specific parameters and data, little-endian
//! end-4   4     CRC32C of every byte before it
//! ```
//!
//! Decoding walks the parameters with bounds checks, so a short input is reported as
//! [`Error::Truncated`] and no allocation is larger than the input itself; then it verifies the
//! checksum; only then does it validate the parameters and copy the data.

use crate::error::{Error, Result};

pub(crate) const MAGIC: [u8; 4] = *b"DSPB";
pub(crate) const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: usize = 16;
pub(crate) const CRC_LEN: usize = 4;

/// Kind tags.
pub(crate) const KIND_CLASSIC: u8 = 1;
pub(crate) const KIND_BLOCKED: u8 = 2;
pub(crate) const KIND_COUNTING: u8 = 3;
pub(crate) const KIND_SCALABLE: u8 = 4;

pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(kind: u8, fingerprint: u64, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + capacity + CRC_LEN);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(kind);
        buf.extend_from_slice(&0_u16.to_le_bytes());
        buf.extend_from_slice(&fingerprint.to_le_bytes());
        Self { buf }
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    pub(crate) fn words(&mut self, words: impl IntoIterator<Item = u64>) {
        for w in words {
            self.u64(w);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        let crc = crc32c::crc32c(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// A bounds-checked cursor over an encoding (the whole input, checksum included).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let available = self
            .bytes
            .len()
            .saturating_sub(CRC_LEN)
            .saturating_sub(self.pos);
        match usize::try_from(n) {
            Ok(n) if n <= available => {
                let out = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(out)
            }
            _ => Err(Error::Truncated {
                needed: (self.pos as u64)
                    .saturating_add(n)
                    .saturating_add(CRC_LEN as u64),
                got: self.bytes.len() as u64,
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0_u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// `count` little-endian u64 words, not yet copied.
    pub(crate) fn words(&mut self, count: u64) -> Result<Words<'a>> {
        Ok(Words(self.take(count.saturating_mul(8))?))
    }

    /// Checks that the parameters consumed exactly the input and that the checksum matches.
    pub(crate) fn finish(self) -> Result<()> {
        let end = self.pos;
        if self.bytes.len() < end + CRC_LEN {
            return Err(Error::Truncated {
                needed: (end + CRC_LEN) as u64,
                got: self.bytes.len() as u64,
            });
        }
        if self.bytes.len() > end + CRC_LEN {
            return Err(Error::Corrupt("trailing bytes after the encoded filter"));
        }
        let mut stored = [0_u8; 4];
        stored.copy_from_slice(&self.bytes[end..]);
        let stored = u32::from_le_bytes(stored);
        let computed = crc32c::crc32c(&self.bytes[..end]);
        if stored != computed {
            return Err(Error::ChecksumMismatch { stored, computed });
        }
        Ok(())
    }
}

/// Encoded little-endian u64 words, validated to be present.
#[derive(Clone, Copy)]
pub(crate) struct Words<'a>(&'a [u8]);

impl Words<'_> {
    pub(crate) fn iter(self) -> impl Iterator<Item = u64> {
        self.0.chunks_exact(8).map(|c| {
            let mut w = [0_u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
    }

    pub(crate) fn to_vec(self) -> Result<Vec<u64>> {
        let mut out = try_vec(self.0.len() / 8)?;
        out.extend(self.iter());
        Ok(out)
    }
}

/// Checks the fixed header and returns the hasher fingerprint and a reader positioned on the
/// parameters.
pub(crate) fn open(bytes: &[u8], kind: u8) -> Result<(u64, Reader<'_>)> {
    if bytes.len() < 4 || bytes[..4] != MAGIC {
        if bytes.len() < 4 && MAGIC.starts_with(bytes) {
            return Err(Error::Truncated {
                needed: (HEADER_LEN + CRC_LEN) as u64,
                got: bytes.len() as u64,
            });
        }
        return Err(Error::BadMagic);
    }
    if bytes.len() < HEADER_LEN + CRC_LEN {
        return Err(Error::Truncated {
            needed: (HEADER_LEN + CRC_LEN) as u64,
            got: bytes.len() as u64,
        });
    }
    if bytes[4] != VERSION {
        return Err(Error::UnsupportedVersion(bytes[4]));
    }
    if bytes[5] != kind {
        return Err(Error::WrongKind {
            expected: kind,
            found: bytes[5],
        });
    }
    if bytes[6] != 0 || bytes[7] != 0 {
        return Err(Error::Corrupt("reserved header bytes are not zero"));
    }
    let mut fp = [0_u8; 8];
    fp.copy_from_slice(&bytes[8..16]);
    Ok((
        u64::from_le_bytes(fp),
        Reader {
            bytes,
            pos: HEADER_LEN,
        },
    ))
}

/// A zeroed or empty vector with room for `len` elements, or a typed error if the allocator
/// refuses.
pub(crate) fn try_vec<T>(len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::Alloc {
        bytes: (len as u64).saturating_mul(size_of::<T>() as u64),
    })?;
    Ok(v)
}

/// `len` copies of `value`, or a typed error if the allocator refuses.
pub(crate) fn try_filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_vec(len)?;
    v.resize(len, value);
    Ok(v)
}
