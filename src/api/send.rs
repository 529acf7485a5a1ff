//! `send-message`: validate, format and store a job durably, then answer at once. The API
//! never sends; the queue does.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaGenerator;
use serde::{Deserialize, Serialize};

use super::doc::DocOutput;
use super::extract::AppJson;
use super::openapi::Op;
use crate::app::AppState;
use crate::domain::{MediaKind, PhoneNumber, Priority};
use crate::error::ApiError;
use crate::hooks::{HookError, Outgoing};
use crate::queue::{JobState, NewJob};

/// What `send-message` answers: 202 when the job was queued now, 200 when the same
/// `messageId` was queued before (nothing more is sent).
pub struct Queued {
    body: SendMessageResponse,
    created: bool,
}

impl IntoResponse for Queued {
    fn into_response(self) -> Response {
        let status = if self.created {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        (status, Json(self.body)).into_response()
    }
}

impl DocOutput for Queued {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.json::<SendMessageResponse>(g, 202, "queued (stored durably)");
        op.json::<SendMessageResponse>(
            g,
            200,
            "the same messageId was queued before; nothing more is sent",
        );
    }
}

pub use crate::domain::MAX_MESSAGE_CHARS;
/// What `send-message` takes: the longest valid text even when every character is written as
/// a `\uXXXX` surrogate pair (12 bytes, as JSON encoders that escape non-ASCII do), plus room
/// for the other fields and template variables. `server.max_body_bytes` does not apply here.
pub const SEND_BODY_LIMIT: usize = MAX_MESSAGE_CHARS * 12 + 64 * 1024;
const MAX_MESSAGE_ID_LEN: usize = 128;

/// A character that is neither whitespace nor a control character: a text or an id needs one.
/// (JSON Schema patterns are ECMA-262 regular expressions.)
const VISIBLE: &str = r"[^\s\x00-\x1f\x7f-\x9f]";

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
/// `message`, or `template` with `variables`, or `media` (then the text, if any, is its
/// caption).
#[schemars(extend("oneOf" = [
    {"required": ["message"], "not": {"required": ["template"]},
     "properties": {"variables": {"maxProperties": 0}}},
    {"required": ["template"], "not": {"required": ["message"]}},
    {"required": ["media"], "not": {"anyOf": [{"required": ["message"]}, {"required": ["template"]}]},
     "properties": {"variables": {"maxProperties": 0}}}
]))]
#[schemars(transform = super::openapi::absent_not_null)]
pub(super) struct SendMessageRequest {
    /// The recipient, in any common form (`0812-3456-7890`, `+62 812 3456 7890`); the
    /// number-format hook turns it into international digits, or refuses it (400
    /// `invalid_number`).
    #[schemars(example = "6281234567890", example = "0812-3456-7890")]
    number: String,
    /// The text: up to 65,536 characters, at least one of them visible.
    #[schemars(length(min = 1, max = MAX_MESSAGE_CHARS), regex(pattern = VISIBLE))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    message: Option<String>,
    /// A template name from gateway.toml's `[templates]`, rendered with `variables`.
    #[serde(default, deserialize_with = "super::extract::non_null")]
    template: Option<String>,
    /// Values for the template's placeholders.
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    /// Default `normal` (or what the priority hook says).
    #[schemars(extend("enum" = ["high", "normal", "low"]))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    priority: Option<String>,
    /// Your idempotency key (1 to 128 characters, no control characters, not only
    /// whitespace): the same key again answers with the first job.
    #[schemars(length(min = 1, max = MAX_MESSAGE_ID_LEN), regex(pattern = MESSAGE_ID_PATTERN))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    message_id: Option<String>,
    /// The WhatsApp account that sends it (default `default`); 404 `session_not_found` for an
    /// unknown one. A stopped or disconnected session still queues: the job waits for it.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$"))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    session: Option<String>,
    /// A file to send, with the text (if any) as its caption.
    #[serde(default, deserialize_with = "super::extract::non_null")]
    media: Option<MediaRequest>,
    /// Send even if the number is on the session's opt-out list (else the job fails
    /// `opted-out`). For messages the recipient asked for, e.g. the confirmation of a STOP.
    #[serde(default, deserialize_with = "super::extract::non_null")]
    ignore_opt_out: Option<bool>,
}

/// A file: one stored with `POST /api/media` (`id`), or, where `[media] url_fetch` is on, one
/// the gateway fetches from `url` now (so the job never depends on the URL later).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::openapi::absent_not_null)]
pub(super) struct MediaRequest {
    /// A `mediaId` from `POST /api/media`.
    #[schemars(regex(pattern = r"^med_[0-9a-f]{32}$"))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    id: Option<String>,
    /// An https URL to fetch the file from (see `[media]` in gateway.toml for what is allowed).
    #[schemars(length(min = 1, max = 2048))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    url: Option<String>,
    /// What the file is sent as; by default from its type (photos and videos as themselves,
    /// audio as audio, anything else as a document). Audio takes no caption.
    #[serde(rename = "as", default, deserialize_with = "super::extract::non_null")]
    kind: Option<MediaKind>,
}

const MESSAGE_ID_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// A template variable's value.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Variable {
    Text(String),
    Number(serde_json::Number),
    Flag(bool),
}

impl Variable {
    fn into_text(self) -> String {
        match self {
            Variable::Text(s) => s,
            Variable::Number(n) => n.to_string(),
            Variable::Flag(b) => b.to_string(),
        }
    }
}

/// Has a character that is neither whitespace nor a control character ([`VISIBLE`]).
fn has_visible(s: &str) -> bool {
    s.chars().any(|c| !c.is_whitespace() && !c.is_control())
}

/// Why a text cannot be sent, if it cannot: 1 to 65,536 characters, one of them visible.
fn text_problem(text: &str) -> Option<String> {
    let chars = text.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        Some(format!(
            "message has {chars} characters; WhatsApp takes at most {MAX_MESSAGE_CHARS}"
        ))
    } else if !has_visible(text) {
        Some("message must have a visible character".into())
    } else {
        None
    }
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SendMessageResponse {
    job_id: String,
    message_id: String,
    session: String,
    chat_id: String,
    status: JobState,
    priority: &'static str,
}

fn hook_error(e: HookError, code: &'static str) -> ApiError {
    match e {
        HookError::Rejected(msg) => ApiError::bad_request(code, msg),
        HookError::Failed { plugin, reason } => {
            ApiError::Unavailable("plugin_failed", format!("plugin {plugin} failed: {reason}"))
        }
    }
}

/// A number as the client wrote it, through the number-format hook: 400 `invalid_number`
/// saying why when it is none.
pub(super) fn format_number(state: &AppState, raw: &str) -> Result<PhoneNumber, ApiError> {
    let digits = state
        .queue
        .hooks()
        .format_number(raw)
        .map_err(|e| hook_error(e, "invalid_number"))?;
    PhoneNumber::parse(&digits).map_err(|m| ApiError::bad_request("invalid_number", m))
}

pub(super) async fn send_message(
    State(state): State<AppState>,
    AppJson(req): AppJson<SendMessageRequest>,
) -> Result<Queued, ApiError> {
    let hooks = state.queue.hooks();
    let session = state
        .sessions
        .get(req.session.as_deref().unwrap_or(crate::sessions::DEFAULT))?
        .name()
        .to_string();
    let requested = req
        .priority
        .as_deref()
        .map(|p| {
            Priority::parse(p).ok_or_else(|| {
                ApiError::Validation(format!("priority must be high, normal or low, not {p:?}"))
            })
        })
        .transpose()?;
    let message_id = match req.message_id {
        Some(id) => {
            let n = id.chars().count();
            if n == 0
                || n > MAX_MESSAGE_ID_LEN
                || id.chars().any(char::is_control)
                || !has_visible(&id)
            {
                return Err(ApiError::Validation(format!(
                    "messageId must be 1 to {MAX_MESSAGE_ID_LEN} characters, without control characters, not only whitespace"
                )));
            }
            id
        }
        // Time-ordered, so the unique index grows at its end instead of at random pages.
        None => format!("msg_{}", uuid::Uuid::now_v7().simple()),
    };

    let number = format_number(&state, &req.number)?;

    let (text, template) = match (req.message, req.template) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Validation(
                "send either `message` or `template`, not both".into(),
            ));
        }
        (None, None) if req.media.is_some() => {
            if !req.variables.is_empty() {
                return Err(ApiError::Validation(
                    "`variables` go with `template`".into(),
                ));
            }
            (String::new(), None)
        }
        (None, None) => {
            return Err(ApiError::Validation(
                "missing field `message` (or `template` with `variables`, or `media`)".into(),
            ));
        }
        (Some(text), None) => {
            if !req.variables.is_empty() {
                return Err(ApiError::Validation(
                    "`variables` go with `template`, not `message`".into(),
                ));
            }
            if let Some(why) = text_problem(&text) {
                return Err(ApiError::Validation(why));
            }
            (text, None)
        }
        (None, Some(name)) => {
            let Some(source) = state.templates.get(&name) else {
                return Err(ApiError::bad_request(
                    "unknown_template",
                    format!("no template named {name:?}"),
                ));
            };
            let vars: Vec<(String, String)> = req
                .variables
                .into_iter()
                .map(|(k, v)| (k, v.into_text()))
                .collect();
            let text = hooks
                .render(source, &vars)
                .map_err(|e| hook_error(e, "template_error"))?;
            // What a template renders is the render hook's doing, not the request's: 400.
            if let Some(why) = text_problem(&text) {
                return Err(ApiError::bad_request(
                    "template_error",
                    format!("the template rendered a text that cannot be sent: {why}"),
                ));
            }
            (text, Some(name))
        }
    };

    let media = match req.media {
        Some(m) => Some(resolve_media(&state, m, &text).await?),
        None => None,
    };

    let priority = hooks
        .assign_priority(&Outgoing {
            number: number.as_str().to_string(),
            chat_id: number.chat_id(),
            text: text.clone(),
            template: template.clone(),
            requested,
            metadata: Vec::new(),
        })
        .map_err(|e| hook_error(e, "invalid_priority"))?;
    let job = NewJob {
        id: format!("job_{}", uuid::Uuid::now_v7().simple()),
        session,
        message_id,
        number: number.as_str().to_string(),
        chat_id: number.chat_id(),
        message: text,
        template,
        priority: priority.rank(),
        media,
        ignore_opt_out: req.ignore_opt_out.unwrap_or(false),
        now: state.queue.clock().now_ms(),
    };
    let (want_chat, want_text) = (job.chat_id.clone(), job.message.clone());
    let want_media = job.media.as_ref().map(|(id, _)| id.clone());
    let (row, created) = state.queue.enqueue(job).await?;
    if !created
        && (row.chat_id != want_chat || row.message != want_text || row.media_id != want_media)
    {
        return Err(ApiError::Conflict(
            "idempotency_conflict",
            format!(
                "messageId {:?} was already used for a different message (job {})",
                row.message_id, row.id
            ),
        ));
    }
    let body = SendMessageResponse {
        job_id: row.id,
        message_id: row.message_id,
        session: row.session,
        chat_id: row.chat_id,
        status: row.status,
        priority: Priority::from_rank(row.priority).as_str(),
    };
    Ok(Queued { body, created })
}

/// The file a send names, stored (fetched first, for a URL), with what it is sent as: 404
/// `media_not_found` for an unknown id, 422 for a URL refused or a file that cannot go as asked.
async fn resolve_media(
    state: &AppState,
    m: MediaRequest,
    caption: &str,
) -> Result<(String, MediaKind), ApiError> {
    let row = match (m.id, m.url) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::Validation(
                "`media` takes either `id` or `url`".into(),
            ));
        }
        (Some(id), None) => crate::db::media::get(&state.db.read, &id)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(
                    "media_not_found",
                    format!("no media {id:?}; store the file with POST /api/media first"),
                )
            })?,
        (None, Some(url)) => {
            let prepared = state
                .media
                .fetch(&url)
                .await
                .map_err(super::media::media_error)?;
            let now = state.queue.clock().now_ms();
            state
                .media
                .store(&state.db, prepared, now)
                .await
                .map_err(super::media::media_error)?
                .0
        }
    };
    let kind = m
        .kind
        .unwrap_or_else(|| MediaKind::for_mime(&row.mime_type));
    if !kind.takes(&row.mime_type) {
        return Err(ApiError::Unprocessable(
            "invalid_media",
            format!(
                "a {} file cannot be sent as {}; send it as a document",
                row.mime_type,
                kind.as_str()
            ),
        ));
    }
    if kind == MediaKind::Audio && !caption.is_empty() {
        return Err(ApiError::Validation(
            "audio takes no caption: leave `message` and `template` out".into(),
        ));
    }
    Ok((row.id, kind))
}
