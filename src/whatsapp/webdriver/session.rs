//! The session loop: the task that owns the browser serialises every action on the page
//! (sends, health checks, clicks), follows the page's state, and ends the session when the page
//! stops answering, the browser session dies or the browser grows too big.
//!
//! Every wait on the page is raced against a watchdog: a page that has not answered a script
//! for `session_timeout` is torn down even in the middle of a send. That send fails
//! `session-closed` (retryable), and its retry looks first, so nothing is sent twice.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use fantoccini::error::{CmdError, ErrorStatus};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::browser::Browser;
use super::bubbles::Claims;
use super::cause::RestartCause;
use super::page::{self, Page, PageState, Pulse};
use super::send::{self, SendSettings};
use super::{Command, SessionState, Shared};
use crate::config::WebDriverConfig;
use crate::whatsapp::SendError;

/// How a session ended.
pub(super) enum End {
    Shutdown,
    Restart(RestartCause),
}

/// How often the page is looked at while it is not connected (reading the QR code, noticing a
/// scan).
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// How long opening a chat to read it may take.
const OPEN_TO_READ: Duration = Duration::from_secs(5);
/// How often the watchdog looks at the page's pulse while something waits on the page.
const WATCHDOG_TICK: Duration = Duration::from_millis(100);

/// One browser session, driven until it must end.
pub(super) struct Session<'a> {
    pub(super) shared: &'a Shared,
    pub(super) cfg: &'a WebDriverConfig,
    pub(super) pulse: &'a Pulse,
    pub(super) rx: &'a mut mpsc::Receiver<Command>,
    pub(super) shutdown: &'a CancellationToken,
    pub(super) claims: &'a mut Claims,
    /// Connected at least once in this session: a QR page after that means a logout.
    pub(super) was_connected: bool,
    /// The conflict screen is up, and was counted.
    pub(super) in_conflict: bool,
}

/// Runs `fut` (something that waits on the page) unless the page falls silent for `limit`
/// first; then the silence.
pub(super) async fn guarded<F: Future>(
    pulse: &Pulse,
    limit: Duration,
    fut: F,
) -> Result<F::Output, Duration> {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(WATCHDOG_TICK);
    loop {
        tokio::select! {
            out = &mut fut => return Ok(out),
            _ = tick.tick() => {
                let silent = pulse.silent_for();
                if silent > limit {
                    return Err(silent);
                }
            }
        }
    }
}

impl Session<'_> {
    /// A glance for received messages (see `incoming.rs`), handed to the sessions layer;
    /// watched like every wait on the page: the session ends if the page falls silent.
    async fn glance(&self, page: Page<'_>, inbox: &mut super::incoming::Inbox) -> Option<End> {
        let glance = inbox.glance(page, self.cfg.mark_read);
        match guarded(self.pulse, self.cfg.session_timeout.0, glance).await {
            Err(silent) => Some(End::Restart(RestartCause::Unresponsive {
                silent,
                during_send: false,
            })),
            Ok(Ok(seen)) => {
                for m in seen {
                    let _ = self.shared.incoming.send(m);
                }
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "glancing for received messages failed");
                None
            }
        }
    }

    pub(super) async fn run(&mut self, b: &Browser) -> End {
        let cfg = self.cfg;
        let started = Instant::now();
        let mut last_qr: Option<String> = None;
        let mut fallbacks_logged = BTreeSet::new();

        self.shared
            .set(SessionState::Loading, format!("opening {}", cfg.web_url));
        // The first load proves nothing until it returns: the watchdog cuts it like any other
        // wait on the page, after `session_timeout` (ready_timeout bounds the rest).
        let limit = cfg.session_timeout.0.min(cfg.ready_timeout.0);
        match guarded(self.pulse, limit, b.client.goto(&cfg.web_url)).await {
            Err(silent) => {
                return End::Restart(RestartCause::NotReady(format!(
                    "{} did not load within {:.1}s",
                    cfg.web_url,
                    silent.as_secs_f64()
                )));
            }
            // A slow load runs past the page-load limit: the probes below follow it.
            Ok(Err(CmdError::Standard(e))) if e.error == ErrorStatus::Timeout => {}
            Ok(Err(e)) => {
                return End::Restart(RestartCause::NotReady(format!(
                    "cannot open {}: {}",
                    cfg.web_url,
                    page::to_send_error(&e).message
                )));
            }
            Ok(Ok(())) => {}
        }
        self.pulse.beat();
        let mut next_probe = Instant::now();
        let watch_receipts = !cfg.receipt_interval.0.is_zero();
        let mut next_receipts = Instant::now() + cfg.receipt_interval.0;
        let mut receipts = super::acks::Watch::default();
        let watch_incoming = !cfg.incoming_interval.0.is_zero();
        let mut next_incoming = Instant::now() + cfg.incoming_interval.0;
        let mut inbox = super::incoming::Inbox::default();
        loop {
            let connected = self.shared.state() == SessionState::Connected;
            let page = Page {
                browser: b,
                sel: &cfg.selectors,
                pulse: self.pulse,
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return End::Shutdown,
                cmd = self.rx.recv() => match cmd {
                    None => return End::Shutdown,
                    Some(Command::Restart(why)) => return End::Restart(RestartCause::Requested(why)),
                    Some(Command::Check(number, reply)) => {
                        if !connected {
                            let _ = reply.send(Err(SendError::new("not-ready", "WhatsApp is not connected")));
                            continue;
                        }
                        let deadline = Instant::now() + cfg.send_timeout.0;
                        let open = send::open_chat(page, &cfg.web_url, &number, cfg.open_chats_in_app, deadline);
                        let exists = async { open.await.map(|chat| matches!(chat, send::Chat::Open { .. })) };
                        if let Some(end) = self.errand(exists, reply).await {
                            return end;
                        }
                        next_probe = next_probe.min(Instant::now() + WATCH_INTERVAL);
                    }
                    Some(Command::LogOut(reply)) => {
                        if !connected {
                            let _ = reply.send(Ok(false));
                            continue;
                        }
                        let out = super::link::log_out(page, Duration::from_secs(10));
                        if let Some(end) = self.errand(async { out.await.map(|()| true) }, reply).await {
                            return end;
                        }
                    }
                    Some(Command::Pair(phone, reply)) => {
                        if connected {
                            let _ = reply.send(Err(SendError::new("already-linked", "this session is logged in already; log it out first")));
                            continue;
                        }
                        let shared = self.shared;
                        let pair = super::link::pairing_code(page, &phone, cfg.ready_timeout.0.min(Duration::from_secs(30)));
                        let pair = async {
                            let code = pair.await?;
                            shared.set_qr(None);
                            shared.set(SessionState::Pairing, "waiting for the pairing code to be typed on the phone");
                            Ok(code)
                        };
                        if let Some(end) = self.errand(pair, reply).await {
                            return end;
                        }
                        next_probe = Instant::now() + WATCH_INTERVAL;
                    }
                    Some(Command::Send(m, reply)) => {
                        if !connected {
                            let _ = reply.send(Err(SendError::new("not-ready", "WhatsApp is not connected")));
                            continue;
                        }
                        // What arrived in the chat this send leaves, and the badges of the one it opens.
                        if watch_incoming && let Some(end) = self.glance(page, &mut inbox).await {
                            let _ = reply.send(Err(SendError::new("session-closed", "the page stopped answering before the send; it is retried after the restart")));
                            return end;
                        }
                        let settings = SendSettings { web_url: &cfg.web_url, timeout: cfg.send_timeout.0, in_app: cfg.open_chats_in_app };
                        let send = send::send(page, &settings, &m, &mut *self.claims);
                        match guarded(self.pulse, cfg.session_timeout.0, send).await {
                            Ok(r) => {
                                let gone = match &r {
                                    Err(e) if e.code == "session-closed" => Some(e.message.clone()),
                                    _ => None,
                                };
                                let sent = r.is_ok();
                                let _ = reply.send(r);
                                if let Some(why) = gone {
                                    return End::Restart(RestartCause::SessionGone(why));
                                }
                                // The chat the send opened, as it is now: what was there is history.
                                if sent && watch_incoming && let Some(end) = self.glance(page, &mut inbox).await {
                                    return end;
                                }
                            }
                            Err(silent) => {
                                let cause = RestartCause::Unresponsive { silent, during_send: true };
                                let _ = reply.send(Err(SendError::new(
                                    "session-closed",
                                    format!("{cause}; the browser is restarted and the retry looks for the message first"),
                                )));
                                return End::Restart(cause);
                            }
                        }
                        // The next look at the page comes soon after a send that left it elsewhere.
                        next_probe = next_probe.min(Instant::now() + WATCH_INTERVAL);
                    }
                },
                // Receipts between sends: never while a command waits.
                _ = tokio::time::sleep_until(next_receipts), if watch_receipts && connected && self.rx.is_empty() => {
                    next_receipts = Instant::now() + cfg.receipt_interval.0;
                    match guarded(self.pulse, cfg.session_timeout.0, receipts.look(page)).await {
                        Err(silent) => return End::Restart(RestartCause::Unresponsive { silent, during_send: false }),
                        Ok(Ok(seen)) => {
                            for a in seen {
                                let _ = self.shared.acks.send(a);
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "looking for receipts failed"),
                    }
                }
                // Received messages between sends, likewise; one chat opened at most per look.
                _ = tokio::time::sleep_until(next_incoming), if watch_incoming && connected && self.rx.is_empty() => {
                    let open = |chat: String| async move {
                        let deadline = Instant::now() + OPEN_TO_READ;
                        matches!(
                            send::open_chat(page, &cfg.web_url, &chat, cfg.open_chats_in_app, deadline).await,
                            Ok(send::Chat::Open { .. })
                        )
                    };
                    let look = inbox.look(page, cfg.mark_read, open);
                    match guarded(self.pulse, cfg.session_timeout.0, look).await {
                        Err(silent) => return End::Restart(RestartCause::Unresponsive { silent, during_send: false }),
                        Ok(Ok(seen)) => {
                            for m in seen {
                                let _ = self.shared.incoming.send(m);
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "looking for received messages failed"),
                    }
                    next_incoming = Instant::now() + cfg.incoming_interval.0;
                }
                _ = tokio::time::sleep_until(next_probe) => {
                    next_probe = Instant::now() + if connected { cfg.keepalive_interval.0 } else { WATCH_INTERVAL };
                    match guarded(self.pulse, cfg.session_timeout.0, page.probe()).await {
                        Err(silent) => return End::Restart(RestartCause::Unresponsive { silent, during_send: false }),
                        Ok(Ok(p)) => {
                            for (key, idx) in &p.matched {
                                if *idx > 0 && fallbacks_logged.insert((key.clone(), *idx)) {
                                    tracing::warn!(selector = %key, fallback = idx, "🔎 Selector {key}: the first choice did not match; fallback #{idx} did. WhatsApp Web may have changed");
                                }
                            }
                            if let Some(end) = self.follow(page, p, connected, started, &mut last_qr, &mut next_probe).await {
                                return end;
                            }
                        }
                        Ok(Err(e)) if page::session_gone(&e) => {
                            return End::Restart(RestartCause::SessionGone(page::to_send_error(&e).message));
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "page check failed"),
                    }
                }
            }
        }
    }

    /// Runs an errand on the page (a number check, a logout, a pairing code) under the
    /// watchdog and answers `reply`; Some(end) when the page fell silent meanwhile.
    async fn errand<T>(
        &self,
        work: impl Future<Output = Result<T, SendError>>,
        reply: super::Reply<T>,
    ) -> Option<End> {
        match guarded(self.pulse, self.cfg.session_timeout.0, work).await {
            Ok(r) => {
                let _ = reply.send(r);
                None
            }
            Err(silent) => {
                let _ = reply.send(Err(SendError::new(
                    "session-closed",
                    "the page stopped answering",
                )));
                Some(End::Restart(RestartCause::Unresponsive {
                    silent,
                    during_send: false,
                }))
            }
        }
    }

    /// Acts on what a probe saw: state changes, QR codes, reload and takeover clicks, the
    /// ready and memory limits. Some(end) when the session must end.
    async fn follow(
        &mut self,
        page: Page<'_>,
        p: page::Probe,
        connected: bool,
        started: Instant,
        last_qr: &mut Option<String>,
        next_probe: &mut Instant,
    ) -> Option<End> {
        if p.state != PageState::Conflict {
            self.in_conflict = false;
        }
        let cfg = self.cfg;
        let shared = self.shared;
        match p.state {
            PageState::Ready => {
                if let Some(me) = &p.me {
                    shared.set_me(me);
                }
                if !connected {
                    tracing::info!(
                        ms = started.elapsed().as_millis() as u64,
                        "✅ WhatsApp Web is ready"
                    );
                }
                self.was_connected = true;
                *last_qr = None;
                shared.set(SessionState::Connected, "WhatsApp Web is ready");
            }
            PageState::Qr => {
                let logged_out = self.was_connected || p.url.contains("post_logout=1");
                let state = if logged_out {
                    SessionState::LoggedOut
                } else {
                    SessionState::Qr
                };
                let detail = if logged_out {
                    "logged out from the phone: scan the new QR code (GET /api/sessions/{name}/qr)"
                } else {
                    "waiting for a scan of the QR code (GET /api/sessions/{name}/qr)"
                };
                if p.reload {
                    tracing::info!("🔄 The QR codes ran out; pressing reload");
                    let _ = guarded(page.pulse, cfg.session_timeout.0, page.click_reload()).await;
                }
                if let Some(qr) = p.qr.filter(|q| !q.is_empty())
                    && last_qr.as_deref() != Some(qr.as_str())
                {
                    let art = crate::whatsapp::qr::unicode(&qr).unwrap_or_default();
                    tracing::info!(
                        "📷 Scan this QR code with WhatsApp on your phone (Linked devices):\n{art}"
                    );
                    *last_qr = Some(qr.clone());
                    shared.set_qr(Some(qr));
                }
                shared.set(state, detail);
            }
            PageState::Blocked => {
                let what = p.blocked.unwrap_or_default();
                tracing::error!(
                    "⛔ WhatsApp Web shows a block page ({what:?}); sends fail rate-limited"
                );
                shared.set(
                    SessionState::Failed,
                    format!("WhatsApp Web shows a block page ({what}); a paced session rests for its cooldown"),
                );
            }
            PageState::Pairing => {
                shared.set(
                    SessionState::Pairing,
                    "waiting for the pairing code to be typed on the phone",
                );
            }
            PageState::Loading if !connected => {
                shared.set(SessionState::Loading, "WhatsApp Web is loading");
            }
            PageState::Conflict => {
                *next_probe = Instant::now() + WATCH_INTERVAL;
                return self.conflict(page).await;
            }
            _ => {}
        }
        let state = shared.state();
        if matches!(state, SessionState::Loading | SessionState::Starting)
            && started.elapsed() > cfg.ready_timeout.0
        {
            return Some(End::Restart(RestartCause::NotReady(format!(
                "WhatsApp Web did not get ready within ready_timeout ({})",
                humantime::format_duration(cfg.ready_timeout.0)
            ))));
        }
        if state == SessionState::Connected && cfg.memory_limit.0 > 0 {
            let used = page.browser.memory_bytes();
            let limit = cfg.memory_limit.0 as u64;
            if used > limit {
                return Some(End::Restart(RestartCause::Memory { used, limit }));
            }
        }
        None
    }
}
