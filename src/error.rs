//! One error type for the HTTP API and one JSON envelope: `{"error":{"code","message"}}`.
//!
//! Handlers return `ApiError`; 500s are logged once here and never leak internals to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The body of every error response.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// A stable code, e.g. `invalid_number`, `unauthorized`, `plugin_failed`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorEnvelope {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Validation(String),
    /// A request that is well-formed but cannot be carried out, with its own code (422).
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{1}")]
    NotFound(&'static str, String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("this route does not take that method; see the Allow header")]
    MethodNotAllowed,
    #[error("the request took longer than request_timeout ({0:?})")]
    RequestTimeout(std::time::Duration),
    #[error("request body too large: at most {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many failed attempts; try again in {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{1}")]
    Unavailable(&'static str, String),
    /// Too much at once: come back in a second (`Retry-After: 1`).
    #[error("{0}")]
    Overloaded(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) | ApiError::Unprocessable(..) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::InvalidCredentials | ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(..) => StatusCode::NOT_FOUND,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(..) | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Validation(_) => "validation_failed",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(code, _)
            | ApiError::Conflict(code, _)
            | ApiError::Unprocessable(code, _)
            | ApiError::Unavailable(code, _) => code,
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Unavailable(_) => ApiError::Unavailable(
                "database_unavailable",
                "the database cannot be reached now; nothing was written, try again".into(),
            ),
            e => ApiError::Internal(e.into()),
        }
    }
}

impl From<crate::sessions::SessionError> for ApiError {
    fn from(e: crate::sessions::SessionError) -> Self {
        use crate::sessions::SessionError as E;
        let message = e.to_string();
        match e {
            E::NotFound(_) => ApiError::NotFound("session_not_found", message),
            E::Exists(_) => ApiError::Conflict("session_exists", message),
            E::Capacity { .. } => ApiError::Conflict("capacity_reached", message),
            E::Invalid(_) => ApiError::Validation(message),
            E::Stopped(_) => ApiError::Conflict("session_stopped", message),
            E::NotReady { .. } => ApiError::Unavailable("session_not_ready", message),
            E::Driver { .. } => ApiError::Conflict("driver_refused", message),
            E::Db(d) => d.into(),
            E::Io(m) => ApiError::Internal(anyhow::anyhow!(m)),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::db::DbError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "request failed with an internal error");
        }
        let status = self.status();
        let body = ErrorEnvelope::new(self.code(), self.to_string());
        let mut resp = (status, axum::Json(body)).into_response();
        match &self {
            ApiError::RateLimited { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Overloaded(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}
