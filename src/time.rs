//! Time as the gateway stores and shows it: Unix milliseconds in the database, RFC 3339 with
//! milliseconds (UTC) in the API, events, logs and backups. The bottom layer: it imports
//! nothing of the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The queue's clock: the system's, or one a test sets and moves, so that rules over time
/// (backoff, pacing windows, quiet hours) are tested without waiting for them.
#[derive(Clone)]
pub struct Clock(Arc<ClockInner>);

struct ClockInner {
    /// None: the system clock.
    manual: Option<AtomicI64>,
    moved: tokio::sync::Notify,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.manual {
            None => f.write_str("Clock(system)"),
            Some(t) => write!(f, "Clock({})", rfc3339(t.load(Ordering::Acquire))),
        }
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(ClockInner {
            manual: None,
            moved: tokio::sync::Notify::new(),
        }))
    }

    /// A clock that stands at `at` (Unix ms) until moved.
    pub fn manual(at: i64) -> Clock {
        Clock(Arc::new(ClockInner {
            manual: Some(AtomicI64::new(at)),
            moved: tokio::sync::Notify::new(),
        }))
    }

    pub fn now_ms(&self) -> i64 {
        match &self.0.manual {
            None => now_ms(),
            Some(t) => t.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock forward and wakes whoever waits on it; a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0.manual {
            t.fetch_add(by.as_millis() as i64, Ordering::AcqRel);
            self.0.moved.notify_waiters();
        }
    }

    /// Resolves when a manual clock moves; never for the system clock.
    pub async fn moved(&self) {
        match &self.0.manual {
            None => std::future::pending().await,
            Some(_) => self.0.moved.notified().await,
        }
    }
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
