//! `GET /health`: for load balancers and supervisors; no auth.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaGenerator;

use super::doc::DocOutput;
use super::openapi::Op;
use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::error::ApiError;

pub fn routes() -> ApiRouter {
    ApiRouter::public()
        .route(
            Method::Get,
            "/health",
            "For load balancers: 200 when the API and the database answer, else 503.",
            health,
        )
        .route(
            Method::Get,
            "/metrics",
            "Prometheus metrics (text format); no personal data.",
            metrics,
        )
}

/// Prometheus text format. No personal data: no numbers, texts or tokens in any label.
async fn metrics(State(state): State<AppState>) -> MetricsText {
    use crate::metrics::{Gauges, PluginFigures};
    let c = state.queue.counts();
    let sessions = state.sessions.list();
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
        jobs: crate::queue::JobState::ALL
            .into_iter()
            .map(|s| (s.as_str(), c.get(s)))
            .collect(),
        plugins,
        restarts: sessions
            .iter()
            .flat_map(|s| {
                let by_cause = s
                    .sender()
                    .map(|d| d.restarts_by_cause())
                    .unwrap_or_default();
                by_cause
                    .into_iter()
                    .map(|(cause, n)| (s.name().to_string(), cause, n))
            })
            .collect(),
        conflicts: sessions
            .iter()
            .flat_map(|s| {
                let by_action = s.sender().map(|d| d.conflicts()).unwrap_or_default();
                by_action
                    .into_iter()
                    .map(|(action, n)| (s.name().to_string(), action, n))
            })
            .collect(),
        states: sessions
            .iter()
            .map(|s| (s.name().to_string(), s.status().state))
            .collect(),
    };
    MetricsText(state.metrics.render(&gauges))
}

/// `GET /health` when all is well.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Healthy {
    /// `ok`.
    status: &'static str,
    /// `ok`.
    database: &'static str,
    version: &'static str,
}

/// 200 with [`Healthy`], or 503 `database_unavailable` in the error envelope.
pub struct Health(Result<Healthy, ApiError>);

impl IntoResponse for Health {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(h) => Json(h).into_response(),
            Err(e) => e.into_response(),
        }
    }
}

impl DocOutput for Health {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.json::<Healthy>(g, 200, "the API and the database answer");
    }
}

async fn health(State(state): State<AppState>) -> Health {
    Health(if state.db.ping().await {
        Ok(Healthy {
            status: "ok",
            database: "ok",
            version: env!("CARGO_PKG_VERSION"),
        })
    } else {
        Err(ApiError::Unavailable(
            "database_unavailable",
            "the database does not answer".into(),
        ))
    })
}

/// Prometheus' text format.
pub struct MetricsText(String);

impl IntoResponse for MetricsText {
    fn into_response(self) -> Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            self.0,
        )
            .into_response()
    }
}

impl DocOutput for MetricsText {
    fn document(op: &mut Op, _g: &mut SchemaGenerator) {
        op.raw(200, "text/plain", "the metrics");
    }
}
