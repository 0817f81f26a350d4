//! Configuration of a simulation run.

use std::time::Duration;

use crate::{Error, Result};

/// How the simulated network treats messages between nodes.
///
/// Each message gets an independent delay drawn uniformly from `delay`, so two messages on the
/// same link can overtake each other (reordering). Drops and duplicates are decided per message.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Uniform `(min, max)` one-way delay of a message (and of a client request or reply).
    /// Default 1 ms to 10 ms.
    pub delay: (Duration, Duration),
    /// Probability that a message (or client request or reply) takes a delay drawn from
    /// `slow_delay` instead of `delay`: a long tail. Default 0.
    pub slow_rate: f64,
    /// Uniform `(min, max)` delay of a slow message. Default 100 ms to 1 s.
    pub slow_delay: (Duration, Duration),
    /// Probability that a message between nodes is lost. Default 0.
    pub drop_rate: f64,
    /// Probability that a message between nodes is delivered twice (the copy gets its own
    /// delay). Default 0.
    pub duplicate_rate: f64,
    /// Probability that a client request or a reply is lost. Default 0: client traffic is only
    /// delayed, and lost only when the node is down.
    pub client_drop_rate: f64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            delay: (Duration::from_millis(1), Duration::from_millis(10)),
            slow_rate: 0.0,
            slow_delay: (Duration::from_millis(100), Duration::from_secs(1)),
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            client_drop_rate: 0.0,
        }
    }
}

impl NetworkConfig {
    /// Checks that the delay range is ordered and the rates are probabilities.
    pub fn validate(&self) -> Result<()> {
        if self.delay.0 > self.delay.1 {
            return Err(Error::InvalidConfig(format!(
                "network delay min {:?} exceeds max {:?}",
                self.delay.0, self.delay.1
            )));
        }
        if self.slow_delay.0 > self.slow_delay.1 {
            return Err(Error::InvalidConfig(format!(
                "slow delay min {:?} exceeds max {:?}",
                self.slow_delay.0, self.slow_delay.1
            )));
        }
        for (name, p) in [
            ("slow_rate", self.slow_rate),
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("client_drop_rate", self.client_drop_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::InvalidConfig(format!("{name} {p} is not in [0, 1]")));
            }
        }
        Ok(())
    }
}

/// Configuration of a [`Sim`](crate::Sim).
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The seed every random choice of the run derives from. Default 0.
    pub seed: u64,
    /// The network between nodes.
    pub network: NetworkConfig,
    /// Uniform `(min, max)` latency of one persist. Persists of a node complete in order: each
    /// completes at the later of its own draw and the previous one's completion. Default 0.1 ms
    /// to 1 ms.
    pub persist_latency: (Duration, Duration),
    /// When a node crashes, persists it emitted whose completion the simulator had not yet
    /// reached ("un-synced") are all lost if this is `true`. If `false` (the default), a random
    /// prefix of them survives: each in turn, oldest first, becomes durable with probability
    /// [`SimConfig::unsynced_survival`] until the first one that does not (the write reached the
    /// disk but the node never heard so). Either way the durable persists are a prefix of those
    /// emitted, and no [`Input::Persisted`](dsp_core::Input::Persisted) is delivered for them.
    pub lose_unsynced_on_crash: bool,
    /// Probability that each un-synced persist survives a crash (see
    /// [`SimConfig::lose_unsynced_on_crash`]). Default 0.5.
    pub unsynced_survival: f64,
    /// The run stops with [`Error::StepLimit`] after this many events. Default 10 million.
    pub max_steps: u64,
    /// Print every event to stderr as it happens. Default: whether the environment variable
    /// `DSP_SIM_TRACE` is set to something other than `0` or empty.
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            network: NetworkConfig::default(),
            persist_latency: (Duration::from_micros(100), Duration::from_millis(1)),
            lose_unsynced_on_crash: false,
            unsynced_survival: 0.5,
            max_steps: 10_000_000,
            trace: trace_from_env(),
        }
    }
}

/// Whether `DSP_SIM_TRACE` asks for a full trace.
pub(crate) fn trace_from_env() -> bool {
    std::env::var("DSP_SIM_TRACE").is_ok_and(|v| !v.is_empty() && v != "0")
}

impl SimConfig {
    /// A default configuration with this seed.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        self.network.validate()?;
        if self.persist_latency.0 > self.persist_latency.1 {
            return Err(Error::InvalidConfig(format!(
                "persist latency min {:?} exceeds max {:?}",
                self.persist_latency.0, self.persist_latency.1
            )));
        }
        if !(0.0..=1.0).contains(&self.unsynced_survival) {
            return Err(Error::InvalidConfig(format!(
                "unsynced_survival {} is not in [0, 1]",
                self.unsynced_survival
            )));
        }
        if self.max_steps == 0 {
            return Err(Error::InvalidConfig("max_steps must be at least 1".into()));
        }
        Ok(())
    }
}
