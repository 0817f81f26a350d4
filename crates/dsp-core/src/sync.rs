//! `std` synchronisation primitives, or `loom`'s under `--cfg loom`.
//!
//! Shared-memory code in the dsp crates imports its atomics, locks and threads from here, so that
//! `RUSTFLAGS="--cfg loom" cargo test` model-checks it with no change to the code. Loom models
//! call `model` (present only under `cfg(loom)`, re-exported from `loom::model`).
//!
//! ```
//! use dsp_core::sync::{Arc, atomic::{AtomicU64, Ordering}};
//!
//! let hits = Arc::new(AtomicU64::new(0));
//! hits.fetch_add(1, Ordering::Relaxed);
//! assert_eq!(hits.load(Ordering::Relaxed), 1);
//! ```

#[cfg(not(loom))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(loom)]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Atomic types and orderings.
pub mod atomic {
    #[cfg(not(loom))]
    pub use std::sync::atomic::{
        AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };

    #[cfg(loom)]
    pub use loom::sync::atomic::{
        AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
}

/// Threads (loom's simulated threads under `cfg(loom)`).
pub mod thread {
    #[cfg(not(loom))]
    pub use std::thread::{JoinHandle, spawn, yield_now};

    #[cfg(loom)]
    pub use loom::thread::{JoinHandle, spawn, yield_now};
}

/// Spin-loop hints.
pub mod hint {
    #[cfg(not(loom))]
    pub use std::hint::spin_loop;

    #[cfg(loom)]
    pub use loom::hint::spin_loop;
}

/// Runs a loom model: every interleaving of the threads it spawns, up to the preemption bound.
#[cfg(loom)]
pub use loom::model;
