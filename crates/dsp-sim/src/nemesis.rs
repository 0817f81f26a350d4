//! Random fault schedules (the "nemesis").

use std::time::Duration;

use dsp_core::{DetRng, NodeId};

use crate::{Error, Result};

/// A schedule of random faults, driven by the simulation's own random generator.
///
/// Every `interval` (uniform between its bounds) the simulator picks one action among those that
/// apply, with probability proportional to its weight: crash an up node (while fewer than
/// `max_down` are down), restart a crashed node, split the network in two random groups, block
/// one random link one way, heal the network, skew a node's clock, or freeze an up node for a
/// while. Install it with
/// [`Sim::set_fault_plan`](crate::Sim::set_fault_plan); stop it with
/// [`Sim::clear_fault_plan`](crate::Sim::clear_fault_plan) and undo its effects with
/// [`Sim::recover_all`](crate::Sim::recover_all).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Uniform `(min, max)` time between two fault actions. Default 50 ms to 500 ms.
    pub interval: (Duration, Duration),
    /// Weight of "crash an up node". Default 2.
    pub crash: u32,
    /// Weight of "restart a crashed node". Default 3.
    pub restart: u32,
    /// Weight of "split the network into two random groups". Default 2.
    pub partition: u32,
    /// Weight of "block one random link, one way". Default 1.
    pub block: u32,
    /// Weight of "heal the network". Default 3.
    pub heal: u32,
    /// Weight of "skew one node's clock". Default 0 (off).
    pub skew: u32,
    /// Weight of "freeze one up node for up to `max_pause`" (see
    /// [`Sim::pause`](crate::Sim::pause)). Default 0 (off).
    pub pause: u32,
    /// At most this many nodes down at once; `None` (the default) means a minority,
    /// `(n - 1) / 2`.
    pub max_down: Option<usize>,
    /// Largest absolute clock offset a skew action applies. Default 100 ms.
    pub max_offset: Duration,
    /// Largest absolute drift a skew action applies, in ppm. Default 1,000 (0.1 %).
    pub max_drift_ppm: i64,
    /// Longest pause a pause action applies (uniform from zero). Default 1 s.
    pub max_pause: Duration,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            interval: (Duration::from_millis(50), Duration::from_millis(500)),
            crash: 2,
            restart: 3,
            partition: 2,
            block: 1,
            heal: 3,
            skew: 0,
            pause: 0,
            max_down: None,
            max_offset: Duration::from_millis(100),
            max_drift_ppm: 1_000,
            max_pause: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FaultAction {
    Crash(NodeId),
    Restart(NodeId),
    Partition(Vec<Vec<NodeId>>),
    Block(NodeId, NodeId),
    Heal,
    Skew(NodeId, i64, i64),
    Pause(NodeId, Duration),
}

impl FaultPlan {
    /// Only network faults: partitions, one-way blocks and heals; no crashes.
    pub fn network_only() -> Self {
        Self {
            crash: 0,
            restart: 0,
            ..Self::default()
        }
    }

    /// Only crashes and restarts.
    pub fn crashes_only() -> Self {
        Self {
            partition: 0,
            block: 0,
            heal: 0,
            ..Self::default()
        }
    }

    /// Checks the interval and that some action has a weight.
    pub fn validate(&self) -> Result<()> {
        if self.interval.0 > self.interval.1 || self.interval.1.is_zero() {
            return Err(Error::InvalidConfig(format!(
                "fault interval ({:?}, {:?}) must be ordered with a non-zero max",
                self.interval.0, self.interval.1
            )));
        }
        let total = [
            self.crash,
            self.restart,
            self.partition,
            self.block,
            self.heal,
            self.skew,
            self.pause,
        ]
        .iter()
        .map(|&w| u64::from(w))
        .sum::<u64>();
        if total == 0 {
            return Err(Error::InvalidConfig("every fault weight is zero".into()));
        }
        if self.max_drift_ppm < 0 || self.max_drift_ppm > crate::sim::MAX_DRIFT_PPM {
            return Err(Error::InvalidConfig(format!(
                "max_drift_ppm {} is not in [0, {}]",
                self.max_drift_ppm,
                crate::sim::MAX_DRIFT_PPM
            )));
        }
        Ok(())
    }

    pub(crate) fn pick(
        &self,
        rng: &mut DetRng,
        up: &[NodeId],
        down: &[NodeId],
        max_down: usize,
        network_faulty: bool,
    ) -> Option<FaultAction> {
        let all: Vec<NodeId> = {
            let mut v = [up, down].concat();
            v.sort_unstable();
            v
        };
        let weights = [
            if down.len() < max_down && !up.is_empty() {
                self.crash
            } else {
                0
            },
            if down.is_empty() { 0 } else { self.restart },
            if all.len() >= 2 { self.partition } else { 0 },
            if all.len() >= 2 { self.block } else { 0 },
            if network_faulty { self.heal } else { 0 },
            if all.is_empty() { 0 } else { self.skew },
            if up.is_empty() { 0 } else { self.pause },
        ];
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return None;
        }
        let mut roll = rng.gen_range(0..total);
        let mut kind = 0;
        for (i, &w) in weights.iter().enumerate() {
            if roll < u64::from(w) {
                kind = i;
                break;
            }
            roll -= u64::from(w);
        }
        Some(match kind {
            0 => FaultAction::Crash(*rng.choose(up)?),
            1 => FaultAction::Restart(*rng.choose(down)?),
            2 => {
                let mut shuffled = all.clone();
                rng.shuffle(&mut shuffled);
                let cut = 1 + rng.gen_index(shuffled.len() - 1);
                let (a, b) = shuffled.split_at(cut);
                let (mut a, mut b) = (a.to_vec(), b.to_vec());
                a.sort_unstable();
                b.sort_unstable();
                FaultAction::Partition(vec![a, b])
            }
            3 => {
                let from = rng.gen_index(all.len());
                let mut to = rng.gen_index(all.len() - 1);
                if to >= from {
                    to += 1;
                }
                FaultAction::Block(all[from], all[to])
            }
            4 => FaultAction::Heal,
            6 => {
                let node = *rng.choose(up)?;
                FaultAction::Pause(node, rng.gen_duration(Duration::ZERO..self.max_pause))
            }
            _ => {
                let node = *rng.choose(&all)?;
                let max = i64::try_from(self.max_offset.as_nanos()).unwrap_or(i64::MAX);
                let offset = rng.gen_range(0..max.unsigned_abs().saturating_mul(2).max(1)) as i64;
                let offset = offset.saturating_sub(max);
                let span = self.max_drift_ppm.unsigned_abs() * 2 + 1;
                let drift = rng.gen_range(0..span) as i64 - self.max_drift_ppm;
                FaultAction::Skew(node, offset, drift)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_respects_max_down_and_applicability() {
        let plan = FaultPlan::default();
        let mut rng = DetRng::from_seed(1);
        let up = [NodeId(1), NodeId(2), NodeId(3)];
        let down = [NodeId(4), NodeId(5)];
        for _ in 0..1_000 {
            let a = plan.pick(&mut rng, &up, &down, 2, false);
            assert!(
                !matches!(a, Some(FaultAction::Crash(_))),
                "max_down reached"
            );
            assert!(!matches!(a, Some(FaultAction::Heal)), "nothing to heal");
            if let Some(FaultAction::Partition(groups)) = &a {
                assert_eq!(groups.len(), 2);
                assert!(groups.iter().all(|g| !g.is_empty()));
                assert_eq!(groups[0].len() + groups[1].len(), 5);
            }
            if let Some(FaultAction::Block(from, to)) = a {
                assert_ne!(from, to);
            }
        }
        let only_crash = FaultPlan {
            restart: 0,
            partition: 0,
            block: 0,
            heal: 0,
            ..plan
        };
        assert_eq!(only_crash.pick(&mut rng, &up, &down, 2, true), None);
    }

    #[test]
    fn skew_actions_stay_within_bounds() {
        let plan = FaultPlan {
            skew: 1,
            crash: 0,
            restart: 0,
            partition: 0,
            block: 0,
            heal: 0,
            ..FaultPlan::default()
        };
        let mut rng = DetRng::from_seed(2);
        for _ in 0..1_000 {
            let Some(FaultAction::Skew(_, offset, drift)) =
                plan.pick(&mut rng, &[NodeId(1), NodeId(2)], &[], 0, false)
            else {
                panic!("expected a skew");
            };
            assert!(offset.unsigned_abs() <= 100_000_000);
            assert!(drift.abs() <= 1_000);
        }
    }
}
