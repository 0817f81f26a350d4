//! Running a test body over many seeds.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::{Error, Result};

/// The seed named by the environment variable `DSP_SIM_SEED`, if set.
///
/// Returns an error if it is set but is not a decimal (or `0x`-prefixed hexadecimal) `u64`.
pub fn seed_from_env() -> Result<Option<u64>> {
    let Ok(text) = std::env::var("DSP_SIM_SEED") else {
        return Ok(None);
    };
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed
        .map(Some)
        .map_err(|_| Error::InvalidConfig(format!("DSP_SIM_SEED={text:?} is not a u64")))
}

/// Runs `body` once per seed in `seeds` (or only for the seed in `DSP_SIM_SEED` if that is
/// set), and reports every failing seed.
///
/// A seed fails when `body` returns `Err` or panics; each failure is printed to stderr with the
/// command-line hint to replay it, and all are returned in [`Error::SeedsFailed`].
///
/// ```
/// use dsp_sim::run_seeds;
/// let result = run_seeds(0..100, |seed| {
///     if seed == 42 { Err(dsp_sim::Error::Failed("unlucky".into())) } else { Ok(()) }
/// });
/// # if std::env::var("DSP_SIM_SEED").is_err() {
/// match result {
///     Err(dsp_sim::Error::SeedsFailed { failures, total }) => {
///         assert_eq!(total, 100);
///         assert_eq!(failures, vec![(42, "unlucky".to_string())]);
///     }
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
pub fn run_seeds(seeds: Range<u64>, mut body: impl FnMut(u64) -> Result<()>) -> Result<()> {
    let seeds: Vec<u64> = match seed_from_env()? {
        Some(seed) => vec![seed],
        None => seeds.collect(),
    };
    let total = seeds.len() as u64;
    let mut failures = Vec::new();
    for seed in seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| body(seed)));
        let message = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                format!("panicked: {text}")
            }
        };
        eprintln!(
            "dsp-sim: seed {seed} FAILED: {message}\n  replay: DSP_SIM_SEED={seed} DSP_SIM_TRACE=1 \
             cargo test <this test> -- --nocapture"
        );
        failures.push((seed, message));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::SeedsFailed { failures, total })
    }
}
