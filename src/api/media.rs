//! `POST /api/media`: a file to send later by its id (multipart `file`, or the raw body with its
//! `Content-Type` and `?filename=`), stored once by its bytes; `GET /api/media/{id}` describes
//! one.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header;
use schemars::generate::SchemaGenerator;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::doc::{Created, DocInput};
use super::extract::{AppQuery, body_limit};
use super::openapi::Op;
use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::db::media::MediaRow;
use crate::error::ApiError;
use crate::media::MediaError;

/// Room for the multipart framing around the largest file.
const FRAMING: usize = 64 * 1024;

pub fn routes(max_bytes: usize) -> ApiRouter {
    ApiRouter::authenticated()
        .route_with(
            Method::Post,
            "/",
            "Store a file to send: multipart `file`, or the raw body with its own Content-Type (application/pdf, image/jpeg, ...) and `?filename=`. The same file again is the same media.",
            upload,
            move |r| body_limit(r, max_bytes + FRAMING),
        )
        .describe(|op, _| {
            for status in [200, 201] {
                op.link(status, "GetMedia", ("get", "/api/media/{id}"), "id", "$response.body#/mediaId");
            }
        })
        .route(Method::Get, "/{id}", "A stored file's name, type, size and sha256.", get_media)
}

/// A stored file as the API shows it.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaView {
    /// Send it with `"media": {"id": ...}`.
    media_id: String,
    /// Of the bytes, hex.
    sha256: String,
    bytes: i64,
    mime_type: String,
    filename: String,
    /// What it is sent as unless a send says otherwise.
    sends_as: crate::domain::MediaKind,
}

impl From<MediaRow> for MediaView {
    fn from(r: MediaRow) -> Self {
        MediaView {
            sends_as: crate::domain::MediaKind::for_mime(&r.mime_type),
            media_id: r.id,
            sha256: r.sha256,
            bytes: r.bytes,
            mime_type: r.mime_type,
            filename: r.filename,
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// The file's name, for a raw body (a multipart part names itself).
    #[schemars(length(min = 1, max = 200))]
    filename: Option<String>,
}

/// The file of an upload: a multipart part named `file`, or the whole body.
pub struct Upload {
    data: Vec<u8>,
    content_type: Option<String>,
    filename: Option<String>,
}

impl FromRequest<AppState> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.media.max_bytes();
        let too_large = |e: &dyn std::fmt::Display| {
            if e.to_string().to_ascii_lowercase().contains("limit") {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::bad_request("invalid_body", e.to_string())
            }
        };
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"))
        {
            let mut form = Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
            let mut upload = None;
            while let Some(field) = form.next_field().await.map_err(|e| too_large(&e))? {
                if field.name() != Some("file") || upload.is_some() {
                    return Err(ApiError::Validation(
                        "the form takes one part, named `file`".into(),
                    ));
                }
                let content_type = field.content_type().map(str::to_string);
                let filename = field.file_name().map(str::to_string);
                let data = field.bytes().await.map_err(|e| too_large(&e))?;
                upload = Some(Upload {
                    data: data.to_vec(),
                    content_type,
                    filename,
                });
            }
            return upload
                .ok_or_else(|| ApiError::Validation("the form has no part named `file`".into()));
        }
        let data = super::extract::body_bytes(req, state, limit).await?;
        Ok(Upload {
            data: data.to_vec(),
            content_type,
            filename: None,
        })
    }
}

impl DocInput for Upload {
    fn document(op: &mut Op, _g: &mut SchemaGenerator) {
        op.body_content = Some(json!({
            "multipart/form-data": { "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": false,
                "properties": { "file": { "type": "string", "format": "binary", "minLength": 1 } }
            }},
            "application/octet-stream": { "schema": { "type": "string", "format": "binary", "minLength": 1 } }
        }));
    }
}

/// A refusal of a file, with its status: 413 too large, 415 a type not taken, 422 the rest.
pub(super) fn media_error(e: MediaError) -> ApiError {
    let message = e.to_string();
    match e {
        MediaError::TooLarge { max } => ApiError::PayloadTooLarge(max),
        MediaError::TypeNotAllowed(_) => ApiError::UnsupportedMediaType(message),
        MediaError::Empty | MediaError::TypeMismatch(_) => {
            ApiError::Unprocessable("invalid_media", message)
        }
        MediaError::UrlFetchOff | MediaError::UrlRefused(_) => {
            ApiError::Unprocessable("url_refused", message)
        }
        MediaError::FetchFailed(_) => ApiError::Unprocessable("url_fetch_failed", message),
        MediaError::Db(e) => e.into(),
    }
}

async fn upload(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<UploadQuery>,
    file: Upload,
) -> Result<Created<MediaView>, ApiError> {
    if let Some(f) = &q.filename
        && !(1..=200).contains(&f.chars().count())
    {
        return Err(ApiError::Validation(
            "filename must be 1 to 200 characters".into(),
        ));
    }
    let filename = file.filename.or(q.filename);
    let prepared = state
        .media
        .prepare(file.data, file.content_type.as_deref(), filename.as_deref())
        .map_err(media_error)?;
    let now = state.queue.clock().now_ms();
    let (row, created) = state
        .media
        .store(&state.db, prepared, now)
        .await
        .map_err(media_error)?;
    Ok(Created {
        body: row.into(),
        created,
    })
}

async fn get_media(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MediaView>, ApiError> {
    crate::db::media::get(&state.db.read, &id)
        .await?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::NotFound("media_not_found", format!("no media {id:?}")))
}
