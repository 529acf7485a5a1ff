//! Queue management and the live status: `retry-queue`, `queue/clear`, `queue/config`, `status`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{AppJson, OptionalJson};
use super::jobs::JobView;
use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::config::QueueConfig;
use crate::db::jobs::{self, Counts};
use crate::error::ApiError;
use crate::queue::{JobState, QueueSettings, SettingsChange};
use crate::whatsapp::WhatsAppStatus;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated()
        .route(
            Method::Get,
            "/retry-queue",
            "Counts, plus failed jobs and jobs waiting for a retry.",
            retry_queue,
        )
        .route(
            Method::Post,
            "/queue/clear",
            "Delete finished jobs (default completed and failed; never active).",
            clear_queue,
        )
        .route(
            Method::Post,
            "/queue/config",
            "Change concurrency, retries or pause at run time; kept across restarts.",
            configure_queue,
        )
        .route(
            Method::Get,
            "/queue/config",
            "The queue settings in force.",
            queue_config,
        )
        .route(
            Method::Get,
            "/status",
            "Live WhatsApp state, queue figures and storage.",
            status,
        )
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RetryQueue {
    /// All sessions together.
    counts: Counts,
    /// The same counts per session (every session that has jobs).
    by_session: BTreeMap<String, Counts>,
    jobs: Vec<JobView>,
}

async fn retry_queue(State(state): State<AppState>) -> Result<Json<RetryQueue>, ApiError> {
    let (by_session, rows) = tokio::try_join!(
        jobs::counts_by_session(&state.db.read),
        jobs::retry_queue(&state.db.read, 200)
    )?;
    let counts = Counts::total(by_session.values());
    Ok(Json(RetryQueue {
        counts,
        by_session,
        jobs: rows
            .into_iter()
            .map(|r| JobView::new(r, &state.queue))
            .collect(),
    }))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::openapi::absent_not_null)]
struct ClearRequest {
    /// States to clear (default: completed and failed); active jobs are never cleared.
    #[schemars(extend("items" = {"type": "string", "enum": ["completed", "failed", "waiting"]}))]
    #[schemars(length(min = 1))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    status: Option<Vec<String>>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Cleared {
    cleared: u64,
}

/// The body is optional: no body (or `{}`) clears completed and failed jobs.
async fn clear_queue(
    State(state): State<AppState>,
    OptionalJson(req): OptionalJson<ClearRequest>,
) -> Result<Json<Cleared>, ApiError> {
    let statuses = req
        .status
        .unwrap_or_else(|| vec!["completed".into(), "failed".into()]);
    if statuses.is_empty() {
        return Err(ApiError::Validation(
            "status must name at least one of completed, failed, waiting".into(),
        ));
    }
    let mut states = Vec::new();
    for s in &statuses {
        if s == "active" {
            return Err(ApiError::Validation(
                "active jobs cannot be cleared; pause the queue and let them finish".into(),
            ));
        }
        match JobState::parse(s) {
            Some(st) if !states.contains(&st) => states.push(st),
            Some(_) => {}
            None => {
                return Err(ApiError::Validation(format!(
                    "unknown status {s:?}; use completed, failed or waiting"
                )));
            }
        }
    }
    let cleared = state.queue.clear(states).await?;
    Ok(Json(Cleared { cleared }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = super::openapi::absent_not_null)]
struct ConfigRequest {
    /// Sends at once, 1 to 256.
    #[schemars(range(min = 1, max = QueueConfig::MAX_CONCURRENCY))]
    #[serde(default, deserialize_with = "crate::config::whole_number")]
    concurrency: Option<u32>,
    /// Retries after the first attempt, 0 to 100.
    #[schemars(range(max = QueueConfig::MAX_RETRIES))]
    #[serde(default, deserialize_with = "crate::config::whole_number")]
    max_retries: Option<u32>,
    #[serde(default, deserialize_with = "super::extract::non_null")]
    paused: Option<bool>,
}

async fn queue_config(State(state): State<AppState>) -> Json<QueueSettings> {
    Json(state.queue.settings())
}

async fn configure_queue(
    State(state): State<AppState>,
    AppJson(req): AppJson<ConfigRequest>,
) -> Result<Json<QueueSettings>, ApiError> {
    if let Some(c) = req.concurrency {
        QueueConfig::check_concurrency(c).map_err(ApiError::Validation)?;
    }
    if let Some(m) = req.max_retries {
        QueueConfig::check_max_retries(m).map_err(ApiError::Validation)?;
    }
    let now = state
        .queue
        .update_settings(SettingsChange {
            concurrency: req.concurrency,
            max_retries: req.max_retries,
            paused: req.paused,
        })
        .await?;
    Ok(Json(now))
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct QueueStatus {
    /// `processing`, `paused`, `held` (WhatsApp not connected) or `idle`.
    state: &'static str,
    /// Why jobs are not moving, when they are not.
    held_reason: Option<String>,
    active: u32,
    concurrency: u32,
    max_retries: u32,
    waiting: i64,
    failed: i64,
    completed: i64,
    /// Completed out of finished jobs, in percent (one decimal); null before any finished.
    success_rate: Option<f64>,
}

/// One session's line of the status.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SessionStatus {
    name: String,
    whatsapp: WhatsAppStatus,
    queue: QueueStatus,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Status {
    /// The `default` session's WhatsApp state (`stopped` when there is none).
    whatsapp: WhatsAppStatus,
    /// All sessions together.
    queue: QueueStatus,
    /// Each session: its WhatsApp state and queue.
    sessions: Vec<SessionStatus>,
    storage: StorageStatus,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StorageStatus {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    /// SQLite: the database file; PostgreSQL: the database's size.
    database_bytes: u64,
    /// SQLite's write-ahead log (0 on PostgreSQL).
    wal_bytes: u64,
    /// When the oldest job still kept was created (retention prunes finished ones).
    oldest_job_at: Option<String>,
}

/// The queue's state and figures for `counts`, given what holds it.
fn queue_status(
    settings: QueueSettings,
    concurrency: u32,
    active: u32,
    counts: Counts,
    held: Option<String>,
) -> QueueStatus {
    let (queue_state, held_reason) = if settings.paused {
        (
            "paused",
            Some("paused through POST /api/whatsapp/queue/config".to_string()),
        )
    } else if let Some(why) = held {
        ("held", Some(why))
    } else if active > 0 || counts.waiting > 0 {
        ("processing", None)
    } else {
        ("idle", None)
    };
    let finished = counts.completed + counts.failed;
    let success_rate =
        (finished > 0).then(|| (counts.completed as f64 * 1000.0 / finished as f64).round() / 10.0);
    QueueStatus {
        state: queue_state,
        held_reason,
        active,
        concurrency,
        max_retries: settings.max_retries,
        waiting: counts.waiting,
        failed: counts.failed,
        completed: counts.completed,
        success_rate,
    }
}

/// Why a session's jobs are not moving, if they are not.
fn held(s: &crate::sessions::Session, w: &WhatsAppStatus) -> Option<String> {
    if s.lane().paused() {
        Some(format!("session {} is paused", s.name()))
    } else if !s.lane().is_ready() {
        Some(format!(
            "WhatsApp ({}) is {}: {}",
            s.name(),
            w.state,
            w.detail
        ))
    } else {
        None
    }
}

async fn status(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let settings = state.queue.settings();
    let list = state.sessions.list();
    let mut sessions = Vec::with_capacity(list.len());
    for s in &list {
        let whatsapp = s.status();
        let why = held(s, &whatsapp);
        sessions.push(SessionStatus {
            name: s.name().to_string(),
            queue: queue_status(
                settings,
                s.lane().concurrency(settings.concurrency),
                s.lane().active(),
                state.queue.counts_of(s.name()),
                why,
            ),
            whatsapp,
        });
    }
    let default = sessions.iter().find(|s| s.name == crate::sessions::DEFAULT);
    let whatsapp = default.map_or_else(
        || WhatsAppStatus {
            state: crate::whatsapp::SessionState::Stopped,
            detail: "there is no default session".into(),
            driver: state.sessions.default_driver().as_str(),
            since: crate::time::rfc3339(crate::time::now_ms()),
        },
        |d| d.whatsapp.clone(),
    );
    // The whole queue is held only when no session can send.
    let all_held = !sessions.is_empty() && sessions.iter().all(|s| s.queue.held_reason.is_some());
    let why = all_held.then(|| {
        sessions
            .iter()
            .filter_map(|s| s.queue.held_reason.clone())
            .collect::<Vec<_>>()
            .join("; ")
    });
    let queue = queue_status(
        settings,
        settings.concurrency,
        state.queue.active(),
        state.queue.counts(),
        why,
    );
    let (database_bytes, wal_bytes) = state.db.sizes().await;
    let oldest = crate::db::jobs::oldest_created_at(&state.db.read).await?;
    Ok(Json(Status {
        storage: StorageStatus {
            backend: state.db.backend().as_str(),
            database_bytes,
            wal_bytes,
            oldest_job_at: oldest.map(crate::time::rfc3339),
        },
        whatsapp,
        queue,
        sessions,
    }))
}
