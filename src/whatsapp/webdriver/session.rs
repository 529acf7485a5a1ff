//! The supervisor and the session loop: one task owns the browser, serialises every action on
//! the page (sends, health checks, clicks), and restarts the browser with the same profile when
//! the page stops answering, the session dies or the browser grows too big.
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

use super::browser::{Browser, LaunchError};
use super::bubbles::Claims;
use super::page::{self, Page, Pulse};
use super::send::{self, SendSettings};
use super::{Command, Shared, State};
use crate::config::WebDriverConfig;
use crate::whatsapp::SendError;

/// Why a browser is restarted: a metric label, and words for the log and the state's detail.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartCause {
    /// The page answered no script for `session_timeout`, while idle or in a send.
    Unresponsive { silent: Duration, during_send: bool },
    /// The browser or its WebDriver session is gone.
    SessionGone(String),
    /// The browser's processes hold more than `memory_limit`.
    Memory { used: u64, limit: u64 },
    /// WhatsApp Web did not load, or did not get ready within `ready_timeout`.
    NotReady(String),
    /// Asked for through the API.
    Requested(String),
}

impl RestartCause {
    /// Every label, for metrics that list them all.
    pub const LABELS: [&'static str; 5] = [
        "unresponsive",
        "session_gone",
        "memory",
        "not_ready",
        "requested",
    ];

    pub fn label(&self) -> &'static str {
        match self {
            RestartCause::Unresponsive { .. } => "unresponsive",
            RestartCause::SessionGone(_) => "session_gone",
            RestartCause::Memory { .. } => "memory",
            RestartCause::NotReady(_) => "not_ready",
            RestartCause::Requested(_) => "requested",
        }
    }

    /// A page that cannot answer gets no polite close.
    fn polite_close(&self) -> Duration {
        match self {
            RestartCause::Unresponsive { .. } | RestartCause::SessionGone(_) => Duration::ZERO,
            _ => Duration::from_secs(2),
        }
    }
}

impl std::fmt::Display for RestartCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartCause::Unresponsive {
                silent,
                during_send,
            } => write!(
                f,
                "the page has not answered for {:.1}s (session_timeout){}",
                silent.as_secs_f64(),
                if *during_send {
                    ", in the middle of a send"
                } else {
                    ""
                }
            ),
            RestartCause::SessionGone(why) => write!(f, "the browser session is gone ({why})"),
            RestartCause::Memory { used, limit } => write!(
                f,
                "the browser uses {} MiB, over memory_limit ({} MiB)",
                used >> 20,
                limit >> 20
            ),
            RestartCause::NotReady(why) | RestartCause::Requested(why) => f.write_str(why),
        }
    }
}

/// How a session ended.
enum End {
    Shutdown,
    Restart(RestartCause),
}

/// Waits between failed starts: 1s, 2s, 4s ... up to a minute.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

pub(super) async fn supervise(
    shared: std::sync::Arc<Shared>,
    cfg: WebDriverConfig,
    profile: std::path::PathBuf,
    mut rx: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    // Which bubble is which job's, kept across browser restarts for the retries' look-first.
    let mut claims = Claims::default();
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
                shared.set_family(Some(b.family()));
                let pulse = Pulse::new();
                let mut s = Session {
                    shared: &shared,
                    cfg: &cfg,
                    pulse: &pulse,
                    rx: &mut rx,
                    shutdown: &shutdown,
                    claims: &mut claims,
                    was_connected: false,
                };
                let end = s.run(&b).await;
                let was_connected = s.was_connected;
                match end {
                    End::Shutdown => {
                        b.close(Duration::from_secs(5)).await;
                        shared.set_family(None);
                        tracing::info!("🌍 Browser closed");
                        break;
                    }
                    End::Restart(cause) => {
                        shared.count_restart(cause.label());
                        tracing::warn!(cause = cause.label(), "♻️ Restarting the browser: {cause}");
                        shared.set(State::Restarting, cause.to_string());
                        b.close(cause.polite_close()).await;
                        shared.set_family(None);
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
/// How often the watchdog looks at the page's pulse while something waits on the page.
const WATCHDOG_TICK: Duration = Duration::from_millis(100);

/// One browser session, driven until it must end.
struct Session<'a> {
    shared: &'a Shared,
    cfg: &'a WebDriverConfig,
    pulse: &'a Pulse,
    rx: &'a mut mpsc::Receiver<Command>,
    shutdown: &'a CancellationToken,
    claims: &'a mut Claims,
    /// Connected at least once in this session: a QR page after that means a logout.
    was_connected: bool,
}

/// Runs `fut` (something that waits on the page) unless the page falls silent for `limit`
/// first; then the silence.
async fn guarded<F: Future>(pulse: &Pulse, limit: Duration, fut: F) -> Result<F::Output, Duration> {
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
    async fn run(&mut self, b: &Browser) -> End {
        let cfg = self.cfg;
        let started = Instant::now();
        let mut last_qr: Option<String> = None;
        let mut fallbacks_logged = BTreeSet::new();

        self.shared
            .set(State::Loading, format!("opening {}", cfg.web_url));
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
        loop {
            let connected = self.shared.state() == State::Connected;
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
                    Some(Command::Send(m, reply)) => {
                        if !connected {
                            let _ = reply.send(Err(SendError::new("not-ready", "WhatsApp is not connected")));
                            continue;
                        }
                        let settings = SendSettings { web_url: &cfg.web_url, timeout: cfg.send_timeout.0 };
                        let send = send::send(page, &settings, &m, &mut *self.claims);
                        match guarded(self.pulse, cfg.session_timeout.0, send).await {
                            Ok(r) => {
                                let gone = match &r {
                                    Err(e) if e.code == "session-closed" => Some(e.message.clone()),
                                    _ => None,
                                };
                                let _ = reply.send(r);
                                if let Some(why) = gone {
                                    return End::Restart(RestartCause::SessionGone(why));
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
        let cfg = self.cfg;
        let shared = self.shared;
        match p.state.as_str() {
            "ready" => {
                if !connected {
                    tracing::info!(
                        ms = started.elapsed().as_millis() as u64,
                        "✅ WhatsApp Web is ready"
                    );
                }
                self.was_connected = true;
                *last_qr = None;
                shared.set(State::Connected, "WhatsApp Web is ready");
            }
            "qr" => {
                let logged_out = self.was_connected || p.url.contains("post_logout=1");
                let state = if logged_out {
                    State::LoggedOut
                } else {
                    State::Qr
                };
                let detail = if logged_out {
                    "logged out from the phone: scan the new QR code (GET /api/whatsapp/qr)"
                } else {
                    "waiting for a scan of the QR code (GET /api/whatsapp/qr)"
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
            "loading" if !connected => {
                shared.set(State::Loading, "WhatsApp Web is loading");
            }
            "conflict" => {
                if cfg.takeover_on_conflict {
                    tracing::warn!(
                        "⚔️ WhatsApp is open in another window; taking over (takeover_on_conflict = true)"
                    );
                    shared.set(State::Conflict, "open in another window; taking over");
                    let _ = guarded(page.pulse, cfg.session_timeout.0, page.click_takeover()).await;
                    *next_probe = Instant::now() + WATCH_INTERVAL;
                } else {
                    shared.set(
                        State::Conflict,
                        "WhatsApp is open in another window; press \"Use here\" there, or set takeover_on_conflict = true",
                    );
                }
            }
            _ => {}
        }
        let state = shared.state();
        if matches!(state, State::Loading | State::Starting)
            && started.elapsed() > cfg.ready_timeout.0
        {
            return Some(End::Restart(RestartCause::NotReady(format!(
                "WhatsApp Web did not get ready within ready_timeout ({})",
                humantime::format_duration(cfg.ready_timeout.0)
            ))));
        }
        if state == State::Connected && cfg.memory_limit.0 > 0 {
            let used = page.browser.memory_bytes();
            let limit = cfg.memory_limit.0 as u64;
            if used > limit {
                return Some(End::Restart(RestartCause::Memory { used, limit }));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_a_listed_label_and_says_why() {
        let causes = [
            RestartCause::Unresponsive {
                silent: Duration::from_millis(4200),
                during_send: true,
            },
            RestartCause::SessionGone("chrome not reachable".into()),
            RestartCause::Memory {
                used: 2 << 30,
                limit: 1 << 30,
            },
            RestartCause::NotReady("no ready page".into()),
            RestartCause::Requested("restart requested through the API".into()),
        ];
        for c in &causes {
            assert!(RestartCause::LABELS.contains(&c.label()), "{c:?}");
            assert!(!c.to_string().is_empty());
        }
        assert_eq!(
            causes[0].to_string(),
            "the page has not answered for 4.2s (session_timeout), in the middle of a send"
        );
        assert_eq!(
            causes[2].to_string(),
            "the browser uses 2048 MiB, over memory_limit (1024 MiB)"
        );
    }
}
