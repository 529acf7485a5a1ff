//! The WhatsApp session: the login QR code to scan, and a restart button.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/qr", get(qr))
        .route("/restart", post(restart))
}

/// `{qr, image}` (the string and a PNG data URL), or the PNG itself for `Accept: image/png`.
async fn qr(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let sender = state.queue.sender();
    let Some(qr) = sender.qr() else {
        let s = sender.status();
        return Err(ApiError::NotFound(
            "no_qr",
            format!("no QR code is waiting for a scan (WhatsApp is {})", s.state),
        ));
    };
    let png = crate::whatsapp::qr::png(&qr).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("the QR string does not fit in a QR code"))
    })?;
    let wants_png = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("image/png"));
    if wants_png {
        return Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response());
    }
    let image = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    Ok(Json(json!({ "qr": qr, "image": image })).into_response())
}

/// Restarts the browser session (same profile: no new QR unless logged out).
async fn restart(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state
        .queue
        .sender()
        .restart("restart asked through the API")
    {
        Ok((StatusCode::ACCEPTED, Json(json!({ "restarting": true }))).into_response())
    } else {
        Err(ApiError::Conflict(
            "not_restartable",
            "this driver has no browser session to restart".into(),
        ))
    }
}

/// `GET /api/whatsapp/qr` as JSON.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct QrDoc {
    /// The string to encode (WhatsApp Web's `data-ref`).
    qr: String,
    /// A PNG data URL of the code.
    image: String,
}

#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct RestartDoc {
    restarting: bool,
}

pub(super) fn docs(g: &mut schemars::generate::SchemaGenerator) -> Vec<super::openapi::Op> {
    use super::openapi::Op;
    vec![
        Op::new("get", "/api/whatsapp/qr", "The QR code to scan while WhatsApp Web waits for a login (image/png with Accept: image/png).")
            .ok::<QrDoc>(g, 200, "the code, as a string and a PNG data URL"),
        Op::new("post", "/api/whatsapp/restart", "Restart the browser session (same profile: no new scan).")
            .ok::<RestartDoc>(g, 202, "restarting"),
    ]
}
