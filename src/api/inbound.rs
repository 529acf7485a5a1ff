//! What a session received (`/messages`) and who asked it to stop writing (`/opt-outs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::NoContent;
use serde::{Deserialize, Serialize};

use super::doc::Created;
use super::extract::{AppJson, AppQuery};
use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::error::ApiError;
use crate::events::ReceivedMessage;
use crate::time::rfc3339;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated()
        .route(
            Method::Get,
            "/{name}/messages",
            "Messages the session received, oldest first (each once, by WhatsApp's id for it).",
            messages,
        )
        .route(
            Method::Get,
            "/{name}/opt-outs",
            "Numbers that asked the session not to write to them: sends to them fail `opted-out`.",
            list_opt_outs,
        )
        .route(
            Method::Post,
            "/{name}/opt-outs",
            "Put a number on the session's opt-out list.",
            add_opt_out,
        )
        .route(
            Method::Delete,
            "/{name}/opt-outs/{number}",
            "Take a number off the session's opt-out list.",
            remove_opt_out,
        )
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    /// Only messages received at or after this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    since: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<i64>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct MessageList {
    messages: Vec<ReceivedMessage>,
}

async fn messages(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppQuery(q): AppQuery<MessagesQuery>,
) -> Result<Json<MessageList>, ApiError> {
    state.sessions.get(&name)?;
    let since = match q.since.as_deref() {
        None => 0,
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .map_err(|e| ApiError::Validation(format!("since: not an RFC 3339 time: {e}")))?
            .as_millisecond(),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Validation("limit must be 1 to 1000".into()));
    }
    let rows = crate::db::inbound::list(&state.db.read, &name, since, limit).await?;
    Ok(Json(MessageList {
        messages: rows.into_iter().map(Into::into).collect(),
    }))
}

/// A number on a session's opt-out list.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct OptOutView {
    number: String,
    /// Why: the keyword the sender wrote (`STOP`), or what the API was told.
    reason: String,
    created_at: String,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct OptOutList {
    opt_outs: Vec<OptOutView>,
}

async fn list_opt_outs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<OptOutList>, ApiError> {
    state.sessions.get(&name)?;
    let rows = crate::db::inbound::opt_outs(&state.db.read, Some(&name)).await?;
    Ok(Json(OptOutList {
        opt_outs: rows
            .into_iter()
            .map(|r| OptOutView {
                number: r.number,
                reason: r.reason,
                created_at: rfc3339(r.created_at),
            })
            .collect(),
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::openapi::absent_not_null)]
struct OptOutRequest {
    /// The number, in any common form (as for send-message).
    #[schemars(example = "6281234567890")]
    number: String,
    /// Why (default `api`), up to 200 characters.
    #[schemars(length(min = 1, max = 200))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    reason: Option<String>,
}

/// A number put on the list.
#[derive(Serialize, schemars::JsonSchema)]
struct AddedView {
    number: String,
}

async fn add_opt_out(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppJson(req): AppJson<OptOutRequest>,
) -> Result<Created<AddedView>, ApiError> {
    state.sessions.get(&name)?;
    let reason = req.reason.unwrap_or_else(|| "api".into());
    if !(1..=200).contains(&reason.chars().count()) {
        return Err(ApiError::Validation(
            "reason must be 1 to 200 characters".into(),
        ));
    }
    let number = super::send::format_number(&state, &req.number)?;
    let created = state.queue.opt_out(&name, number.as_str(), &reason).await?;
    Ok(Created {
        body: AddedView {
            number: number.as_str().to_string(),
        },
        created,
    })
}

async fn remove_opt_out(
    State(state): State<AppState>,
    Path((name, number)): Path<(String, String)>,
) -> Result<NoContent, ApiError> {
    state.sessions.get(&name)?;
    let number = super::send::format_number(&state, &number)?;
    if state.queue.opt_in(&name, number.as_str()).await? {
        Ok(NoContent)
    } else {
        Err(ApiError::NotFound(
            "opt_out_not_found",
            format!("{} is not on the opt-out list of {name}", number.masked()),
        ))
    }
}
