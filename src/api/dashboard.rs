//! The dashboard: one HTML page embedded in the binary (no CDN, no build step), served at `/`.
//! It logs in with the same accounts and uses the same API as any client.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::AppState;

const PAGE: &str = include_str!("dashboard.html");

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(page))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}

pub(super) fn docs(_g: &mut schemars::generate::SchemaGenerator) -> Vec<super::openapi::Op> {
    use super::openapi::Op;
    vec![Op::new("get", "/", "The dashboard (HTML).").public().raw(
        200,
        "text/html",
        "the dashboard page",
    )]
}
