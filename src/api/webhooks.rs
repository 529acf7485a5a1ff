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

/// One delivery, as listed.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct DeliveryDoc {
    /// Stable across retries: receivers drop repeats by it.
    id: String,
    url: String,
    event: String,
    job_id: Option<String>,
    /// pending, delivered or failed (given up).
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
    next_attempt_at: Option<String>,
}

#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct DeliveryList {
    deliveries: Vec<DeliveryDoc>,
}

pub(super) fn docs(g: &mut schemars::generate::SchemaGenerator) -> Vec<super::openapi::Op> {
    use super::openapi::Op;
    vec![
        Op::new(
            "get",
            "/api/webhooks/deliveries",
            "Recent webhook deliveries, newest first.",
        )
        .query("status", "pending, delivered or failed")
        .query("limit", "1 to 1000 (default 100)")
        .ok::<DeliveryList>(g, 200, "the deliveries"),
    ]
}
