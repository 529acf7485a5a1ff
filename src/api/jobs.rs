//! The per-job endpoints: look a job up, list jobs, cancel a waiting one, re-queue a failed one;
//! and the area's routes (`send-message` is in `send.rs`).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::extract::{AppQuery, body_limit};
use super::routes::{ApiRouter, Method};
use super::send::{SEND_BODY_LIMIT, send_message};
use crate::app::AppState;
use crate::db::jobs;
use crate::db::jobs::{Admin, AdminOutcome};
use crate::domain::Priority;
use crate::error::ApiError;
use crate::queue::{JobRow, JobState};
use crate::time::rfc3339;
use crate::whatsapp::Receipt;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated()
        .route_with(
            Method::Post,
            "/send-message",
            "Validate, format and queue a message; answers at once.",
            send_message,
            |r| body_limit(r, SEND_BODY_LIMIT),
        )
        .describe(|op, _| {
            for (name, target) in [
                ("GetJob", ("get", JOB)),
                ("CancelJob", ("delete", JOB)),
                ("RetryJob", ("post", JOB_RETRY)),
            ] {
                op.link(202, name, target, "job_id", "$response.body#/jobId");
            }
        })
        .route(Method::Get, "/jobs", "List jobs, newest first.", list_jobs)
        .route(Method::Get, "/jobs/{job_id}", "One job.", get_job)
        .route(
            Method::Delete,
            "/jobs/{job_id}",
            "Cancel a waiting job (it ends failed, code cancelled).",
            cancel_job,
        )
        .route(
            Method::Post,
            "/jobs/{job_id}/retry",
            "Re-queue a failed job; its attempts start from 0.",
            retry_job,
        )
}

#[derive(Serialize, schemars::JsonSchema)]
struct ErrorView {
    code: String,
    message: String,
}

/// A job as the API shows it.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    job_id: String,
    message_id: String,
    /// The session that sends it.
    session: String,
    chat_id: String,
    message: String,
    template: Option<String>,
    status: JobState,
    priority: &'static str,
    attempts: i64,
    last_error: Option<ErrorView>,
    created_at: String,
    updated_at: String,
    /// When a waiting job will next be tried (pacing included).
    next_attempt_at: Option<String>,
    /// The pacing rule that holds this waiting job back, if one does (`per_hour`, `gap`,
    /// `quiet_hours`, `per_recipient_per_hour`, a cooldown's reason, ...).
    paced_by: Option<String>,
    finished_at: Option<String>,
    /// Once completed: how far the message got (`status`: sent, delivered, read) and what the
    /// driver saw when it went.
    receipt: Option<Receipt>,
    /// When the recipient's phone got it (two ticks), once the driver saw it.
    delivered_at: Option<String>,
    /// When the recipient read it (blue ticks), once the driver saw it.
    read_at: Option<String>,
    /// The file it sends, if any (`message` is then its caption).
    media: Option<JobMedia>,
}

/// The file a job sends.
#[derive(Serialize, schemars::JsonSchema)]
pub struct JobMedia {
    /// Its `mediaId` (`GET /api/media/{id}` describes it).
    id: String,
    /// What it goes as.
    #[serde(rename = "as")]
    kind: Option<crate::domain::MediaKind>,
}

impl JobView {
    /// The row, with when it will go as the queue's pacing sees it.
    pub fn new(r: JobRow, queue: &crate::queue::Queue) -> Self {
        let waiting = r.status == JobState::Waiting;
        let (next, paced_by) = queue.next_attempt(&r);
        JobView {
            next_attempt_at: waiting.then(|| rfc3339(next)),
            paced_by: paced_by.filter(|_| waiting),
            last_error: r.error_code.map(|code| ErrorView {
                code,
                message: r.error_message.unwrap_or_default(),
            }),
            job_id: r.id,
            message_id: r.message_id,
            session: r.session,
            chat_id: r.chat_id,
            message: r.message,
            template: r.template,
            status: r.status,
            priority: Priority::from_rank(r.priority).as_str(),
            attempts: r.attempts,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
            receipt: (r.status == JobState::Completed).then(|| {
                let mut receipt: Receipt = r
                    .receipt
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                receipt.status = r.ack.as_deref().and_then(crate::whatsapp::Ack::parse);
                receipt
            }),
            delivered_at: r.delivered_at.map(rfc3339),
            read_at: r.read_at.map(rfc3339),
            media: r.media_id.map(|id| JobMedia {
                id,
                kind: r
                    .media_as
                    .as_deref()
                    .and_then(crate::domain::MediaKind::parse),
            }),
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound("job_not_found", format!("no job {id:?}"))
}

async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let row = jobs::get(&state.db.read, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(JobView::new(row, &state.queue)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only jobs in this state.
    status: Option<JobState>,
    /// Only jobs of this session.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$"))]
    session: Option<String>,
    /// Jobs per page, 1 to 500 (default 50).
    #[schemars(range(min = 1, max = 500))]
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    #[schemars(range(min = 1))]
    cursor: Option<i64>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct JobList {
    jobs: Vec<JobView>,
    next_cursor: Option<String>,
}

const MAX_PAGE: i64 = 500;

async fn list_jobs(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let status = q.status;
    let limit = match q.limit {
        None => 50,
        Some(l) if (1..=MAX_PAGE).contains(&l) => l,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be 1 to {MAX_PAGE}"),
            ));
        }
    };
    let before = match q.cursor {
        None => None,
        Some(c) if c > 0 => Some(c),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "cursor is not one this API gave out",
            ));
        }
    };
    if q.session
        .as_deref()
        .is_some_and(|s| !crate::config::valid_session_name(s))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "session must match ^[a-z0-9][a-z0-9_-]{0,31}$",
        ));
    }
    let rows = jobs::list(
        &state.db.read,
        status,
        q.session.as_deref(),
        limit + 1,
        before,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<JobRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(JobList {
        jobs: rows
            .into_iter()
            .map(|r| JobView::new(r, &state.queue))
            .collect(),
        next_cursor,
    }))
}

async fn retry_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    transition(
        &state,
        id,
        Admin::Requeue,
        "only failed jobs can be retried",
    )
    .await
}

async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    transition(
        &state,
        id,
        Admin::Cancel,
        "only waiting jobs can be cancelled",
    )
    .await
}

async fn transition(
    state: &AppState,
    id: String,
    action: Admin,
    rule: &str,
) -> Result<Json<JobView>, ApiError> {
    match state.queue.admin(id.clone(), action).await? {
        AdminOutcome::Done(row) => Ok(Json(JobView::new(*row, &state.queue))),
        AdminOutcome::NotFound => Err(not_found(&id)),
        AdminOutcome::WrongState(now) => Err(ApiError::Conflict(
            "invalid_state",
            format!("{rule}; this one is {now}"),
        )),
    }
}

const JOB: &str = "/api/whatsapp/jobs/{job_id}";
const JOB_RETRY: &str = "/api/whatsapp/jobs/{job_id}/retry";
