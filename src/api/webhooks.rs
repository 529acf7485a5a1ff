//! `GET /api/webhooks/deliveries`: recent webhook deliveries and how they went.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/deliveries", get(deliveries))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    status: Option<String>,
    limit: Option<i64>,
}

async fn deliveries(
    State(state): State<AppState>,
    Query(f): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = &f.status
        && !["pending", "delivered", "failed"].contains(&s.as_str())
    {
        return Err(ApiError::Validation(format!(
            "status must be pending, delivered or failed, not {s:?}"
        )));
    }
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let rows = crate::webhooks::recent(&state.db.read, f.status.as_deref(), limit).await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["createdAt"] = json!(crate::api::rfc3339(d.created_at));
            v["deliveredAt"] = json!(d.delivered_at.map(crate::api::rfc3339));
            v["nextAttemptAt"] =
                json!((d.status == "pending").then(|| crate::api::rfc3339(d.next_attempt_at)));
            v
        })
        .collect();
    Ok(Json(json!({ "deliveries": out })))
}
