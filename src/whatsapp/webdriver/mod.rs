//! The WebDriver driver: WhatsApp Web in Chromium, driven through ChromeDriver like a person
//! would, and kept alive on its own.
//!
//! One task owns the browser. It serialises every browser action (sends and health checks), so
//! two chats are never typed into at once. It watches the page's state (QR, loading, connected,
//! conflict, logged out), and it restarts the browser with the same profile (no new QR) when
//! the page stops proving healthy for `session_timeout`, when the session dies, or when the
//! browser grows past `memory_limit`.

mod browser;
mod page;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{MessageSender, Outbound, Receipt, SendError, SendFuture, WhatsAppStatus};
use crate::config::WebDriverConfig;
use browser::{Browser, LaunchError};

pub use browser::{profile_processes, pss_bytes, rss_bytes, which};

/// The session's state, as `GET /api/whatsapp/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Qr,
    Loading,
    Connected,
    Conflict,
    LoggedOut,
    Restarting,
    Unavailable,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Qr => "qr",
            State::Loading => "loading",
            State::Connected => "connected",
            State::Conflict => "conflict",
            State::LoggedOut => "logged_out",
            State::Restarting => "restarting",
            State::Unavailable => "unavailable",
            State::Failed => "failed",
        }
    }
}

struct Current {
    state: State,
    detail: String,
    since_ms: i64,
    qr: Option<String>,
}

struct Shared {
    current: Mutex<Current>,
    changed: watch::Sender<u64>,
    causes: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// A restart cause as a metric label.
fn cause_label(cause: &str) -> &'static str {
    if cause.contains("session_timeout") {
        "unresponsive"
    } else if cause.contains("session is gone") || cause.contains("session closed") {
        "session_gone"
    } else if cause.contains("memory_limit") {
        "memory"
    } else if cause.contains("ready_timeout") || cause.contains("cannot open") {
        "not_ready"
    } else if cause.contains("through the API") {
        "requested"
    } else {
        "other"
    }
}

impl Shared {
    fn set(&self, state: State, detail: impl Into<String>) {
        let detail = detail.into();
        let mut c = self.current.lock().expect("state lock");
        if c.state == state && c.detail == detail {
            return;
        }
        if c.state != state {
            c.since_ms = crate::db::now_ms();
            tracing::info!(
                state = state.as_str(),
                "📱 WhatsApp: {} ({detail})",
                state.as_str()
            );
        }
        c.state = state;
        c.detail = detail;
        if state == State::Connected {
            c.qr = None;
        }
        drop(c);
        self.changed.send_modify(|n| *n += 1);
    }

    fn state(&self) -> State {
        self.current.lock().expect("state lock").state
    }

    fn set_qr(&self, qr: Option<String>) {
        self.current.lock().expect("state lock").qr = qr;
        self.changed.send_modify(|n| *n += 1);
    }
}

enum Command {
    Send(Box<Outbound>, oneshot::Sender<Result<Receipt, SendError>>),
    Restart(String),
}

pub struct WebDriver {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

impl WebDriver {
    /// Starts the supervisor task; it ends (closing the browser) when `shutdown` is cancelled.
    pub fn start(
        cfg: WebDriverConfig,
        profile: PathBuf,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Arc<WebDriver> {
        let (changed_tx, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            current: Mutex::new(Current {
                state: State::Starting,
                detail: "starting the browser".into(),
                since_ms: crate::db::now_ms(),
                qr: None,
            }),
            changed: changed_tx,
            causes: Default::default(),
        });
        let (commands, rx) = mpsc::channel(64);
        tracker.spawn(supervise(shared.clone(), cfg, profile, rx, shutdown));
        Arc::new(WebDriver { shared, commands })
    }
}

impl MessageSender for WebDriver {
    fn send<'a>(&'a self, message: &'a Outbound) -> SendFuture<'a> {
        Box::pin(async move {
            if self.shared.state() != State::Connected {
                return Err(SendError::new("not-ready", "WhatsApp is not connected"));
            }
            let (tx, rx) = oneshot::channel();
            self.commands
                .send(Command::Send(Box::new(message.clone()), tx))
                .await
                .map_err(|_| SendError::new("session-closed", "the browser driver has stopped"))?;
            rx.await.unwrap_or_else(|_| {
                Err(SendError::new(
                    "session-closed",
                    "the browser session ended before the send finished",
                ))
            })
        })
    }

    fn status(&self) -> WhatsAppStatus {
        let c = self.shared.current.lock().expect("state lock");
        WhatsAppStatus {
            state: c.state.as_str(),
            detail: c.detail.clone(),
            driver: "webdriver",
            since: crate::api::rfc3339(c.since_ms),
        }
    }

    fn changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        // A fresh subscription has seen the current state: it wakes on the next change.
        let mut rx = self.shared.changed.subscribe();
        Box::pin(async move {
            let _ = rx.changed().await;
        })
    }

    fn qr(&self) -> Option<String> {
        self.shared.current.lock().expect("state lock").qr.clone()
    }

    fn restarts_by_cause(&self) -> Vec<(&'static str, u64)> {
        let c = self.shared.causes.lock().expect("causes lock");
        c.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn restart(&self, why: &str) -> bool {
        self.commands
            .try_send(Command::Restart(why.to_string()))
            .is_ok()
    }
}

/// How a session ended.
enum End {
    Shutdown,
    Restart(String),
}

/// Waits between failed starts: 1s, 2s, 4s ... up to a minute.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

async fn supervise(
    shared: Arc<Shared>,
    cfg: WebDriverConfig,
    profile: PathBuf,
    mut rx: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let t0 = Instant::now();
        match Browser::launch(&cfg, &profile).await {
            Err(LaunchError::Unavailable(why)) => {
                tracing::error!("🚫 WhatsApp unavailable: {why}");
                shared.set(State::Unavailable, why);
            }
            Err(LaunchError::Failed(why)) => {
                tracing::error!("🚫 The browser did not start: {why}");
                shared.set(State::Failed, why);
            }
            Ok(b) => {
                tracing::info!(ms = t0.elapsed().as_millis() as u64, "🌍 Browser started");
                let (end, was_connected) = session(&shared, &cfg, &b, &mut rx, &shutdown).await;
                match end {
                    End::Shutdown => {
                        b.close(Duration::from_secs(5)).await;
                        tracing::info!("🌍 Browser closed");
                        break;
                    }
                    End::Restart(cause) => {
                        *shared
                            .causes
                            .lock()
                            .expect("causes lock")
                            .entry(cause_label(&cause))
                            .or_default() += 1;
                        tracing::warn!(cause = %cause, "♻️ Restarting the browser: {cause}");
                        shared.set(State::Restarting, cause);
                        // A hung page will not end its session: don't wait long for it.
                        b.close(Duration::from_secs(2)).await;
                        if was_connected {
                            failures = 0;
                            continue;
                        }
                    }
                }
            }
        }
        let wait = backoff(failures);
        failures += 1;
        if !idle(&mut rx, &shutdown, wait).await {
            break;
        }
    }
    // Anything still queued is answered, not dropped silently.
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        if let Command::Send(_, reply) = cmd {
            let _ = reply.send(Err(SendError::new(
                "session-closed",
                "the gateway is stopping",
            )));
        }
    }
}

/// Waits `d`, answering sends with `not-ready`. False on shutdown.
async fn idle(rx: &mut mpsc::Receiver<Command>, shutdown: &CancellationToken, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(until) => return true,
            cmd = rx.recv() => match cmd {
                None => return false,
                Some(Command::Send(_, reply)) => {
                    let _ = reply.send(Err(SendError::new("not-ready", "the browser is restarting")));
                }
                Some(Command::Restart(_)) => return true,
            }
        }
    }
}

/// How often the page is looked at while it is not connected (reading the QR code, noticing a
/// scan).
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Drives one browser session until it must end. The bool says whether it got connected.
async fn session(
    shared: &Shared,
    cfg: &WebDriverConfig,
    b: &Browser,
    rx: &mut mpsc::Receiver<Command>,
    shutdown: &CancellationToken,
) -> (End, bool) {
    let sel = &cfg.selectors;
    let started = Instant::now();
    // Connected at least once in this session: a QR page after that means a logout.
    let mut was_connected = false;
    let mut last_healthy = Instant::now();
    let mut last_qr: Option<String> = None;
    let mut fallbacks_logged = BTreeSet::new();
    let probe_timeout = cfg
        .keepalive_interval
        .0
        .clamp(Duration::from_secs(1), Duration::from_secs(10));

    shared.set(State::Loading, format!("opening {}", cfg.web_url));
    match tokio::time::timeout(cfg.ready_timeout.0, b.client.goto(&cfg.web_url)).await {
        Err(_) => {
            return (
                End::Restart(format!("{} did not load within ready_timeout", cfg.web_url)),
                false,
            );
        }
        Ok(Err(e)) => {
            return (
                End::Restart(format!(
                    "cannot open {}: {}",
                    cfg.web_url,
                    page::to_send_error(&e).message
                )),
                false,
            );
        }
        Ok(Ok(())) => {}
    }
    let mut next_probe = Instant::now();
    loop {
        let connected = shared.state() == State::Connected;
        tokio::select! {
            _ = shutdown.cancelled() => return (End::Shutdown, was_connected),
            cmd = rx.recv() => match cmd {
                None => return (End::Shutdown, was_connected),
                Some(Command::Restart(why)) => return (End::Restart(why), was_connected),
                Some(Command::Send(m, reply)) => {
                    if !connected {
                        let _ = reply.send(Err(SendError::new("not-ready", "WhatsApp is not connected")));
                        continue;
                    }
                    let r = page::send(b, sel, &cfg.web_url, cfg.send_timeout.0, &m).await;
                    let gone = matches!(&r, Err(e) if e.code == "session-closed");
                    if r.is_ok() {
                        last_healthy = Instant::now();
                    }
                    let cause = r.as_ref().err().map(|e| e.message.clone());
                    let _ = reply.send(r);
                    if gone {
                        return (End::Restart(cause.unwrap_or_default()), was_connected);
                    }
                    // The next look at the page comes soon after a send that left it elsewhere.
                    next_probe = next_probe.min(Instant::now() + WATCH_INTERVAL);
                }
            },
            _ = tokio::time::sleep_until(next_probe) => {
                next_probe = Instant::now() + if connected { cfg.keepalive_interval.0 } else { WATCH_INTERVAL };
                match tokio::time::timeout(probe_timeout, page::probe(b, sel)).await {
                    Ok(Ok(p)) => {
                        last_healthy = Instant::now();
                        for (key, idx) in &p.matched {
                            if *idx > 0 && fallbacks_logged.insert((key.clone(), *idx)) {
                                tracing::warn!(selector = %key, fallback = idx, "🔎 Selector {key}: the first choice did not match; fallback #{idx} did. WhatsApp Web may have changed");
                            }
                        }
                        match p.state.as_str() {
                            "ready" => {
                                if !connected {
                                    tracing::info!(ms = started.elapsed().as_millis() as u64, "✅ WhatsApp Web is ready");
                                }
                                was_connected = true;
                                last_qr = None;
                                shared.set(State::Connected, "WhatsApp Web is ready");
                            }
                            "qr" => {
                                let logged_out = was_connected || p.url_has_post_logout();
                                let state = if logged_out { State::LoggedOut } else { State::Qr };
                                let detail = if logged_out {
                                    "logged out from the phone: scan the new QR code (GET /api/whatsapp/qr)"
                                } else {
                                    "waiting for a scan of the QR code (GET /api/whatsapp/qr)"
                                };
                                if p.reload {
                                    tracing::info!("🔄 The QR codes ran out; pressing reload");
                                    let _ = page::click_reload(b, sel).await;
                                }
                                if let Some(qr) = p.qr.filter(|q| !q.is_empty())
                                    && last_qr.as_deref() != Some(qr.as_str())
                                {
                                    let art = super::qr::unicode(&qr).unwrap_or_default();
                                    tracing::info!("📷 Scan this QR code with WhatsApp on your phone (Linked devices):\n{art}");
                                    last_qr = Some(qr.clone());
                                    shared.set_qr(Some(qr));
                                }
                                shared.set(state, detail);
                            }
                            "loading" if !connected => {
                                shared.set(State::Loading, "WhatsApp Web is loading");
                            }
                            "conflict" => {
                                if cfg.takeover_on_conflict {
                                    tracing::warn!("⚔️ WhatsApp is open in another window; taking over (takeover_on_conflict = true)");
                                    shared.set(State::Conflict, "open in another window; taking over");
                                    let _ = page::click_takeover(b, sel).await;
                                    next_probe = Instant::now() + WATCH_INTERVAL;
                                } else {
                                    shared.set(State::Conflict, "WhatsApp is open in another window; press \"Use here\" there, or set takeover_on_conflict = true");
                                }
                            }
                            _ => {}
                        }
                        let state = shared.state();
                        if matches!(state, State::Loading | State::Starting)
                            && started.elapsed() > cfg.ready_timeout.0
                        {
                            return (End::Restart(format!(
                                "WhatsApp Web did not get ready within ready_timeout ({})",
                                humantime::format_duration(cfg.ready_timeout.0)
                            )), was_connected);
                        }
                        if state == State::Connected && cfg.memory_limit.0 > 0 {
                            let rss = b.memory_bytes();
                            if rss > cfg.memory_limit.0 as u64 {
                                return (End::Restart(format!(
                                    "the browser uses {} MiB, over memory_limit ({} MiB)",
                                    rss >> 20,
                                    cfg.memory_limit.0 >> 20
                                )), was_connected);
                            }
                        }
                    }
                    Ok(Err(e)) if page::session_gone(&e) => {
                        return (End::Restart(format!("the browser session is gone ({})", page::to_send_error(&e).message)), was_connected);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "page check failed");
                    }
                    Err(_) => {
                        tracing::debug!("page check timed out");
                    }
                }
                if last_healthy.elapsed() > cfg.session_timeout.0 {
                    return (End::Restart(format!(
                        "the page has not answered for {} (session_timeout)",
                        humantime::format_duration(Duration::from_secs(last_healthy.elapsed().as_secs()))
                    )), was_connected);
                }
            }
        }
    }
}

impl page::Probe {
    fn url_has_post_logout(&self) -> bool {
        self.url.contains("post_logout=1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changed_waits_for_the_next_change_not_an_old_one() {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            current: Mutex::new(Current {
                state: State::Starting,
                detail: String::new(),
                since_ms: 0,
                qr: None,
            }),
            changed,
            causes: Default::default(),
        });
        let (commands, _rx) = mpsc::channel(1);
        let wd = WebDriver {
            shared: shared.clone(),
            commands,
        };
        shared.set(State::Qr, "scan");
        // The dispatcher waits on this while held: an old change must not wake it (a busy loop).
        let waited = tokio::time::timeout(Duration::from_millis(100), wd.changed()).await;
        assert!(
            waited.is_err(),
            "changed() resolved for a change before it was called"
        );
        let next = wd.changed();
        shared.set(State::Connected, "ready");
        tokio::time::timeout(Duration::from_secs(1), next)
            .await
            .expect("changed() wakes on the next change");
        assert!(wd.is_ready());
    }
}
