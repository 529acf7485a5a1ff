//! `GET /api/webhooks/deliveries`: recent webhook deliveries and how they went.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::AppQuery;
use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::error::ApiError;
use crate::time::rfc3339;
use crate::webhooks::Delivery;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated().route(
        Method::Get,
        "/deliveries",
        "Recent webhook deliveries, newest first.",
        deliveries,
    )
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Filter {
    /// Only deliveries in this state.
    #[schemars(extend("enum" = ["pending", "delivered", "failed"]))]
    status: Option<String>,
    /// How many, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<i64>,
}

/// One delivery, as listed.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct DeliveryView {
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
    /// When the next try is due, while pending.
    next_attempt_at: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
            id: d.id,
            url: d.url,
            event: d.event,
            job_id: d.job_id,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct DeliveryList {
    deliveries: Vec<DeliveryView>,
}

async fn deliveries(
    State(state): State<AppState>,
    AppQuery(f): AppQuery<Filter>,
) -> Result<Json<DeliveryList>, ApiError> {
    if let Some(s) = &f.status
        && !["pending", "delivered", "failed"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("status must be pending, delivered or failed, not {s:?}"),
        ));
    }
    let limit = match f.limit {
        None => 100,
        Some(l) if (1..=1000).contains(&l) => l,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be 1 to 1000",
            ));
        }
    };
    let rows = crate::webhooks::recent(&state.db.read, f.status.as_deref(), limit).await?;
    Ok(Json(DeliveryList {
        deliveries: rows.into_iter().map(DeliveryView::from).collect(),
    }))
}
