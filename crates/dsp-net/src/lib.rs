#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod backoff;
mod client;
mod clock;
pub mod config;
mod dedup;
mod error;
pub mod example;
pub mod frame;
mod node;
mod storage;
mod transport;
mod waiting;

pub use client::{Client, ClientConfig, NodeClient};
pub use clock::TokioClock;
pub use config::NetConfig;
pub use dedup::{IdempotencyTable, Seen};
pub use error::{Error, Result};
pub use node::{NetProtocol, NetStats, NodeHandle, Requester, spawn};
pub use storage::{FileStorage, MemStorage, Storage};
pub use waiting::WaitingList;
