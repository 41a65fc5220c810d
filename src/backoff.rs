//! Exponential backoff with jitter, shared by delivery retries and adapter restarts.

use rand::Rng;
use std::time::Duration;

/// The wait before retry number `attempt` (0-based): `initial * 2^attempt`, capped at
/// `max`, then scaled by a random factor in [0.5, 1.0] so that many rooms or networks
/// failing together do not retry in lockstep.
pub fn delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exponential = initial
        .saturating_mul(2u32.saturating_pow(attempt.min(30)))
        .min(max);
    exponential.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 0..40 {
            let d = delay(attempt, initial, max);
            let ceiling = initial
                .saturating_mul(2u32.saturating_pow(attempt.min(30)))
                .min(max);
            assert!(
                d <= ceiling && d >= ceiling / 2,
                "attempt {attempt}: {d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }
}
