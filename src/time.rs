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

#[cfg(test)]
mod tests {
    #[test]
    fn formats_milliseconds_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_764_460_800_123),
            "2025-11-30T00:00:00.123Z"
        );
        assert!(super::now_ms() > 1_764_460_800_000);
    }
}
