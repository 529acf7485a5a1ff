//! The supervisor: one task per driver that starts the browser, runs a session on it until the
//! session must end, and restarts it (with the same profile) with a backoff while starts keep
//! failing. Whatever is still queued when it stops is answered, not dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::browser::{Browser, LaunchError};
use super::bubbles::Claims;
use super::cause::RestartCause;
use super::page::Pulse;
use super::session::{End, Session};
use super::{Command, SessionState, Shared};
use crate::config::WebDriverConfig;
use crate::whatsapp::SendError;

pub(super) async fn supervise(
    shared: Arc<Shared>,
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
                shared.set(SessionState::Unavailable, why);
            }
            Err(LaunchError::Failed(why)) => {
                tracing::error!("🚫 The browser did not start: {why}");
                shared.set(SessionState::Failed, why);
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
                    in_conflict: false,
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
                        shared.set(SessionState::Restarting, cause.to_string());
                        b.close(cause.polite_close()).await;
                        shared.set_family(None);
                        if cause == RestartCause::Conflict
                            && !until_held(&shared, &mut rx, &shutdown).await
                        {
                            break;
                        }
                        if was_connected {
                            failures = 0;
                            continue;
                        }
                    }
                }
            }
        }
        // Between failed starts: 1s, 2s, 4s ... up to a minute.
        let wait = crate::time::backoff(
            failures + 1,
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        failures += 1;
        if !idle(&mut rx, &shutdown, wait).await {
            break;
        }
    }
    // Anything still queued is answered, not dropped silently.
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        cmd.refuse(SendError::new("session-closed", "the session is stopping"));
    }
}

/// After closing on a conflict without the lease: waits until this node holds the session's
/// lease again before it opens a browser. False on shutdown.
async fn until_held(
    shared: &Shared,
    rx: &mut mpsc::Receiver<Command>,
    shutdown: &CancellationToken,
) -> bool {
    shared.set(
        SessionState::Conflict,
        "another node runs this number: waiting for this node's lease",
    );
    while !(shared.holds)() {
        if !idle(rx, shutdown, Duration::from_millis(500)).await {
            return false;
        }
    }
    true
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
                Some(Command::Restart(_)) => return true,
                Some(cmd) => {
                    cmd.refuse(SendError::new("not-ready", "the browser is restarting"));
                }
            }
        }
    }
}
