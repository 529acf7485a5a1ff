//! `[queue]`: how many sends at once, retries and backoff, shutdown, retention; and the bounds
//! the API enforces on the same settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Dur, Invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs sent at once. The API (`queue/config`) can change it; that value is kept in the
    /// database and wins over this one after a restart.
    pub concurrency: u32,
    /// Retries after the first attempt, for retryable failures.
    pub max_retries: u32,
    pub backoff_base: Dur,
    pub backoff_max: Dur,
    /// Longest a single send may take before it counts as a `timeout` failure.
    pub send_timeout: Dur,
    /// On SIGTERM, how long active sends may take to finish.
    pub shutdown_grace: Dur,
    /// Completed jobs older than this (since they finished) are deleted; 0 keeps them all.
    pub keep_completed: Dur,
    /// Failed jobs older than this (since they finished) are deleted; 0 keeps them all.
    pub keep_failed: Dur,
    /// How often finished jobs past their age are pruned.
    pub prune_interval: Dur,
}

impl QueueConfig {
    /// Sends at once: 1 to this (here and in `POST /api/whatsapp/queue/config`).
    pub const MAX_CONCURRENCY: u32 = 256;
    /// Retries after the first attempt: 0 to this.
    pub const MAX_RETRIES: u32 = 100;

    pub fn check_concurrency(n: u32) -> Result<(), String> {
        if (1..=Self::MAX_CONCURRENCY).contains(&n) {
            Ok(())
        } else {
            Err(format!(
                "concurrency must be between 1 and {}",
                Self::MAX_CONCURRENCY
            ))
        }
    }

    pub fn check_max_retries(n: u32) -> Result<(), String> {
        if n <= Self::MAX_RETRIES {
            Ok(())
        } else {
            Err(format!("max retries must be at most {}", Self::MAX_RETRIES))
        }
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        Self::check_concurrency(self.concurrency)
            .map_err(|m| Invalid::new("queue.concurrency", m))?;
        Self::check_max_retries(self.max_retries)
            .map_err(|m| Invalid::new("queue.max_retries", m))?;
        if self.backoff_base.0.is_zero() || self.backoff_max.0 < self.backoff_base.0 {
            return Err(Invalid::new(
                "queue.backoff_max",
                "backoff_base must be above zero and backoff_max at least backoff_base",
            ));
        }
        if self.prune_interval.0 < Duration::from_millis(10) {
            return Err(Invalid::new(
                "queue.prune_interval",
                "must be at least 10ms",
            ));
        }
        Ok(())
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            concurrency: 3,
            max_retries: 5,
            backoff_base: Dur::secs(2),
            backoff_max: Dur::secs(32),
            send_timeout: Dur::secs(60),
            shutdown_grace: Dur::secs(10),
            keep_completed: Dur::secs(7 * 86_400),
            keep_failed: Dur::secs(30 * 86_400),
            prune_interval: Dur::secs(60),
        }
    }
}
