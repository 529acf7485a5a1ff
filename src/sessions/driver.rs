//! Starting a session's driver with its own settings, and its files on disk: each session's
//! browser profile lives in `<data_dir>/sessions/<name>/browser-profile`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ByteSize, Config, DriverKind};
use crate::db::sessions::SessionRow;
use crate::whatsapp::MessageSender;
use crate::whatsapp::sandbox::Sandbox;
use crate::whatsapp::webdriver::WebDriver;

/// Starts the session's driver; it ends when `stop` is cancelled, its tasks tracked by `tasks`.
pub(super) fn start(
    config: &Config,
    row: &SessionRow,
    stop: CancellationToken,
    tasks: &TaskTracker,
    holds: crate::whatsapp::Holds,
) -> anyhow::Result<Arc<dyn MessageSender>> {
    let name = row.name.as_str();
    Ok(match row.driver {
        DriverKind::Sandbox => {
            let outbox = config.resolve(&config.whatsapp.sandbox.outbox);
            tracing::info!(session = name, outbox = %outbox.display(), "🧪 Session {name}: sandbox driver (test numbers end in 0000-0004)");
            Arc::new(Sandbox::new(
                name,
                config.whatsapp.sandbox.delay.0,
                &outbox,
            )?)
        }
        DriverKind::Webdriver => {
            let mut wd = config.whatsapp.webdriver.clone();
            wd.browser_args.extend(row.browser_args());
            if let Some(m) = row.memory_limit {
                wd.memory_limit = ByteSize(m as usize);
            }
            let profile = config.browser_profile(name);
            tracing::info!(session = name, url = %wd.web_url, profile = %profile.display(), "🌍 Session {name}: webdriver driver");
            WebDriver::start(name, wd, profile, stop, tasks, holds)
        }
    })
}

/// A gateway from before sessions kept the login in `<data_dir>/browser-profile`: it becomes
/// the `default` session's, so an upgrade needs no new scan.
pub(super) fn adopt_legacy_profile(config: &Config) {
    if config.whatsapp.webdriver.profile_dir.is_some() {
        return;
    }
    let legacy = config.data_dir().join("browser-profile");
    let target = config.browser_profile(super::DEFAULT);
    if legacy.is_dir() && !target.exists() {
        let moved = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::rename(&legacy, &target));
        match moved {
            Ok(()) => tracing::info!(
                from = %legacy.display(),
                to = %target.display(),
                "🌍 The browser profile is now the default session's"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot move {} to {}", legacy.display(), target.display())
            }
        }
    }
}

/// Deletes the session's browser profile (a logout).
pub(super) fn remove_profile(config: &Config, name: &str) -> std::io::Result<()> {
    remove_dir(&config.browser_profile(name))
}

/// Deletes everything the session kept on disk.
pub(crate) fn remove_session_dir(config: &Config, name: &str) -> std::io::Result<()> {
    remove_profile(config, name)?;
    remove_dir(&config.session_dir(name))
}

fn remove_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
