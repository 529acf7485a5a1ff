//! The retry budget as a pure function (the delays are `time::backoff`).

/// Whether a retryable failure on `attempt` gets another try: `max_retries` retries follow
/// the first attempt.
pub fn may_retry(attempt: u32, max_retries: u32) -> bool {
    attempt <= max_retries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_retries_mean_six_attempts() {
        assert!((1..=5).all(|a| may_retry(a, 5)));
        assert!(!may_retry(6, 5));
        assert!(!may_retry(1, 0));
    }
}
