//! Login throttling: too many failures for one email, or from one client address, within a
//! window lock further attempts out until the window has passed.
//!
//! An attempt is counted **before** its password is checked ([`Throttle::begin`]) and released
//! only if it succeeds, so N attempts sent at once get at most the limit checked: the rest are
//! refused while the first ones are still hashing. The counts live in memory: a restart clears
//! them. That is accepted because a restart takes seconds, cannot be triggered from outside,
//! and each window's limit still holds between restarts; the README's Security section says so.

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
    /// Failed attempts plus attempts being checked now.
    failures: u32,
    first: Instant,
}

/// A client address may fail this many times more than one email may.
const CLIENT_FACTOR: u32 = 4;
/// Entries kept before old ones are swept.
const SWEEP_AT: usize = 10_000;

/// A login attempt that counts against its email and client address until it is resolved:
/// [`Attempt::succeeded`] releases it, anything else (a failure, an error, a dropped request)
/// keeps it counted.
#[must_use = "an attempt counts as failed unless it succeeded"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: [String; 2],
    started: Instant,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, client: &str) -> [String; 2] {
        [
            format!("email:{}", email.to_lowercase()),
            format!("client:{client}"),
        ]
    }

    /// Counts an attempt for this email and client now, or `Err(seconds to wait)` when either
    /// has reached its limit (the refused attempt is not counted).
    pub fn begin(&self, email: &str, client: &str, now: Instant) -> Result<Attempt<'_>, u64> {
        let keys = Self::keys(email, client);
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() >= SWEEP_AT {
            let window = self.window;
            entries.retain(|_, e| now.saturating_duration_since(e.first) < window);
        }
        for (key, factor) in keys.iter().zip([1, CLIENT_FACTOR]) {
            if let Some(e) = entries.get(key) {
                let elapsed = now.saturating_duration_since(e.first);
                if elapsed < self.window && e.failures >= self.max_failures * factor {
                    return Err((self.window - elapsed).as_secs().max(1));
                }
            }
        }
        for key in &keys {
            let e = entries.entry(key.clone()).or_insert(Entry {
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
        Ok(Attempt {
            throttle: self,
            keys,
            started: now,
        })
    }
}

impl Attempt<'_> {
    /// The password was right: the email's count is cleared, and this attempt no longer
    /// counts against the client address.
    pub fn succeeded(self) {
        self.release(true);
    }

    /// The attempt was never checked (the gateway was too busy): it does not count.
    pub fn withdrawn(self) {
        self.release(false);
    }

    fn release(self, clear_email: bool) {
        let mut entries = self.throttle.entries.lock().expect("throttle lock");
        let [email, client] = &self.keys;
        if clear_email {
            entries.remove(email);
        } else {
            uncount(&mut entries, email, self.started);
        }
        uncount(&mut entries, client, self.started);
    }
}

/// Takes one attempt back from a key, unless its window was restarted since the attempt began.
fn uncount(entries: &mut HashMap<String, Entry>, key: &str, started: Instant) {
    if let Some(e) = entries.get_mut(key)
        && e.first <= started
    {
        e.failures = e.failures.saturating_sub(1);
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
            let _failed = t.begin("a@x", "1.1.1.1", t0).unwrap();
        }
        let wait = t.begin("A@x", "2.2.2.2", t0).err().unwrap();
        assert!((59..=60).contains(&wait));
        assert!(t.begin("b@x", "2.2.2.2", t0).is_ok());
        assert!(
            t.begin("a@x", "1.1.1.1", t0 + Duration::from_secs(61))
                .is_ok()
        );
    }

    #[test]
    fn attempts_in_flight_count_before_their_password_is_checked() {
        let t = Throttle::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        // Twelve at once, none resolved yet: only five get to check a password.
        let started: Vec<_> = (0..12).map(|_| t.begin("a@x", "1.1.1.1", t0)).collect();
        assert_eq!(started.iter().filter(|r| r.is_ok()).count(), 5);
        assert_eq!(started.iter().filter(|r| r.is_err()).count(), 7);
    }

    #[test]
    fn locks_a_client_that_tries_many_emails() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..8 {
            let _failed = t.begin(&format!("u{i}@x"), "9.9.9.9", t0).unwrap();
        }
        assert!(t.begin("new@x", "9.9.9.9", t0).is_err());
        assert!(t.begin("new@x", "8.8.8.8", t0).is_ok());
    }

    #[test]
    fn success_clears_the_email_and_a_withdrawn_attempt_does_not_count() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let _failed = t.begin("a@x", "1", t0).unwrap();
        t.begin("a@x", "1", t0).unwrap().succeeded();
        let _failed = t.begin("a@x", "1", t0).unwrap();
        t.begin("a@x", "1", t0).unwrap().withdrawn();
        assert!(t.begin("a@x", "1", t0).is_ok());
    }
}
