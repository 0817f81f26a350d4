//! Side-by-side benchmarks of the dsp crates against peer crates: see `benches/` and
//! `BENCHMARKS.md`. Run with `cargo xtask bench [group] [filter]`.
