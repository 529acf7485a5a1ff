//! Extractors that answer in our error envelope: JSON bodies, query strings and bearer tokens.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::auth::Claims;
use crate::error::ApiError;

/// `Json<T>` whose rejections are `ApiError`s: 400 bad JSON, 422 wrong fields or not an
/// object, 413 too large. Every body this API takes is a JSON object.
pub struct AppJson<T>(pub T);

/// The body limit a route set with [`body_limit`], for the 413 message.
#[derive(Clone, Copy)]
struct BodyLimit(usize);

/// A route's own body limit, instead of `server.max_body_bytes`.
pub fn body_limit<S: Clone + Send + Sync + 'static>(
    route: axum::routing::MethodRouter<S>,
    bytes: usize,
) -> axum::routing::MethodRouter<S> {
    route
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(bytes))
        .layer::<_, std::convert::Infallible>(axum::Extension(BodyLimit(bytes)))
}

/// The whole body, within the route's body limit (`limit`, for the 413's message).
pub async fn body_bytes(
    req: Request,
    state: &AppState,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::bad_request("invalid_body", r.body_text())
            }
        })
}

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(state.max_body_bytes, |l| l.0);
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == "application"
                    && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        let bytes = body_bytes(req, state, limit).await?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            None => {
                return Err(ApiError::bad_request(
                    "invalid_json",
                    "the request body is empty; send a JSON object",
                ));
            }
            Some(_) => {
                return Err(ApiError::Validation(
                    "the request body must be a JSON object".into(),
                ));
            }
        }
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(v)| AppJson(v))
            .map_err(|r| json_rejection(r, limit))
    }
}

/// A JSON object body that may be left out (empty): then `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v == "0")
            || (!req
                .headers()
                .contains_key(axum::http::header::CONTENT_LENGTH)
                && !req
                    .headers()
                    .contains_key(axum::http::header::TRANSFER_ENCODING));
        if empty {
            return Ok(OptionalJson(T::default()));
        }
        AppJson::<T>::from_request(req, state)
            .await
            .map(|AppJson(v)| OptionalJson(v))
    }
}

/// `Query<T>` whose rejections are `ApiError`s (400 `invalid_query`). A parameter given with
/// an empty value (`?limit=`) counts as not given, on every route.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let given: Vec<(String, String)> =
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .map_err(|e| {
                    ApiError::bad_request("invalid_query", format!("bad query string: {e}"))
                })?
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
        let again = serde_urlencoded::to_string(&given).unwrap_or_default();
        serde_urlencoded::from_str::<T>(&again)
            .map(AppQuery)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))
    }
}

fn json_rejection(r: JsonRejection, limit: usize) -> ApiError {
    match r {
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::Validation(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".into(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(limit)
        }
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// The caller, proven by `Authorization: Bearer <access token>`.
pub struct AuthUser(pub Claims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization: Bearer <accessToken> header".into())
            })?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization header must be `Bearer <accessToken>`".into())
            })?;
        state
            .keys
            .verify_access(token)
            .map(AuthUser)
            .map_err(ApiError::Unauthorized)
    }
}

/// An optional field holding a JSON object (a struct), refusing what serde would also take for
/// one (an array of its fields in order) and `null`. Use with
/// `#[serde(default, deserialize_with = "…")]`.
pub fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::Deserialize as _;
    match serde_json::Value::deserialize(d)? {
        v @ serde_json::Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("expected an object")),
    }
}

/// An optional field that may be left out but not sent as `null` (the document says so too,
/// see `openapi::absent_not_null`). Use with `#[serde(default, deserialize_with = "…")]`.
pub fn non_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}
