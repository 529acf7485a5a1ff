//! The HTTP API: one router per area, merged here with the body limit and request tracing.

mod auth;
mod dashboard;
mod events;
pub mod extract;
mod health;
mod jobs;
pub mod openapi;
mod plugins;
mod queue;
mod webhooks;
mod whatsapp;

use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::error::ApiError;

pub fn router(state: AppState) -> Router {
    let whatsapp = Router::new()
        .merge(jobs::router())
        .merge(queue::router())
        .merge(whatsapp::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    let plugins =
        plugins::router().route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    let events =
        events::router().route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    Router::new()
        .nest("/api/auth", auth::router())
        .nest("/api", events)
        .nest("/api/whatsapp", whatsapp)
        .nest("/api/plugins", plugins)
        .nest(
            "/api/webhooks",
            webhooks::router()
                .route_layer(middleware::from_fn_with_state(state.clone(), require_auth)),
        )
        .merge(health::router())
        .merge(dashboard::router())
        .merge(openapi::router())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // The path only: query strings may carry data we do not log.
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG),
                ),
        )
        .with_state(state)
}

/// Counts requests by route template (never the raw path) and status, for `/metrics`.
async fn count_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    // Cheap clones (an Arc and a method), so the route is counted without copying strings.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = req.method().clone();
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    state.metrics.http(&method, route, res.status().as_u16());
    res
}

/// Every `/api/whatsapp/*` route needs a valid access token.
async fn require_auth(
    _user: extract::AuthUser,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("not_found", "no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::bad_request("method_not_allowed", "this route does not take that method")
}

/// Unix milliseconds → RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
