//! The WebDriver driver: WhatsApp Web in Chromium, driven through ChromeDriver like a person
//! would, and kept alive on its own.
//!
//! One task owns the browser. It serialises every browser action (sends and health checks), so
//! two chats are never typed into at once. It watches the page's state (QR, loading, connected,
//! conflict, logged out), and it restarts the browser with the same profile (no new QR) when
//! the page stops proving healthy for `session_timeout`, when the session dies, or when the
//! browser grows past `memory_limit`.

mod acks;
mod browser;
mod bubbles;
mod cause;
mod conflict;
mod incoming;
mod link;
mod media;
mod page;
mod selectors;
mod send;
mod session;
mod supervisor;
mod typing;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    MessageSender, Outbound, Receipt, SendError, SendFuture, SessionState, WhatsAppStatus,
};
use crate::config::WebDriverConfig;
use browser::Family;

pub use browser::{profile_processes, pss_bytes, rss_bytes, uploads_dir, which};
pub use cause::RestartCause;
pub use selectors::Selectors;

struct Current {
    state: SessionState,
    detail: String,
    since_ms: i64,
    qr: Option<String>,
    /// The account's own number (digits), once the page says.
    me: Option<String>,
}

struct Shared {
    current: Mutex<Current>,
    changed: watch::Sender<u64>,
    causes: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// "Open in another window" screens, by what was done.
    conflicts: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Whether this node holds the session's lease now.
    holds: crate::whatsapp::Holds,
    /// The running browser's processes, for [`MessageSender::kill`].
    family: Mutex<Option<Family>>,
    /// Receipts the page showed, for the queue.
    acks: tokio::sync::broadcast::Sender<crate::whatsapp::AckSeen>,
    /// Messages the page showed arriving, for the sessions layer.
    incoming: tokio::sync::broadcast::Sender<crate::whatsapp::Incoming>,
}

impl Shared {
    fn new(holds: crate::whatsapp::Holds) -> Shared {
        let (changed, _) = watch::channel(0);
        Shared {
            current: Mutex::new(Current {
                state: SessionState::Starting,
                detail: "starting the browser".into(),
                since_ms: crate::time::now_ms(),
                qr: None,
                me: None,
            }),
            changed,
            causes: Default::default(),
            conflicts: Default::default(),
            holds,
            family: Mutex::new(None),
            acks: tokio::sync::broadcast::channel(1024).0,
            incoming: tokio::sync::broadcast::channel(1024).0,
        }
    }

    fn count_restart(&self, label: &'static str) {
        *self
            .causes
            .lock()
            .expect("causes lock")
            .entry(label)
            .or_default() += 1;
    }

    fn count_conflict(&self, action: crate::whatsapp::ConflictAction) {
        *self
            .conflicts
            .lock()
            .expect("conflicts lock")
            .entry(action.as_str())
            .or_default() += 1;
    }

    fn set_family(&self, family: Option<Family>) {
        *self.family.lock().expect("family lock") = family;
    }

    fn set(&self, state: SessionState, detail: impl Into<String>) {
        let detail = detail.into();
        let mut c = self.current.lock().expect("state lock");
        if c.state == state && c.detail == detail {
            return;
        }
        if c.state != state {
            c.since_ms = crate::time::now_ms();
            tracing::info!(
                state = state.as_str(),
                "📱 WhatsApp: {} ({detail})",
                state.as_str()
            );
        }
        c.state = state;
        c.detail = detail;
        if state == SessionState::Connected {
            c.qr = None;
        }
        drop(c);
        self.changed.send_modify(|n| *n += 1);
    }

    fn state(&self) -> SessionState {
        self.current.lock().expect("state lock").state
    }

    /// The account's id as the page keeps it (`"6281234567890:12@c.us"`): its digits.
    fn set_me(&self, raw: &str) {
        let digits: String = raw
            .trim_matches('"')
            .split([':', '@'])
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if digits.is_empty() {
            return;
        }
        let mut c = self.current.lock().expect("state lock");
        if c.me.as_deref() != Some(digits.as_str()) {
            tracing::info!(me = %crate::domain::mask_number(&digits), "📱 Logged in as {}", crate::domain::mask_number(&digits));
            c.me = Some(digits);
        }
    }

    fn set_qr(&self, qr: Option<String>) {
        self.current.lock().expect("state lock").qr = qr;
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Where the session task answers a command.
type Reply<T> = oneshot::Sender<Result<T, SendError>>;

enum Command {
    Send(Box<Outbound>, Reply<Receipt>),
    Restart(String),
    /// A pairing code for this phone number (digits).
    Pair(String, Reply<String>),
    /// Whether this number (digits) is on WhatsApp.
    Check(String, Reply<bool>),
    /// Log the device out from the page; false when it was not logged in.
    LogOut(Reply<bool>),
}

impl Command {
    /// Answers the command with `err` without doing it (a restart has no answer).
    fn refuse(self, err: SendError) {
        let _ = match self {
            Command::Send(_, r) => r.send(Err(err)).map_err(drop),
            Command::Pair(_, r) => r.send(Err(err)).map_err(drop),
            Command::Check(_, r) => r.send(Err(err)).map_err(drop),
            Command::LogOut(r) => r.send(Err(err)).map_err(drop),
            Command::Restart(_) => Ok(()),
        };
    }
}

pub struct WebDriver {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

impl WebDriver {
    /// Starts the supervisor task of a session; it ends (closing the browser) when `shutdown`
    /// is cancelled. Its log lines carry the session's name.
    pub fn start(
        session: &str,
        cfg: WebDriverConfig,
        profile: PathBuf,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
        holds: crate::whatsapp::Holds,
    ) -> Arc<WebDriver> {
        use tracing::Instrument as _;
        let shared = Arc::new(Shared::new(holds));
        let (commands, rx) = mpsc::channel(64);
        tracker.spawn(
            supervisor::supervise(shared.clone(), cfg, profile, rx, shutdown)
                .instrument(tracing::info_span!("session", session = %session)),
        );
        Arc::new(WebDriver { shared, commands })
    }

    fn connected(&self) -> Result<(), SendError> {
        if self.shared.state() == SessionState::Connected {
            Ok(())
        } else {
            Err(SendError::new("not-ready", "WhatsApp is not connected"))
        }
    }

    /// Hands the session task a command and waits for its answer; `what` names the answer in
    /// the error when the session ends first.
    async fn ask<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
        what: &str,
    ) -> Result<T, SendError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .await
            .map_err(|_| SendError::new("session-closed", "the browser driver has stopped"))?;
        rx.await.unwrap_or_else(|_| {
            Err(SendError::new(
                "session-closed",
                format!("the browser session ended before {what}"),
            ))
        })
    }
}

impl MessageSender for WebDriver {
    fn send<'a>(&'a self, message: &'a Outbound) -> SendFuture<'a> {
        Box::pin(async move {
            self.connected()?;
            self.ask(
                |tx| Command::Send(Box::new(message.clone()), tx),
                "the send finished",
            )
            .await
        })
    }

    fn status(&self) -> WhatsAppStatus {
        let c = self.shared.current.lock().expect("state lock");
        WhatsAppStatus {
            state: c.state,
            detail: c.detail.clone(),
            driver: "webdriver",
            since: crate::time::rfc3339(c.since_ms),
        }
    }

    fn changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        // A fresh subscription has seen the current state: it wakes on the next change.
        let mut rx = self.shared.changed.subscribe();
        Box::pin(async move {
            let _ = rx.changed().await;
        })
    }

    fn acks(&self) -> Option<tokio::sync::broadcast::Receiver<crate::whatsapp::AckSeen>> {
        Some(self.shared.acks.subscribe())
    }

    fn incoming(&self) -> Option<tokio::sync::broadcast::Receiver<crate::whatsapp::Incoming>> {
        Some(self.shared.incoming.subscribe())
    }

    fn qr(&self) -> Option<String> {
        self.shared.current.lock().expect("state lock").qr.clone()
    }

    fn me(&self) -> Option<String> {
        self.shared.current.lock().expect("state lock").me.clone()
    }

    fn check_number<'a>(
        &'a self,
        number: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, SendError>> + Send + 'a>>
    {
        Box::pin(async move {
            self.connected()?;
            self.ask(|tx| Command::Check(number.to_string(), tx), "the check")
                .await
        })
    }

    fn log_out(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, SendError>> + Send + '_>>
    {
        Box::pin(self.ask(Command::LogOut, "the logout"))
    }

    fn pairing_code<'a>(
        &'a self,
        phone: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, SendError>> + Send + 'a>>
    {
        Box::pin(self.ask(|tx| Command::Pair(phone.to_string(), tx), "the code showed"))
    }

    fn restarts_by_cause(&self) -> Vec<(&'static str, u64)> {
        let c = self.shared.causes.lock().expect("causes lock");
        c.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn conflicts(&self) -> Vec<(&'static str, u64)> {
        let c = self.shared.conflicts.lock().expect("conflicts lock");
        crate::whatsapp::ConflictAction::ALL
            .iter()
            .map(|a| (a.as_str(), c.get(a.as_str()).copied().unwrap_or(0)))
            .collect()
    }

    fn restart(&self, why: &str) -> bool {
        self.commands
            .try_send(Command::Restart(why.to_string()))
            .is_ok()
    }

    fn kill(&self) {
        if let Some(family) = self.shared.family.lock().expect("family lock").take() {
            tracing::warn!("🌍 Killing the browser: the gateway stops before its session ended");
            family.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn changed_waits_for_the_next_change_not_an_old_one() {
        let shared = Arc::new(Shared::new(Arc::new(|| true)));
        let (commands, _rx) = mpsc::channel(1);
        let wd = WebDriver {
            shared: shared.clone(),
            commands,
        };
        shared.set(SessionState::Qr, "scan");
        // The dispatcher waits on this while held: an old change must not wake it (a busy loop).
        let waited = tokio::time::timeout(Duration::from_millis(100), wd.changed()).await;
        assert!(
            waited.is_err(),
            "changed() resolved for a change before it was called"
        );
        let next = wd.changed();
        shared.set(SessionState::Connected, "ready");
        tokio::time::timeout(Duration::from_secs(1), next)
            .await
            .expect("changed() wakes on the next change");
        assert!(wd.is_ready());
    }
}
