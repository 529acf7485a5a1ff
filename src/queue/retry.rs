//! Backoff as pure functions: no clock, no I/O.

use std::time::Duration;

/// Delay after failed attempt `attempt` (1-based): `base × 2^(attempt-1)`, capped at `max`.
/// With base 2s and max 32s: 2s, 4s, 8s, 16s, 32s, 32s, ...
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    base.checked_mul(1u32 << exp.min(31))
        .map_or(max, |d| d.min(max))
}

/// Whether a retryable failure on `attempt` gets another try: `max_retries` retries follow
/// the first attempt.
pub fn may_retry(attempt: u32, max_retries: u32) -> bool {
    attempt <= max_retries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_base_to_cap() {
        let s = Duration::from_secs;
        let got: Vec<_> = (1..=7).map(|a| backoff(a, s(2), s(32))).collect();
        assert_eq!(got, vec![s(2), s(4), s(8), s(16), s(32), s(32), s(32)]);
    }

    #[test]
    fn backoff_never_overflows() {
        let d = backoff(
            u32::MAX,
            Duration::from_secs(3600),
            Duration::from_secs(7200),
        );
        assert_eq!(d, Duration::from_secs(7200));
    }

    #[test]
    fn five_retries_mean_six_attempts() {
        assert!((1..=5).all(|a| may_retry(a, 5)));
        assert!(!may_retry(6, 5));
        assert!(!may_retry(1, 0));
    }
}
