//! `[whatsapp]`: which driver sends, and the settings of each (`[whatsapp.webdriver]`,
//! `[whatsapp.sandbox]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ByteSize, Dur, Invalid};
pub use crate::whatsapp::webdriver::Selectors;

/// Which driver sends a session's messages; stored as its lowercase name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, sqlx::Type, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum DriverKind {
    Sandbox,
    Webdriver,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Sandbox => "sandbox",
            DriverKind::Webdriver => "webdriver",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppConfig {
    /// The `default` session's driver, and the default of sessions that name none.
    pub driver: DriverKind,
    /// Most webdriver sessions running at once in this gateway; default: one per 600 MiB of
    /// available memory (at least one).
    pub max_browsers: Option<u32>,
    /// How long a number check's answer is reused before the session's browser is asked again.
    pub number_check_ttl: Dur,
    /// How long a sent message's receipts (delivered, read) are watched after it was sent.
    pub receipt_watch: Dur,
    pub sandbox: SandboxConfig,
    pub webdriver: WebDriverConfig,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self {
            driver: DriverKind::Sandbox,
            max_browsers: None,
            number_check_ttl: Dur::secs(24 * 3600),
            receipt_watch: Dur::secs(24 * 3600),
            sandbox: SandboxConfig::default(),
            webdriver: WebDriverConfig::default(),
        }
    }
}

/// `[whatsapp.webdriver]`: WhatsApp Web in Chromium, driven through ChromeDriver.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebDriverConfig {
    pub web_url: String,
    /// ChromeDriver to start (a path or a name on PATH), on a free loopback port.
    pub chromedriver: String,
    /// A WebDriver server that is already running; when set, `chromedriver` is not started.
    pub webdriver_url: Option<String>,
    /// Chromium or Chrome (a path or a name on PATH).
    pub browser: String,
    pub headless: bool,
    /// Where the browser keeps the login; default `<data_dir>/browser-profile`.
    pub profile_dir: Option<PathBuf>,
    /// Extra command-line flags for the browser.
    pub browser_args: Vec<String>,
    pub ready_timeout: Dur,
    pub keepalive_interval: Dur,
    pub session_timeout: Dur,
    pub send_timeout: Dur,
    pub takeover_on_conflict: bool,
    /// Open chats in the running app (a chat link clicked in the page) instead of loading the
    /// app again per message; `/send?phone=` stays the fallback.
    pub open_chats_in_app: bool,
    /// How often a connected page is looked at for receipts between sends (the open chat's
    /// ticks, the chat list's); `0s` watches none.
    pub receipt_interval: Dur,
    /// How often a connected page is looked at for received messages between sends (the chat
    /// list's unread badges, the open chat); `0s` reads none.
    pub incoming_interval: Dur,
    /// Open a chat with unread messages to read them (its sender sees blue ticks); `false`
    /// reads only what the chat list shows (each chat's last message), leaving chats unread.
    pub mark_read: bool,
    /// The browser is restarted (between sends) when its processes use more than this.
    pub memory_limit: ByteSize,
    pub selectors: Selectors,
}

impl Default for WebDriverConfig {
    fn default() -> Self {
        Self {
            web_url: "https://web.whatsapp.com/".into(),
            chromedriver: "chromedriver".into(),
            webdriver_url: None,
            browser: "chromium".into(),
            headless: true,
            profile_dir: None,
            browser_args: Vec::new(),
            ready_timeout: Dur::secs(60),
            keepalive_interval: Dur::secs(15),
            session_timeout: Dur::secs(60),
            send_timeout: Dur::secs(30),
            takeover_on_conflict: true,
            open_chats_in_app: true,
            receipt_interval: Dur::secs(2),
            incoming_interval: Dur::secs(2),
            mark_read: true,
            memory_limit: ByteSize(1 << 30),
            selectors: Selectors::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// How long a "delivery" takes.
    pub delay: Dur,
    /// JSON lines file that receives every delivered message.
    pub outbox: PathBuf,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            delay: Dur::millis(300),
            outbox: PathBuf::from("data/sandbox-outbox.jsonl"),
        }
    }
}

impl WhatsAppConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.driver != DriverKind::Webdriver {
            return Ok(());
        }
        let wd = &self.webdriver;
        if !(wd.web_url.starts_with("http://") || wd.web_url.starts_with("https://")) {
            return Err(Invalid::new(
                "whatsapp.webdriver.web_url",
                "must be an http(s) URL",
            ));
        }
        for (key, d) in [
            ("ready_timeout", wd.ready_timeout),
            ("keepalive_interval", wd.keepalive_interval),
            ("session_timeout", wd.session_timeout),
            ("send_timeout", wd.send_timeout),
        ] {
            if d.0 < Duration::from_millis(100) {
                return Err(Invalid::new(
                    format!("whatsapp.webdriver.{key}"),
                    "must be at least 100ms",
                ));
            }
        }
        if wd.session_timeout.0 < wd.keepalive_interval.0 {
            return Err(Invalid::new(
                "whatsapp.webdriver.session_timeout",
                "must be at least keepalive_interval",
            ));
        }
        Ok(())
    }
}
