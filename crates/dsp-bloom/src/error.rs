//! The crate's error type.

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when building, combining or decoding a filter.
///
/// Constructor and decoder errors leave no state behind; combining errors
/// ([`Error::Incompatible`]) leave the receiving filter unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The expected number of items was zero. No filter was built.
    #[error("expected items must be at least 1")]
    ZeroItems,
    /// The target false-positive rate was NaN or outside the open interval (0, 1). No filter was
    /// built.
    #[error("target false-positive rate {0} is not in (0, 1)")]
    InvalidFpr(f64),
    /// An explicit number of bits was zero. No filter was built.
    #[error("number of bits must be at least 1")]
    ZeroBits,
    /// An explicit number of hash functions was outside `1..=MAX_HASHES`. No filter was built.
    #[error("number of hash functions {0} is not in 1..={max}", max = crate::MAX_HASHES)]
    InvalidHashes(u32),
    /// A scalable filter's growth factor or tightening ratio was out of range. No filter was
    /// built.
    #[error("invalid scalable-filter parameter: {0}")]
    InvalidGrowth(&'static str),
    /// The requested filter needs more than [`MAX_BITS`](crate::MAX_BITS) bits. No filter was
    /// built (nothing was allocated).
    #[error("filter would need {bits} bits, above the limit of {max}", max = crate::MAX_BITS)]
    TooLarge {
        /// Bits the request would need (saturated at `u64::MAX`).
        bits: u64,
    },
    /// The allocator refused the filter's memory. No filter was built.
    #[error("could not allocate {bytes} bytes")]
    Alloc {
        /// Bytes requested.
        bytes: u64,
    },
    /// A scalable filter reached its stage limit and cannot grow. The item was not inserted.
    #[error("scalable filter cannot grow beyond {0} stages")]
    CapacityExhausted(usize),
    /// Two filters cannot be combined (different kind, size, hash count or hasher). The receiving
    /// filter is unchanged.
    #[error("incompatible filters: {0}")]
    Incompatible(&'static str),
    /// The input ended before the encoded filter did.
    #[error("truncated input: need {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the header says the encoding needs (at least).
        needed: u64,
        /// Bytes present.
        got: u64,
    },
    /// The input does not start with the filter magic `DSPB`.
    #[error("not a dsp-bloom encoding (bad magic)")]
    BadMagic,
    /// The encoding's format version is not one this build can read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// The encoding holds a different kind of filter than the one being decoded.
    #[error("encoded filter kind {found} does not match the expected kind {expected}")]
    WrongKind {
        /// Kind tag the decoder wanted.
        expected: u8,
        /// Kind tag found in the input.
        found: u8,
    },
    /// The CRC32C checksum does not match the content.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum stored in the input.
        stored: u32,
        /// Checksum computed over the input.
        computed: u32,
    },
    /// A header field is invalid (the message names it).
    #[error("corrupt encoding: {0}")]
    Corrupt(&'static str),
    /// The filter was encoded with a different hasher or seed than the one supplied to the
    /// decoder, so its answers would be meaningless.
    #[error("hasher fingerprint mismatch: encoded with a different hasher or seed")]
    HasherMismatch,
}
