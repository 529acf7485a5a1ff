//! The HTTP API: each area's routes with their operations (`routes.rs`), assembled here into
//! one router and the OpenAPI document, with the body limit, time limit, error envelope and
//! request tracing around them.

mod auth;
mod cluster;
mod dashboard;
pub mod doc;
mod events;
pub mod extract;
mod health;
mod inbound;
mod jobs;
mod media;
pub mod openapi;
mod plugins;
mod queue;
pub mod routes;
mod send;
mod sessions;
mod webhooks;
mod whatsapp;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware;
use tower_http::trace::TraceLayer;

use axum::response::IntoResponse;

use crate::app::AppState;
use crate::error::ApiError;

pub fn router(state: AppState) -> Router {
    let auth = |r: Router<AppState>| {
        r.route_layer(middleware::from_fn_with_state(state.clone(), require_auth))
    };
    let whatsapp = jobs::routes()
        .merge(queue::routes())
        .merge(whatsapp::routes())
        .route_layer(auth);
    let api = routes::ApiRouter::public()
        .nest("/api/auth", auth::routes())
        .nest(
            "/api",
            events::routes().merge(cluster::routes()).route_layer(auth),
        )
        .nest("/api/whatsapp", whatsapp)
        .nest(
            "/api/sessions",
            sessions::routes()
                .merge(inbound::routes())
                .route_layer(auth),
        )
        .nest(
            "/api/media",
            media::routes(state.media.max_bytes()).route_layer(auth),
        )
        .nest("/api/plugins", plugins::routes().route_layer(auth))
        .nest("/api/webhooks", webhooks::routes().route_layer(auth))
        .merge(health::routes())
        .merge(dashboard::routes())
        .merge(openapi::routes());
    let mut g = openapi::generator();
    let (router, ops) = api.finish(&mut g);
    let templates: Vec<&str> = state.templates.keys().map(String::as_str).collect();
    let document: openapi::DocumentCell = Default::default();
    let _ = document.set(openapi::build(
        ops,
        g,
        &templates,
        state.media.fetches_urls(),
    ));
    router
        .layer(axum::Extension(document))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
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
    ApiError::MethodNotAllowed
}

/// Every request but the event stream ends within `server.request_timeout`, and every error
/// leaves in the JSON envelope (one middleware for both: each layer costs every request).
async fn edge(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let res = if req.uri().path() == "/api/events" {
        next.run(req).await
    } else {
        match tokio::time::timeout(state.request_timeout, next.run(req)).await {
            Ok(res) => res,
            Err(_) => return ApiError::RequestTimeout(state.request_timeout).into_response(),
        }
    };
    envelope_errors(res).await
}

/// The error envelope on every error, also those answered in plain text by a layer or an
/// extractor (a path that is not UTF-8, a body over a limit): `{"error":{"code","message"}}`.
async fn envelope_errors(res: axum::response::Response) -> axum::response::Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        _ if status.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let body =
        serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}}))
            .unwrap_or_default();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}
