//! The dashboard: one HTML page embedded in the binary (no CDN, no build step), served at `/`.
//! It logs in with the same accounts and uses the same API as any client.

use super::openapi::Page;
use super::routes::{ApiRouter, Method};

const PAGE: &str = include_str!("dashboard.html");

pub fn routes() -> ApiRouter {
    ApiRouter::public().route(Method::Get, "/", "The dashboard (HTML).", page)
}

async fn page() -> Page {
    Page {
        html: PAGE,
        csp: "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
    }
}
