//! The `default` session's login QR code and restart button, as before sessions; every
//! session has the same under `/api/sessions/{name}`.

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
use crate::sessions::{DEFAULT, Session};

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated()
        .route(
            Method::Get,
            "/qr",
            "The QR code to scan while WhatsApp Web waits for a login (image/png with Accept: image/png).",
            qr,
        )
        .route(
            Method::Get,
            "/check/{number}",
            "Is this number on WhatsApp? Asked through the default session's browser without sending.",
            check,
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

/// `{qr, image}` (the string and a PNG data URL), or the PNG itself for `Accept: image/png`;
/// of the `default` session.
async fn qr(State(state): State<AppState>, headers: HeaderMap) -> Result<QrAnswer, ApiError> {
    let s = state.sessions.get(DEFAULT)?;
    qr_answer(&s, &headers)
}

/// A session's QR code, as JSON or PNG; 404 `no_qr` when no scan is awaited.
pub(super) fn qr_answer(s: &Session, headers: &HeaderMap) -> Result<QrAnswer, ApiError> {
    let Some(qr) = s.qr() else {
        return Err(ApiError::NotFound(
            "no_qr",
            format!(
                "no QR code is waiting for a scan (session {} is {})",
                s.name(),
                s.status().state
            ),
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

/// `GET /api/sessions/default/contacts/{number}/exists`.
async fn check(
    State(state): State<AppState>,
    axum::extract::Path(number): axum::extract::Path<String>,
) -> Result<Json<super::sessions::NumberExists>, ApiError> {
    super::sessions::check_number(&state, DEFAULT, &number).await
}

/// Restarts the `default` session's browser (same profile: no new QR unless logged out).
async fn restart(State(state): State<AppState>) -> Result<Answer<202, Restarting>, ApiError> {
    let s = state.sessions.get(DEFAULT)?;
    match s.sender() {
        Some(d) if d.restart("restart asked through the API") => {
            Ok(Answer(Restarting { restarting: true }))
        }
        _ => Err(ApiError::Conflict(
            "not_restartable",
            "this driver has no browser session to restart".into(),
        )),
    }
}
