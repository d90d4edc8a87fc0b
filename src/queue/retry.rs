//! When a failed attempt runs again: exponential backoff with full jitter, capped, up to a
//! maximum number of attempts. Permanent failures never retry.

use std::time::Duration;

use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (1-based), or `None` when `attempt` was
    /// the last one allowed.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let ceiling = self.ceiling(attempt);
        let jittered =
            rand::rng().random_range(ceiling / 2..=ceiling.max(Duration::from_millis(1)));
        Some(jittered)
    }

    /// The largest delay after `attempt`: base * 2^(attempt-1), capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exponent).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        }
    }

    #[test]
    fn stops_at_the_configured_attempts() {
        for max in [1, 3, 40] {
            let policy = policy(max);
            for attempt in 1..max {
                assert!(
                    policy.delay_after(attempt).is_some(),
                    "attempt {attempt} of {max}"
                );
            }
            assert_eq!(policy.delay_after(max), None);
        }
    }

    #[test]
    fn delays_grow_then_cap_and_stay_within_jitter() {
        let policy = policy(50);
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(4), Duration::from_millis(800));
        assert_eq!(policy.ceiling(40), Duration::from_secs(10));
        for attempt in 1..45 {
            let delay = policy.delay_after(attempt).unwrap();
            let ceiling = policy.ceiling(attempt);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
        }
    }
}
