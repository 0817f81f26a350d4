#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
pub mod lin;
mod nemesis;
mod seeds;
mod sim;

pub use client::{Recorder, Workload};
pub use config::{NetworkConfig, SimConfig};
pub use error::{Error, Result};
pub use lin::{Checker, History, Model, Outcome, check};
pub use nemesis::FaultPlan;
pub use seeds::{run_seeds, seed_from_env};
pub use sim::{Fault, MAX_DRIFT_PPM, Reply, Report, Sim, SimView};
