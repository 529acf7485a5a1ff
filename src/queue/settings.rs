//! The run-time controls (concurrency, retries, pause): read from gateway.toml, changed through
//! the API, stored in the database so that a change survives a restart (and then wins over the
//! file, which the log says).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::config::QueueConfig;
use crate::db::{Db, DbError, Durability, settings};

/// Run-time queue settings, as `POST /api/whatsapp/queue/config` shows and changes them.
#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueSettings {
    pub concurrency: u32,
    pub max_retries: u32,
    pub paused: bool,
}

/// A change to the settings; absent fields stay as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct SettingsChange {
    pub concurrency: Option<u32>,
    pub max_retries: Option<u32>,
    pub paused: Option<bool>,
}

/// Each setting's key in the `settings` table.
const CONCURRENCY: &str = "queue.concurrency";
const MAX_RETRIES: &str = "queue.max_retries";
const PAUSED: &str = "queue.paused";

/// The settings in force, read on every dispatcher round.
pub(super) struct Settings {
    concurrency: AtomicU32,
    max_retries: AtomicU32,
    paused: AtomicBool,
}

impl Settings {
    /// The file's values, overridden by what the API stored earlier.
    pub(super) async fn load(db: &Db, config: &QueueConfig) -> Result<Settings, DbError> {
        let stored = |key| settings::get(&db.read, key);
        let pick = |key: &str, stored: Option<String>, file: u32| match stored
            .and_then(|v| v.parse::<u32>().ok())
        {
            Some(v) if v != file => {
                tracing::info!(
                    setting = key,
                    stored = v,
                    file,
                    "{key} set through the API overrides gateway.toml"
                );
                v
            }
            _ => file,
        };
        let concurrency = pick(CONCURRENCY, stored(CONCURRENCY).await?, config.concurrency);
        let max_retries = pick(MAX_RETRIES, stored(MAX_RETRIES).await?, config.max_retries);
        let paused = stored(PAUSED).await?.is_some_and(|v| v == "true");
        if paused {
            tracing::warn!(
                "the queue is paused (set through the API); resume with POST /api/whatsapp/queue/config {{\"paused\":false}}"
            );
        }
        Ok(Settings {
            concurrency: AtomicU32::new(concurrency),
            max_retries: AtomicU32::new(max_retries),
            paused: AtomicBool::new(paused),
        })
    }

    pub(super) fn get(&self) -> QueueSettings {
        QueueSettings {
            concurrency: self.concurrency.load(Ordering::Relaxed),
            max_retries: self.max_retries.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
        }
    }

    /// Stores the change durably, then applies it.
    pub(super) async fn update(
        &self,
        db: &Db,
        change: SettingsChange,
    ) -> Result<QueueSettings, DbError> {
        let pairs: Vec<(&'static str, String)> = [
            (CONCURRENCY, change.concurrency.map(|v| v.to_string())),
            (MAX_RETRIES, change.max_retries.map(|v| v.to_string())),
            (PAUSED, change.paused.map(|v| v.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        db.writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    let now = crate::time::now_ms();
                    for (k, v) in &pairs {
                        settings::set(c, k, v, now).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        if let Some(c) = change.concurrency {
            self.concurrency.store(c, Ordering::Relaxed);
        }
        if let Some(m) = change.max_retries {
            self.max_retries.store(m, Ordering::Relaxed);
        }
        if let Some(p) = change.paused {
            self.paused.store(p, Ordering::Relaxed);
        }
        let now = self.get();
        tracing::info!(
            concurrency = now.concurrency,
            max_retries = now.max_retries,
            paused = now.paused,
            "⚙️ Queue settings changed"
        );
        Ok(now)
    }
}
