//! `/api/auth`: login, refresh (with rotation), logout.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::response::NoContent;
use serde::Deserialize;

use super::extract::AppJson;
use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::auth::{self, RefreshError, TokenPair, password};
use crate::db::users;
use crate::error::ApiError;

pub fn routes() -> ApiRouter {
    ApiRouter::public()
        .route(
            Method::Post,
            "/login",
            "Log in: an access token (JWT) and a refresh token.",
            login,
        )
        .route(
            Method::Post,
            "/refresh",
            "Trade a refresh token for a new pair (rotation; reuse revokes the family).",
            refresh,
        )
        .route(
            Method::Post,
            "/logout",
            "Revoke a refresh token and the ones rotated from it.",
            logout,
        )
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    AppJson(req): AppJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let client = client.ip().to_string();
    let email = req.email.trim().to_string();
    if email.is_empty() || email.len() > 254 || req.password.len() > 1024 {
        return Err(ApiError::InvalidCredentials);
    }
    // Counted before the password is checked, so parallel attempts cannot outrun the limit.
    let attempt = match state.throttle.begin(&email, &client, Instant::now()) {
        Ok(a) => a,
        Err(retry_after_secs) => {
            tracing::warn!(client = %client, "🔒 login throttled");
            return Err(ApiError::RateLimited { retry_after_secs });
        }
    };
    let user = users::by_email(&state.db.read, &email).await?;
    let ok = match password::verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await
    {
        Ok(ok) => ok,
        Err(busy) => {
            attempt.withdrawn();
            return Err(ApiError::Overloaded(busy.to_string()));
        }
    };
    let user = match user {
        Some(u) if ok => u,
        _ => {
            tracing::warn!(client = %client, "🔒 failed login");
            return Err(ApiError::InvalidCredentials);
        }
    };
    attempt.succeeded();
    let pair = auth::issue(&state.db.writer, &state.keys, user.id, &user.email).await?;
    tracing::info!(user.id = user.id, "🔑 login");
    Ok(Json(pair))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    match auth::refresh(&state.db.writer, &state.keys, &req.refresh_token).await {
        Ok(pair) => Ok(Json(pair)),
        Err(RefreshError::Db(e)) => Err(e.into()),
        Err(e @ RefreshError::Reused) => {
            tracing::warn!(
                "🔒 a spent refresh token was presented again; the user's sessions are revoked"
            );
            Err(ApiError::Unauthorized(e.to_string()))
        }
        Err(e @ RefreshError::Invalid) => Err(ApiError::Unauthorized(e.to_string())),
    }
}

async fn logout(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<NoContent, ApiError> {
    auth::logout(&state.db.writer, &req.refresh_token).await?;
    Ok(NoContent)
}
