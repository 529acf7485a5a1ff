//! The WhatsApp session: the login QR code to scan, and a restart button.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use schemars::generate::SchemaGenerator;

use super::doc::{Answer, DocOutput};
use super::openapi::Op;
use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::error::ApiError;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated()
        .route(
            Method::Get,
            "/qr",
            "The QR code to scan while WhatsApp Web waits for a login (image/png with Accept: image/png).",
            qr,
        )
        .route(
            Method::Post,
            "/restart",
            "Restart the browser session (same profile: no new scan).",
            restart,
        )
}

/// The QR code as JSON.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct QrCode {
    /// The string to encode (WhatsApp Web's `data-ref`).
    qr: String,
    /// A PNG data URL of the code.
    image: String,
}

/// [`QrCode`], or the PNG itself.
pub enum QrAnswer {
    Json(QrCode),
    Png(Vec<u8>),
}

impl IntoResponse for QrAnswer {
    fn into_response(self) -> Response {
        match self {
            QrAnswer::Json(q) => Json(q).into_response(),
            QrAnswer::Png(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        }
    }
}

impl DocOutput for QrAnswer {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.json::<QrCode>(
            g,
            200,
            "the code, as a string and a PNG data URL (or image/png)",
        );
    }
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Restarting {
    restarting: bool,
}

/// `{qr, image}` (the string and a PNG data URL), or the PNG itself for `Accept: image/png`.
async fn qr(State(state): State<AppState>, headers: HeaderMap) -> Result<QrAnswer, ApiError> {
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
        return Ok(QrAnswer::Png(png));
    }
    let image = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    Ok(QrAnswer::Json(QrCode { qr, image }))
}

/// Restarts the browser session (same profile: no new QR unless logged out).
async fn restart(State(state): State<AppState>) -> Result<Answer<202, Restarting>, ApiError> {
    if state
        .queue
        .sender()
        .restart("restart asked through the API")
    {
        Ok(Answer(Restarting { restarting: true }))
    } else {
        Err(ApiError::Conflict(
            "not_restartable",
            "this driver has no browser session to restart".into(),
        ))
    }
}
