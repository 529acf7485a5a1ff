//! `send-message` and the per-job endpoints. The API never sends: it validates, stores the job
//! durably, and answers.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::extract::AppJson;
use super::rfc3339;
use crate::app::AppState;
use crate::db::{self, jobs};
use crate::domain::{PhoneNumber, Priority};
use crate::error::ApiError;
use crate::hooks::{HookError, Outgoing};
use crate::queue::{JobRow, NewJob};
use crate::whatsapp::Receipt;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/send-message", post(send_message))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{job_id}", get(get_job).delete(cancel_job))
        .route("/jobs/{job_id}/retry", post(retry_job))
}

/// WhatsApp's limit on one text message.
pub const MAX_MESSAGE_CHARS: usize = 65_536;
const MAX_MESSAGE_ID_LEN: usize = 128;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendMessageRequest {
    number: String,
    message: Option<String>,
    template: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
    priority: Option<String>,
    message_id: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SendMessageResponse {
    job_id: String,
    message_id: String,
    chat_id: String,
    status: String,
    priority: &'static str,
}

fn hook_error(e: HookError, code: &'static str) -> ApiError {
    match e {
        HookError::Rejected(msg) => ApiError::bad_request(code, msg),
        HookError::Failed { plugin, reason } => {
            ApiError::Unavailable("plugin_failed", format!("plugin {plugin} failed: {reason}"))
        }
    }
}

async fn send_message(
    State(state): State<AppState>,
    AppJson(req): AppJson<SendMessageRequest>,
) -> Result<Response, ApiError> {
    let hooks = state.queue.hooks();
    let requested = req
        .priority
        .as_deref()
        .map(|p| match p.to_ascii_lowercase().as_str() {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(ApiError::Validation(format!(
                "priority must be high, normal or low, not {p:?}"
            ))),
        })
        .transpose()?;
    let message_id = match req.message_id {
        Some(id) => {
            let id = id.trim().to_string();
            if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN || id.chars().any(char::is_control) {
                return Err(ApiError::Validation(format!(
                    "messageId must be 1 to {MAX_MESSAGE_ID_LEN} printable characters"
                )));
            }
            id
        }
        // Time-ordered, so the unique index grows at its end instead of at random pages.
        None => format!("msg_{}", uuid::Uuid::now_v7().simple()),
    };

    let digits = hooks
        .format_number(&req.number)
        .map_err(|e| hook_error(e, "invalid_number"))?;
    let number =
        PhoneNumber::parse(&digits).map_err(|m| ApiError::bad_request("invalid_number", m))?;

    let (text, template) = match (req.message, req.template) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Validation(
                "send either `message` or `template`, not both".into(),
            ));
        }
        (None, None) => {
            return Err(ApiError::Validation(
                "missing field `message` (or `template` with `variables`)".into(),
            ));
        }
        (Some(text), None) => {
            if !req.variables.is_empty() {
                return Err(ApiError::Validation(
                    "`variables` go with `template`, not `message`".into(),
                ));
            }
            (text, None)
        }
        (None, Some(name)) => {
            let Some(source) = state.templates.get(&name) else {
                return Err(ApiError::bad_request(
                    "unknown_template",
                    format!("no template named {name:?}"),
                ));
            };
            let vars = variables(req.variables)?;
            let text = hooks
                .render(source, &vars)
                .map_err(|e| hook_error(e, "template_error"))?;
            (text, Some(name))
        }
    };
    if text.trim().is_empty() {
        return Err(ApiError::Validation("message must not be empty".into()));
    }
    let chars = text.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ApiError::Validation(format!(
            "message has {chars} characters; WhatsApp takes at most {MAX_MESSAGE_CHARS}"
        )));
    }

    let priority = hooks
        .assign_priority(&Outgoing {
            number: number.as_str().to_string(),
            chat_id: number.chat_id(),
            text: text.clone(),
            template: template.clone(),
            requested,
            metadata: Vec::new(),
        })
        .map_err(|e| hook_error(e, "invalid_priority"))?;
    let job = NewJob {
        id: format!("job_{}", uuid::Uuid::now_v7().simple()),
        message_id,
        number: number.as_str().to_string(),
        chat_id: number.chat_id(),
        message: text,
        template,
        priority: priority.rank(),
        now: db::now_ms(),
    };
    let (want_chat, want_text) = (job.chat_id.clone(), job.message.clone());
    let (row, created) = state.queue.enqueue(job).await?;
    if !created && (row.chat_id != want_chat || row.message != want_text) {
        return Err(ApiError::Conflict(
            "idempotency_conflict",
            format!(
                "messageId {:?} was already used for a different message (job {})",
                row.message_id, row.id
            ),
        ));
    }
    let body = SendMessageResponse {
        job_id: row.id,
        message_id: row.message_id,
        chat_id: row.chat_id,
        status: row.status,
        priority: Priority::from_rank(row.priority).as_str(),
    };
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)).into_response())
}

/// Template variables: strings, numbers and booleans, as text.
fn variables(raw: BTreeMap<String, serde_json::Value>) -> Result<Vec<(String, String)>, ApiError> {
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(ApiError::Validation(format!(
                "variable `{k}` must be a string, number or boolean"
            ))),
        })
        .collect()
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
    chat_id: String,
    message: String,
    template: Option<String>,
    status: String,
    priority: &'static str,
    attempts: i64,
    last_error: Option<ErrorView>,
    created_at: String,
    updated_at: String,
    next_attempt_at: Option<String>,
    finished_at: Option<String>,
    /// What the driver saw when the job completed.
    receipt: Option<Receipt>,
}

impl From<JobRow> for JobView {
    fn from(r: JobRow) -> Self {
        JobView {
            next_attempt_at: (r.status == "waiting").then(|| rfc3339(r.run_at)),
            last_error: r.error_code.map(|code| ErrorView {
                code,
                message: r.error_message.unwrap_or_default(),
            }),
            job_id: r.id,
            message_id: r.message_id,
            chat_id: r.chat_id,
            message: r.message,
            template: r.template,
            status: r.status,
            priority: Priority::from_rank(r.priority).as_str(),
            attempts: r.attempts,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
            receipt: r.receipt.and_then(|t| serde_json::from_str(&t).ok()),
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
    Ok(Json(row.into()))
}

pub const STATUSES: [&str; 4] = ["waiting", "active", "completed", "failed"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
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
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("status must be one of {}", STATUSES.join(", ")),
        ));
    }
    let limit = match q.limit.as_deref() {
        None | Some("") => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_query", format!("limit must be 1 to {MAX_PAGE}"))
            })?,
    };
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
            ApiError::bad_request("invalid_query", "cursor is not one this API gave out")
        })?),
    };
    let rows = jobs::list(&state.db.read, status.as_deref(), limit + 1, before).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<JobRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(JobList {
        jobs: rows.into_iter().map(JobView::from).collect(),
        next_cursor,
    }))
}

async fn retry_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    match state.queue.requeue_failed(id.clone()).await? {
        Ok(Some(row)) => Ok(Json(row.into())),
        Ok(None) => Err(not_found(&id)),
        Err(status) => Err(ApiError::Conflict(
            "invalid_state",
            format!("only failed jobs can be retried; this one is {status}"),
        )),
    }
}

async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    match state.queue.cancel_waiting(id.clone()).await? {
        Ok(Some(row)) => Ok(Json(row.into())),
        Ok(None) => Err(not_found(&id)),
        Err(status) => Err(ApiError::Conflict(
            "invalid_state",
            format!("only waiting jobs can be cancelled; this one is {status}"),
        )),
    }
}

pub(super) fn docs(g: &mut schemars::generate::SchemaGenerator) -> Vec<super::openapi::Op> {
    use super::openapi::Op;
    vec![
        Op::new(
            "post",
            "/api/whatsapp/send-message",
            "Validate, format and queue a message; answers at once.",
        )
        .body::<SendMessageRequest>(g)
        .ok::<SendMessageResponse>(g, 202, "queued (stored durably)")
        .ok::<SendMessageResponse>(
            g,
            200,
            "the same messageId was queued before; nothing more is sent",
        ),
        Op::new("get", "/api/whatsapp/jobs", "List jobs, newest first.")
            .query("status", "waiting, active, completed or failed")
            .query("limit", "1 to 500 (default 50)")
            .query("cursor", "nextCursor of the previous page")
            .ok::<JobList>(g, 200, "a page of jobs"),
        Op::new("get", "/api/whatsapp/jobs/{job_id}", "One job.").ok::<JobView>(g, 200, "the job"),
        Op::new(
            "delete",
            "/api/whatsapp/jobs/{job_id}",
            "Cancel a waiting job (it ends failed, code cancelled).",
        )
        .ok::<JobView>(g, 200, "the cancelled job"),
        Op::new(
            "post",
            "/api/whatsapp/jobs/{job_id}/retry",
            "Re-queue a failed job; its attempts start from 0.",
        )
        .ok::<JobView>(g, 200, "the re-queued job"),
    ]
}
