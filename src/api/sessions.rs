//! `/api/sessions`: the WhatsApp accounts of this gateway, created, changed, started, stopped,
//! restarted, logged out and deleted at run time; each one's QR code and pairing code.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::doc::Answer;
use super::extract::{AppJson, OptionalJson};
use super::routes::{ApiRouter, Method};
use super::whatsapp::{QrAnswer, qr_answer};
use crate::app::AppState;
use crate::config::{ByteSize, DriverKind, PacingOverrides, QueueConfig};
use crate::error::ApiError;
use crate::sessions::{NewSession, SessionChange, SessionView};

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated()
        .route(Method::Get, "/", "Every session, with its state and queue figures.", list)
        .route(
            Method::Post,
            "/",
            "Create a session and start it (201); 409 session_exists or capacity_reached.",
            create,
        )
        .route(Method::Get, "/{name}", "One session.", get)
        .route(
            Method::Patch,
            "/{name}",
            "Change a session's settings at run time; a browser setting restarts its browser only.",
            update,
        )
        .route(
            Method::Delete,
            "/{name}",
            "Delete a session: stop it, delete its profile, fail its waiting jobs (session_deleted).",
            delete,
        )
        .route(
            Method::Post,
            "/{name}/start",
            "Start a stopped session (kept started across restarts).",
            start,
        )
        .route(
            Method::Post,
            "/{name}/stop",
            "Stop a session (kept stopped across restarts); its jobs wait.",
            stop,
        )
        .route(
            Method::Post,
            "/{name}/restart",
            "Restart a session's browser with the same profile (no new scan).",
            restart,
        )
        .route(
            Method::Post,
            "/{name}/logout",
            "Unlink the device: stop, delete the profile; the next start shows a new QR.",
            logout,
        )
        .route(
            Method::Get,
            "/{name}/qr",
            "The session's QR code while a scan is awaited (image/png with Accept: image/png).",
            qr,
        )
        .route(
            Method::Get,
            "/{name}/contacts/{number}/exists",
            "Is this number on WhatsApp? Asked through the session's browser without sending (cached for whatsapp.number_check_ttl).",
            contact_exists,
        )
        .route(
            Method::Post,
            "/{name}/pairing-code",
            "Log in without a QR: WhatsApp Web's 8-character code to type on the phone.",
            pairing_code,
        )
}

#[derive(Serialize, schemars::JsonSchema)]
struct SessionList {
    sessions: Vec<SessionView>,
}

async fn view(state: &AppState, s: &crate::sessions::Session) -> SessionView {
    SessionView::of(s, &state.queue).await
}

async fn list(State(state): State<AppState>) -> Json<SessionList> {
    let mut sessions = Vec::new();
    for s in state.sessions.list() {
        sessions.push(view(&state, &s).await);
    }
    Json(SessionList { sessions })
}

/// Settings a session may override; absent fields keep gateway.toml's.
#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = super::openapi::absent_not_null)]
struct Settings {
    /// Sends at once, 1 to 256; default 1 for webdriver (a browser types one message at a
    /// time), the queue's concurrency for the sandbox.
    #[schemars(range(min = 1, max = QueueConfig::MAX_CONCURRENCY))]
    #[serde(default, deserialize_with = "crate::config::whole_number")]
    concurrency: Option<u32>,
    /// Hold this session's jobs (they wait).
    #[serde(default, deserialize_with = "super::extract::non_null")]
    paused: Option<bool>,
    /// Extra browser flags, e.g. `--proxy-server=socks5://10.0.0.2:1080`: up to 32, each
    /// starting with `--`.
    #[schemars(length(max = 32))]
    #[schemars(extend("items" = {"type": "string", "pattern": "^--[^\\u0000-\\u001f\\u007f]*$", "maxLength": 1024}))]
    #[serde(default, deserialize_with = "super::extract::non_null")]
    browser_args: Option<Vec<String>>,
    /// Restart the browser between sends past this (`512MiB`, `1GiB`); default
    /// `[whatsapp.webdriver] memory_limit`.
    #[serde(default, deserialize_with = "super::extract::non_null")]
    memory_limit: Option<ByteSize>,
    /// The session's own pacing rules over `[pacing]`; they replace the ones it had (`{}`
    /// clears them). See "Keeping your number safe" in the README.
    #[serde(default, deserialize_with = "super::extract::object")]
    pacing: Option<PacingOverrides>,
}

impl Settings {
    fn check(self) -> Result<SessionChange, ApiError> {
        if let Some(c) = self.concurrency {
            QueueConfig::check_concurrency(c).map_err(ApiError::Validation)?;
        }
        let bad_flag = |a: &String| {
            !a.starts_with("--")
                || a.chars().count() > 1024
                || a.chars().any(|c| c.is_ascii_control())
        };
        if let Some(args) = &self.browser_args
            && (args.len() > 32 || args.iter().any(bad_flag))
        {
            return Err(ApiError::Validation(
                "browserArgs: at most 32 flags, each starting with -- and up to 1024 characters, without control characters"
                    .into(),
            ));
        }
        if self.memory_limit.is_some_and(|m| m.0 == 0) {
            return Err(ApiError::Validation(
                "memoryLimit must be more than 0".into(),
            ));
        }
        Ok(SessionChange {
            concurrency: self.concurrency,
            paused: self.paused,
            browser_args: self.browser_args,
            memory_limit: self.memory_limit,
            pacing: self.pacing,
        })
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = super::openapi::absent_not_null)]
struct CreateSession {
    /// `^[a-z0-9][a-z0-9_-]{0,31}$`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$"))]
    name: String,
    /// Default: `[whatsapp] driver`.
    #[serde(default, deserialize_with = "super::extract::non_null")]
    driver: Option<DriverKind>,
    /// Start it now (default true).
    #[serde(default, deserialize_with = "super::extract::non_null")]
    start: Option<bool>,
    #[serde(flatten)]
    settings: Settings,
}

async fn create(
    State(state): State<AppState>,
    AppJson(req): AppJson<CreateSession>,
) -> Result<Answer<201, SessionView>, ApiError> {
    let settings = req.settings.check()?;
    let s = state
        .sessions
        .create(NewSession {
            name: req.name,
            driver: req.driver.unwrap_or(state.sessions.default_driver()),
            start: req.start.unwrap_or(true),
            settings,
        })
        .await?;
    Ok(Answer(view(&state, &s).await))
}

async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let s = state.sessions.get(&name)?;
    Ok(Json(view(&state, &s).await))
}

async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(req): OptionalJson<Settings>,
) -> Result<Json<SessionView>, ApiError> {
    state.sessions.get(&name)?;
    let s = state.sessions.update(&name, req.check()?).await?;
    Ok(Json(view(&state, &s).await))
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    deleted: String,
    /// Waiting jobs that ended failed with `session_deleted`.
    failed_jobs: u64,
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let failed_jobs = state.sessions.delete(&name).await?;
    Ok(Json(Deleted {
        deleted: name,
        failed_jobs,
    }))
}

async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let s = state.sessions.start(&name).await?;
    Ok(Json(view(&state, &s).await))
}

async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let s = state.sessions.stop(&name).await?;
    Ok(Json(view(&state, &s).await))
}

async fn restart(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Answer<202, SessionView>, ApiError> {
    let s = state.sessions.restart(&name).await?;
    Ok(Answer(view(&state, &s).await))
}

async fn logout(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let s = state.sessions.logout(&name).await?;
    Ok(Json(view(&state, &s).await))
}

async fn qr(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<QrAnswer, ApiError> {
    let s = state.sessions.get(&name)?;
    qr_answer(&s, &headers)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PairingRequest {
    /// The account's number in international form, 8 to 15 digits (`6281234567890`), with
    /// an optional `+` and single spaces, dashes or parentheses between digits
    /// (`+62 812-3456-7890`).
    #[schemars(regex(pattern = PHONE_PATTERN))]
    phone: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct PairingCode {
    /// The 8 characters to type on the phone (Linked devices → Link with phone number).
    code: String,
}

async fn pairing_code(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppJson(req): AppJson<PairingRequest>,
) -> Result<Json<PairingCode>, ApiError> {
    state.sessions.get(&name)?;
    let digits = phone_digits(&req.phone).ok_or_else(|| {
        ApiError::Validation(
            "phone must be the account's number in international form, 8 to 15 digits (6281234567890)"
                .into(),
        )
    })?;
    let code = state.sessions.pairing_code(&name, &digits).await?;
    Ok(Json(PairingCode { code }))
}

/// [`phone_digits`] as a JSON Schema pattern.
const PHONE_PATTERN: &str = r"^\+?[1-9](?:[ ()-]?[0-9]){7,14}$";

/// The digits of a phone number written as [`PHONE_PATTERN`] says, or None.
fn phone_digits(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix('+').unwrap_or(raw);
    let mut digits = String::new();
    let mut after_separator = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => {
                if digits.is_empty() && (c == '0' || after_separator) {
                    return None;
                }
                digits.push(c);
                after_separator = false;
            }
            ' ' | '(' | ')' | '-' if !digits.is_empty() && !after_separator => {
                after_separator = true
            }
            _ => return None,
        }
    }
    ((8..=15).contains(&digits.len()) && !after_separator).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::phone_digits;

    #[test]
    fn phone_numbers_are_read_as_the_documented_pattern_says() {
        let ok = |s: &str| phone_digits(s);
        assert_eq!(ok("6281234567890").as_deref(), Some("6281234567890"));
        assert_eq!(ok("+62 812-3456-7890").as_deref(), Some("6281234567890"));
        assert_eq!(
            ok("+1 (415) 555-0100").as_deref(),
            None,
            "two separators in a row"
        );
        assert_eq!(ok("+1(415)555-0100").as_deref(), Some("14155550100"));
        for bad in [
            "",
            "0812345678",
            "1234567",
            "1234567890123456",
            "62 812 ",
            "62--812345678",
            "+-62812345678",
            "62812a45678",
            "++62812345678",
        ] {
            assert_eq!(phone_digits(bad), None, "{bad}");
        }
    }
}

/// Whether a number is on WhatsApp.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct NumberExists {
    exists: bool,
    /// The chat id the number has (or would have).
    chat_id: String,
    /// RFC 3339 time the session's driver was asked.
    checked_at: String,
    /// The answer came from the cache.
    cached: bool,
}

async fn contact_exists(
    State(state): State<AppState>,
    Path((name, number)): Path<(String, String)>,
) -> Result<Json<NumberExists>, ApiError> {
    check_number(&state, &name, &number).await
}

/// A number check through a session: the number formatted as for `send-message`.
pub(super) async fn check_number(
    state: &AppState,
    session: &str,
    raw: &str,
) -> Result<Json<NumberExists>, ApiError> {
    state.sessions.get(session)?;
    let number = super::send::format_number(state, raw)?;
    let check = state
        .sessions
        .check_number(session, number.as_str())
        .await?;
    state
        .metrics
        .number_check(session, check.exists, check.cached);
    Ok(Json(NumberExists {
        exists: check.exists,
        chat_id: number.chat_id(),
        checked_at: crate::time::rfc3339(check.checked_at),
        cached: check.cached,
    }))
}
