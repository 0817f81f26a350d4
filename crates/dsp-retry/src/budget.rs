//! The retry budget: a token bucket that caps retries to a fraction of traffic.

use dsp_core::sync::atomic::{AtomicU64, Ordering};

#[cfg(doc)]
use crate::Error;
use crate::Result;
use crate::config::BudgetConfig;
use crate::policy::Decision;

/// A retry budget shared (through an `Arc`) by every retrier and hedger of one dependency.
///
/// It works like the AWS SDK's retry quota: the bucket starts full; a retry withdraws
/// `retry_cost` tokens (`timeout_cost` after a timeout); a retried call that then succeeds gets
/// its tokens back, and a call that succeeds on its first attempt deposits `success_deposit`.
/// When the bucket cannot pay for a retry, the retry is not made. With the defaults (500 tokens,
/// 5 per retry, 1 per success) a dependency that keeps failing gets at most 100 retries, and after
/// that about one retry per five successes: retries cannot multiply an outage's load.
///
/// Withdrawals are a CAS loop on one atomic: the balance never goes below zero nor above the
/// capacity (checked with loom).
#[derive(Debug)]
pub struct RetryBudget {
    tokens: AtomicU64,
    config: BudgetConfig,
}

impl RetryBudget {
    /// A full budget.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn new(config: BudgetConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            tokens: AtomicU64::new(config.capacity),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Tokens available now.
    pub fn available(&self) -> u64 {
        self.tokens.load(Ordering::Acquire)
    }

    /// The cost of retrying after `decision` (0 for [`Decision::DontRetry`]).
    pub fn cost_of(&self, decision: Decision) -> u64 {
        match decision {
            Decision::Retry | Decision::RetryAfter(_) => self.config.retry_cost,
            Decision::RetryTimeout => self.config.timeout_cost,
            Decision::DontRetry => 0,
        }
    }

    /// Withdraws `amount` tokens if the bucket holds them; returns whether it did.
    pub fn try_withdraw(&self, amount: u64) -> bool {
        let mut cur = self.tokens.load(Ordering::Acquire);
        loop {
            let Some(next) = cur.checked_sub(amount) else {
                return false;
            };
            match self
                .tokens
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Puts `amount` tokens back, up to the capacity.
    pub fn deposit(&self, amount: u64) {
        let cap = self.config.capacity;
        let mut cur = self.tokens.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_add(amount).min(cap);
            if next == cur {
                return;
            }
            match self
                .tokens
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Deposits `success_deposit` for a call that succeeded without retries.
    pub fn record_success(&self) {
        self.deposit(self.config.success_deposit);
    }

    /// Reserves the cost of a retry after `decision`.
    ///
    /// The returned token is refunded when dropped or [`refund`](BudgetToken::refund)ed (the
    /// retry was cancelled or succeeded), and spent by [`consume`](BudgetToken::consume) (the
    /// retry failed). `None` if the bucket cannot pay or `decision` is
    /// [`Decision::DontRetry`].
    pub fn withdraw(&self, decision: Decision) -> Option<BudgetToken<'_>> {
        let amount = self.cost_of(decision);
        // `then`, not `then_some`: an eagerly built token would refund on drop.
        (amount > 0 && self.try_withdraw(amount)).then(|| BudgetToken {
            budget: self,
            amount,
        })
    }
}

/// Tokens reserved for one retry; refunded on drop unless consumed.
#[derive(Debug)]
#[must_use = "a dropped token is refunded"]
pub struct BudgetToken<'a> {
    budget: &'a RetryBudget,
    amount: u64,
}

impl BudgetToken<'_> {
    /// Tokens reserved.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The retry failed: the tokens stay spent.
    pub fn consume(mut self) {
        self.amount = 0;
    }

    /// The retry succeeded or was cancelled: the tokens go back.
    pub fn refund(self) {
        drop(self);
    }
}

impl Drop for BudgetToken<'_> {
    fn drop(&mut self) {
        if self.amount > 0 {
            self.budget.deposit(self.amount);
        }
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn budget(capacity: u64) -> RetryBudget {
        RetryBudget::new(BudgetConfig {
            capacity,
            ..BudgetConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn retries_cost_five_and_timeouts_ten() {
        let b = budget(20);
        let t = b.withdraw(Decision::Retry).unwrap();
        assert_eq!(t.amount(), 5);
        t.consume();
        assert_eq!(b.available(), 15);
        b.withdraw(Decision::RetryTimeout).unwrap().consume();
        assert_eq!(b.available(), 5);
        assert!(
            b.withdraw(Decision::RetryTimeout).is_none(),
            "cannot pay 10 with 5"
        );
        assert!(b.withdraw(Decision::DontRetry).is_none());
    }

    #[test]
    fn dropped_token_is_refunded() {
        let b = budget(10);
        let t = b.withdraw(Decision::Retry).unwrap();
        assert_eq!(b.available(), 5);
        drop(t);
        assert_eq!(b.available(), 10);
    }

    #[test]
    fn deposits_never_exceed_capacity() {
        let b = budget(10);
        b.record_success();
        assert_eq!(b.available(), 10);
        assert!(b.try_withdraw(10));
        b.deposit(u64::MAX);
        assert_eq!(b.available(), 10);
    }

    #[test]
    fn budget_caps_retries_to_a_fraction_of_successes() {
        let b = budget(10);
        assert!(b.try_withdraw(10));
        let mut retries = 0;
        for _ in 0..100 {
            b.record_success();
            if let Some(t) = b.withdraw(Decision::Retry) {
                t.consume();
                retries += 1;
            }
        }
        assert_eq!(retries, 20, "one retry per five successes");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use dsp_core::sync::{Arc, model, thread};

    use super::*;

    #[test]
    fn loom_budget_never_over_withdraws() {
        model(|| {
            let b = Arc::new(
                RetryBudget::new(BudgetConfig {
                    capacity: 8,
                    timeout_cost: 8,
                    ..BudgetConfig::default()
                })
                .unwrap(),
            );
            let b2 = b.clone();
            let t = thread::spawn(move || b2.try_withdraw(5));
            let mine = b.try_withdraw(5);
            let theirs = t.join().unwrap();
            assert!(mine ^ theirs, "exactly one withdrawal of 5 from 8");
            assert_eq!(b.available(), 3);
        });
    }

    #[test]
    fn loom_budget_stays_within_bounds_under_refunds() {
        model(|| {
            let b = Arc::new(
                RetryBudget::new(BudgetConfig {
                    capacity: 10,
                    ..BudgetConfig::default()
                })
                .unwrap(),
            );
            let b2 = b.clone();
            let t = thread::spawn(move || {
                let token = b2.withdraw(Decision::Retry);
                let got = token.is_some();
                drop(token);
                got
            });
            b.deposit(3);
            let mine = b
                .withdraw(Decision::RetryTimeout)
                .map(BudgetToken::consume)
                .is_some();
            let theirs = t.join().unwrap();
            let left = b.available();
            assert!(left <= 10);
            // The refunded retry leaves no trace; the consumed timeout (if paid) costs 10.
            assert_eq!(left, if mine { 0 } else { 10 });
            let _ = theirs;
        });
    }
}
