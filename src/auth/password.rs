//! argon2id hashing, off the async threads, and never more at once than the machine can hold:
//! each hash takes its memory cost (19 MiB at the default parameters), so a flood of logins
//! would otherwise take gigabytes. Extra requests wait briefly for a turn, then are told to come
//! back ([`Busy`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Passwords shorter than this are refused when set.
pub const MIN_LEN: usize = 8;

/// Memory one argon2id hash takes at the default parameters.
const HASH_MEMORY: u64 = argon2::Params::DEFAULT_M_COST as u64 * 1024;
/// How long a request waits for a turn before it is told to come back.
const WAIT_FOR_TURN: Duration = Duration::from_secs(2);

/// Every hasher is busy: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking other passwords; try again in a second")]
pub struct Busy;

/// Hashes at once: two per core, and no more than a quarter of the memory available at start.
pub fn max_concurrent_hashes() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = crate::system::available_memory()
        .map(|bytes| (bytes / 4 / HASH_MEMORY) as usize)
        .unwrap_or(usize::MAX);
    (cores * 2).min(by_memory).max(1)
}

/// Hashes running now, and the most that ever ran at once (for `/metrics` and the tests).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most password hashes that ran at once since start.
pub fn peak_concurrent_hashes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Counts a hash while it runs.
struct Running;

impl Running {
    fn start() -> Running {
        let now = RUNNING.fetch_add(1, Ordering::AcqRel) + 1;
        PEAK.fetch_max(now, Ordering::AcqRel);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

fn turns() -> &'static Arc<Semaphore> {
    static TURNS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    TURNS.get_or_init(|| Arc::new(Semaphore::new(max_concurrent_hashes())))
}

async fn turn() -> Result<OwnedSemaphorePermit, Busy> {
    match tokio::time::timeout(WAIT_FOR_TURN, turns().clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Busy),
    }
}

pub async fn hash(password: String) -> anyhow::Result<String> {
    let span = tracing::Span::current();
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _g = span.enter();
        let _permit = permit;
        let _running = Running::start();
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
    })
    .await?
}

/// Verifies a password against a stored PHC string. With no stored hash (unknown user), a
/// dummy hash is checked so that the answer takes as long either way.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, Busy> {
    let span = tracing::Span::current();
    let permit = turn().await?;
    Ok(tokio::task::spawn_blocking(move || {
        let _g = span.enter();
        let _permit = permit;
        let _running = Running::start();
        let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
        match PasswordHash::new(&stored) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false))
}

/// argon2id of a random password nobody knows, made once, with the default parameters.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let pw = uuid::Uuid::new_v4().to_string();
        Argon2::default()
            .hash_password(pw.as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("password must be at least {MIN_LEN} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(
            verify("correct horse".into(), Some(h.clone())).await,
            Ok(true)
        );
        assert_eq!(verify("wrong horse".into(), Some(h)).await, Ok(false));
        assert_eq!(verify("anything".into(), None).await, Ok(false));
        assert!(max_concurrent_hashes() >= 1);
    }
}
