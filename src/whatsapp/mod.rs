//! The seam between the queue and WhatsApp: a [`MessageSender`] delivers one message and says
//! what went wrong in a stable code; the queue decides what a failure means (via the classifier).

pub mod qr;
pub mod sandbox;
pub mod webdriver;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// A message the queue hands to a driver.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub job_id: String,
    pub message_id: String,
    pub chat_id: String,
    pub number: String,
    pub text: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// Show the recipient "typing…" this long before the text goes (pacing; zero: none).
    pub typing: std::time::Duration,
    /// A file to send; `text` is then its caption (empty: none).
    pub media: Option<Attachment>,
}

/// A file a message carries, with its bytes.
#[derive(Clone)]
pub struct Attachment {
    pub kind: crate::domain::MediaKind,
    pub filename: String,
    pub mime_type: String,
    /// Of the bytes, hex.
    pub sha256: String,
    pub data: std::sync::Arc<Vec<u8>>,
}

impl std::fmt::Debug for Attachment {
    /// The file's description, never its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("kind", &self.kind)
            .field("mime_type", &self.mime_type)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// How far a sent message got: the ticks WhatsApp shows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    /// One tick: WhatsApp's server has it.
    Sent,
    /// Two ticks: the recipient's phone has it.
    Delivered,
    /// Two blue ticks: the recipient opened the chat.
    Read,
}

impl Ack {
    pub fn as_str(self) -> &'static str {
        match self {
            Ack::Sent => "sent",
            Ack::Delivered => "delivered",
            Ack::Read => "read",
        }
    }

    pub fn parse(s: &str) -> Option<Ack> {
        [Ack::Sent, Ack::Delivered, Ack::Read]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A receipt a driver saw: in a chat, for one message (`bubble_id`) or for the chat's messages
/// up to now (its last message's ticks, which cover the earlier ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckSeen {
    pub chat_id: String,
    pub bubble_id: Option<String>,
    pub ack: Ack,
}

/// A message someone sent to the session, as the driver read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// WhatsApp's id for it (its bubble's `data-id`); what deduplicates it.
    pub message_id: String,
    pub chat_id: String,
    /// The sender's number (digits).
    pub from: String,
    /// Its text (a file's caption; empty for none).
    pub text: String,
    /// `image`, `video`, `audio`, `document` or `sticker` for a file; none for text.
    pub media_type: Option<String>,
}

/// What a driver reports back after a delivery; kept on the completed job.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// How far it got: `sent`, `delivered` or `read` (kept on the job, raised as the driver
    /// sees more ticks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Ack>,
    /// What the driver saw, for people.
    pub detail: String,
    /// The message's `data-id` in WhatsApp Web, where the page gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bubble_id: Option<String>,
    /// The message's time as WhatsApp Web shows it (`HH:MM, DD/MM/YYYY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bubble_time: Option<String>,
    /// How the driver knew the message in the chat was this job's: `position and text`,
    /// `position` or `text (look-first)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<String>,
    /// A retry found the message already in the chat and did not send it again.
    #[serde(default)]
    pub already_sent: bool,
}

/// A failed delivery: a stable code (`not-registered`, `invalid-number`, `blocked`,
/// `rate-limited`, `session-closed`, `protocol-error`, `timeout`, `not-ready`, ...) and a message
/// for people. Whether it is retried is the classifier's call, not the driver's.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SendError {
    pub code: String,
    pub message: String,
}

impl SendError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// A WhatsApp session's state, the same for every driver (the sandbox is always `connected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Starting,
    /// A scan of the QR code is awaited.
    Qr,
    Loading,
    Connected,
    /// WhatsApp is open in another window.
    Conflict,
    /// Logged out from the phone: a new QR is served.
    LoggedOut,
    Restarting,
    /// ChromeDriver or Chromium is missing.
    Unavailable,
    Failed,
    /// A pairing code was asked for: WhatsApp Web shows it until the phone confirms.
    Pairing,
    /// The session is not running (stopped through the API, or never started).
    Stopped,
}

impl SessionState {
    pub const ALL: [SessionState; 11] = [
        SessionState::Starting,
        SessionState::Qr,
        SessionState::Loading,
        SessionState::Connected,
        SessionState::Conflict,
        SessionState::LoggedOut,
        SessionState::Restarting,
        SessionState::Unavailable,
        SessionState::Failed,
        SessionState::Pairing,
        SessionState::Stopped,
    ];

    /// The state named `s` (as [`SessionState::as_str`] writes it).
    pub fn parse(s: &str) -> Option<SessionState> {
        SessionState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Qr => "qr",
            SessionState::Loading => "loading",
            SessionState::Connected => "connected",
            SessionState::Conflict => "conflict",
            SessionState::LoggedOut => "logged_out",
            SessionState::Restarting => "restarting",
            SessionState::Unavailable => "unavailable",
            SessionState::Failed => "failed",
            SessionState::Pairing => "pairing",
            SessionState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The WhatsApp side as `GET /api/whatsapp/status` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppStatus {
    pub state: SessionState,
    pub detail: String,
    pub driver: &'static str,
    /// RFC 3339 time the state began.
    pub since: String,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Receipt, SendError>> + Send + 'a>>;

pub trait MessageSender: Send + Sync + 'static {
    fn send<'a>(&'a self, message: &'a Outbound) -> SendFuture<'a>;
    fn status(&self) -> WhatsAppStatus;
    /// Jobs are claimed only while this is true; otherwise they wait without spending attempts.
    fn is_ready(&self) -> bool {
        self.status().state == SessionState::Connected
    }
    /// Resolves when readiness may have changed, so the queue can look again.
    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::pending())
    }
    /// The login QR code's string while a scan is awaited.
    fn qr(&self) -> Option<String> {
        None
    }
    /// Receipts as the driver sees them, for the queue to keep on the jobs; none from a driver
    /// that sees no receipts.
    fn acks(&self) -> Option<tokio::sync::broadcast::Receiver<AckSeen>> {
        None
    }
    /// Messages the driver reads as they arrive, for the sessions layer to keep; none from a
    /// driver that reads none.
    fn incoming(&self) -> Option<tokio::sync::broadcast::Receiver<Incoming>> {
        None
    }
    /// The account's own number (digits), once the driver knows it.
    fn me(&self) -> Option<String> {
        None
    }
    /// Whether `number` (international digits) is on WhatsApp, asked without sending anything.
    fn check_number<'a>(
        &'a self,
        _number: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, SendError>> + Send + 'a>> {
        Box::pin(async {
            Err(SendError::new(
                "not-supported",
                "this driver cannot check numbers",
            ))
        })
    }
    /// Logs the device out of the account (the phone no longer lists it); false when the
    /// driver has no device to unlink.
    fn log_out(&self) -> Pin<Box<dyn Future<Output = Result<bool, SendError>> + Send + '_>> {
        Box::pin(async { Ok(false) })
    }
    /// Asks WhatsApp Web for a pairing code for `phone` (digits): the login without a QR.
    fn pairing_code<'a>(
        &'a self,
        _phone: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<String, SendError>> + Send + 'a>> {
        Box::pin(async {
            Err(SendError::new(
                "not-supported",
                "this driver has no pairing code",
            ))
        })
    }
    /// Browser restarts by cause, for metrics.
    fn restarts_by_cause(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// WhatsApp Web's "open in another window" screens met, by what the driver did
    /// ([`ConflictAction`]), for metrics.
    fn conflicts(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Asks the driver to restart its session; false when it has none to restart.
    fn restart(&self, _why: &str) -> bool {
        false
    }
    /// Ends at once every process the driver started: the last step of a shutdown whose
    /// sends outlived the grace period.
    fn kill(&self) {}
}

/// Whether this node may use a session's number now (it holds the session's lease); the
/// sessions layer hands one to each driver it starts.
pub type Holds = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// What a driver did on WhatsApp Web's "open in another window" screen: the one sign of two
/// browsers on one number that WhatsApp itself gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictAction {
    /// It holds the session's lease: "Use here".
    TookOver,
    /// It does not hold the lease: it closed its browser.
    Closed,
    /// It holds the lease but `takeover_on_conflict = false`: it waits for a person.
    Left,
}

impl ConflictAction {
    pub const ALL: [ConflictAction; 3] = [
        ConflictAction::TookOver,
        ConflictAction::Closed,
        ConflictAction::Left,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictAction::TookOver => "took_over",
            ConflictAction::Closed => "closed",
            ConflictAction::Left => "left",
        }
    }
}

/// What a driver shows at one moment: its status, its QR code and its account.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub state: SessionState,
    pub detail: String,
    pub qr: Option<String>,
    pub me: Option<String>,
}

/// Calls `f` with what the driver shows now and again on every change, until `stop`.
pub async fn watch(
    sender: std::sync::Arc<dyn MessageSender>,
    stop: tokio_util::sync::CancellationToken,
    mut f: impl FnMut(&Seen, Option<&Seen>) + Send,
) {
    let mut last: Option<Seen> = None;
    loop {
        let changed = sender.changed();
        let s = sender.status();
        let now = Seen {
            state: s.state,
            detail: s.detail,
            qr: sender.qr(),
            me: sender.me(),
        };
        if last.as_ref() != Some(&now) {
            f(&now, last.as_ref());
            last = Some(now);
        }
        tokio::select! {
            _ = changed => {}
            _ = stop.cancelled() => return,
        }
    }
}
