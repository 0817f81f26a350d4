//! A loom model through `dsp_core::sync`: run with `cargo xtask loom dsp-core`.
#![cfg(loom)]

use dsp_core::sync::atomic::{AtomicU64, Ordering};
use dsp_core::sync::{Arc, Mutex, model, thread};

/// A publish pattern every concurrent dsp primitive relies on: data written under a lock, then a
/// flag released; a reader that acquires the flag must see the data.
#[test]
fn loom_release_acquire_publication_is_seen_through_the_shim() {
    model(|| {
        let data = Arc::new(Mutex::new(Vec::new()));
        let ready = Arc::new(AtomicU64::new(0));
        let (d, r) = (data.clone(), ready.clone());
        let writer = thread::spawn(move || {
            d.lock().unwrap().push(7u32);
            r.store(1, Ordering::Release);
        });
        if ready.load(Ordering::Acquire) == 1 {
            assert_eq!(*data.lock().unwrap(), vec![7]);
        }
        writer.join().unwrap();
        assert_eq!(ready.load(Ordering::Relaxed), 1);
        assert_eq!(data.lock().unwrap().len(), 1);
    });
}
