//! `GET /health`: for load balancers and supervisors; no auth.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// Prometheus text format. No personal data: no numbers, texts or tokens in any label.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    use crate::metrics::{Gauges, PluginFigures};
    let c = state.queue.counts();
    let sender = state.queue.sender();
    let plugins = state
        .plugins
        .as_ref()
        .map(|p| {
            p.list()
                .iter()
                .map(|i| PluginFigures {
                    name: i.name.clone(),
                    hook: i.hook.as_str(),
                    calls: i.calls(),
                    failures: i.failures(),
                    seconds: i.total_seconds(),
                })
                .collect()
        })
        .unwrap_or_default();
    let gauges = Gauges {
        jobs: vec![
            ("waiting", c.waiting),
            ("active", c.active),
            ("completed", c.completed),
            ("failed", c.failed),
        ],
        plugins,
        restarts: sender.restarts_by_cause(),
        whatsapp_state: sender.status().state,
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.db.ping().await {
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok", "version": env!("CARGO_PKG_VERSION")})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"error": {"code": "database_unavailable", "message": "the database does not answer"}}),
            ),
        )
    }
}

/// `GET /health`.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct HealthDoc {
    status: String,
    database: String,
    version: String,
}

pub(super) fn docs(g: &mut schemars::generate::SchemaGenerator) -> Vec<super::openapi::Op> {
    use super::openapi::Op;
    vec![
        Op::new(
            "get",
            "/health",
            "For load balancers: 200 when the API and the database answer, else 503.",
        )
        .public()
        .ok::<HealthDoc>(g, 200, "healthy"),
        Op::new(
            "get",
            "/metrics",
            "Prometheus metrics (text format); no personal data.",
        )
        .public()
        .raw(200, "text/plain", "the metrics"),
    ]
}
