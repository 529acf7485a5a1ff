//! Login throttling: too many failures for one email, or from one client address, within a
//! window lock further attempts out until the window has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    first: Instant,
}

/// A client address may fail this many times more than one email may.
const CLIENT_FACTOR: u32 = 4;
/// Entries kept before old ones are swept.
const SWEEP_AT: usize = 10_000;

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, client: &str) -> [(String, u32); 2] {
        [
            (format!("email:{}", email.to_lowercase()), 1),
            (format!("client:{client}"), CLIENT_FACTOR),
        ]
    }

    /// `Err(seconds)` when this email or client is locked out now.
    pub fn check(&self, email: &str, client: &str, now: Instant) -> Result<(), u64> {
        let entries = self.entries.lock().expect("throttle lock");
        for (key, factor) in Self::keys(email, client) {
            if let Some(e) = entries.get(&key) {
                let elapsed = now.saturating_duration_since(e.first);
                if elapsed < self.window && e.failures >= self.max_failures * factor {
                    return Err((self.window - elapsed).as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, email: &str, client: &str, now: Instant) {
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() >= SWEEP_AT {
            let window = self.window;
            entries.retain(|_, e| now.saturating_duration_since(e.first) < window);
        }
        for (key, _) in Self::keys(email, client) {
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                first: now,
            });
            if now.saturating_duration_since(e.first) >= self.window {
                *e = Entry {
                    failures: 0,
                    first: now,
                };
            }
            e.failures += 1;
        }
    }

    /// A successful login clears the email's count (not the client's).
    pub fn record_success(&self, email: &str) {
        let mut entries = self.entries.lock().expect("throttle lock");
        entries.remove(&format!("email:{}", email.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_an_email_after_max_failures_until_the_window_passes() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(t.check("a@x", "1.1.1.1", t0).is_ok());
            t.record_failure("a@x", "1.1.1.1", t0);
        }
        let wait = t.check("A@x", "2.2.2.2", t0).unwrap_err();
        assert!((59..=60).contains(&wait));
        assert!(t.check("b@x", "2.2.2.2", t0).is_ok());
        assert!(
            t.check("a@x", "1.1.1.1", t0 + Duration::from_secs(61))
                .is_ok()
        );
    }

    #[test]
    fn locks_a_client_that_tries_many_emails() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..8 {
            t.record_failure(&format!("u{i}@x"), "9.9.9.9", t0);
        }
        assert!(t.check("new@x", "9.9.9.9", t0).is_err());
        assert!(t.check("new@x", "8.8.8.8", t0).is_ok());
    }

    #[test]
    fn success_clears_the_email() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        t.record_failure("a@x", "1", t0);
        t.record_success("a@x");
        t.record_failure("a@x", "1", t0);
        assert!(t.check("a@x", "1", t0).is_ok());
    }
}
