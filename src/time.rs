//! Time as the gateway stores and shows it: Unix milliseconds in the database, RFC 3339 with
//! milliseconds (UTC) in the API, events, logs and backups. The bottom layer: it imports
//! nothing of the gateway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds → RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// How long to wait after failed try `attempt` (1-based): `base × 2^(attempt-1)`, capped at
/// `max`. The one backoff of the gateway: queue retries, webhook deliveries, browser restarts,
/// database retries. With base 2s and max 32s: 2s, 4s, 8s, 16s, 32s, 32s, ...
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    base.checked_mul(1u32 << exp).map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn formats_milliseconds_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_764_460_800_123),
            "2025-11-30T00:00:00.123Z"
        );
        assert!(super::now_ms() > 1_764_460_800_000);
    }

    #[test]
    fn backoff_doubles_from_base_to_cap_and_never_overflows() {
        let s = Duration::from_secs;
        let got: Vec<_> = (1..=7).map(|a| super::backoff(a, s(2), s(32))).collect();
        assert_eq!(got, vec![s(2), s(4), s(8), s(16), s(32), s(32), s(32)]);
        assert_eq!(super::backoff(u32::MAX, s(3600), s(7200)), s(7200));
        assert_eq!(
            super::backoff(0, s(1), s(60)),
            s(1),
            "attempt 0 counts as the first"
        );
    }
}
