//! `gateway.toml`, parsed once at start-up into typed values.
//!
//! Every key can be overridden from the environment as `GATEWAY__<SECTION>__<KEY>` (e.g.
//! `GATEWAY__QUEUE__CONCURRENCY=5`, `GATEWAY__AUTH__JWT_SECRET=...`). Unknown keys, bad
//! durations and unreadable files stop start-up with a message that names the key and the file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Prefix of environment overrides: `GATEWAY__SERVER__BIND` sets `server.bind`.
pub const ENV_PREFIX: &str = "GATEWAY__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub whatsapp: WhatsAppConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Message templates by name: `otp = "Your code is {{code}}"`.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// WASM plugins, at most one per hook; a hook with none uses the built-in rule.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Receivers of signed event deliveries.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The folder relative paths are resolved against (the config file's folder).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where the config came from, for messages.
    #[serde(skip)]
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413. `send-message` takes
    /// what its largest valid message needs, whatever this says.
    pub max_body_bytes: usize,
    /// A connection must send a complete request header within this time of opening or of
    /// its previous response; slow and idle connections are closed after it.
    pub header_timeout: Dur,
    /// Longest a request may take (body included); the event stream is exempt.
    pub request_timeout: Dur,
    /// Connections held at once; more wait to be accepted. Capped below the open-file limit.
    pub max_connections: usize,
    /// `GET /api/events` clients at once; more get 503.
    pub max_event_streams: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".parse().expect("valid address"),
            max_body_bytes: 64 * 1024,
            header_timeout: Dur::secs(15),
            request_timeout: Dur::secs(30),
            max_connections: 1024,
            max_event_streams: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub access_ttl: Dur,
    pub refresh_ttl: Dur,
    /// HS256 secret, at least 32 bytes. Unset: generated into `<data_dir>/jwt-secret` (0600).
    pub jwt_secret: Option<String>,
    /// Failed logins allowed per email (and, times four, per client address) in `login_window`.
    pub login_max_failures: u32,
    pub login_window: Dur,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl: Dur::secs(15 * 60),
            refresh_ttl: Dur::secs(7 * 24 * 3600),
            jwt_secret: None,
            login_max_failures: 5,
            login_window: Dur::secs(15 * 60),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("login_max_failures", &self.login_max_failures)
            .field("login_window", &self.login_window)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs sent at once. The API (`queue/config`) can change it; that value is kept in the
    /// database and wins over this one after a restart.
    pub concurrency: u32,
    /// Retries after the first attempt, for retryable failures.
    pub max_retries: u32,
    pub backoff_base: Dur,
    pub backoff_max: Dur,
    /// Longest a single send may take before it counts as a `timeout` failure.
    pub send_timeout: Dur,
    /// On SIGTERM, how long active sends may take to finish.
    pub shutdown_grace: Dur,
    /// Completed jobs older than this (since they finished) are deleted; 0 keeps them all.
    pub keep_completed: Dur,
    /// Failed jobs older than this (since they finished) are deleted; 0 keeps them all.
    pub keep_failed: Dur,
    /// How often finished jobs past their age are pruned.
    pub prune_interval: Dur,
}

impl QueueConfig {
    /// Sends at once: 1 to this (here and in `POST /api/whatsapp/queue/config`).
    pub const MAX_CONCURRENCY: u32 = 256;
    /// Retries after the first attempt: 0 to this.
    pub const MAX_RETRIES: u32 = 100;

    pub fn check_concurrency(n: u32) -> Result<(), String> {
        if (1..=Self::MAX_CONCURRENCY).contains(&n) {
            Ok(())
        } else {
            Err(format!(
                "concurrency must be between 1 and {}",
                Self::MAX_CONCURRENCY
            ))
        }
    }

    pub fn check_max_retries(n: u32) -> Result<(), String> {
        if n <= Self::MAX_RETRIES {
            Ok(())
        } else {
            Err(format!("max retries must be at most {}", Self::MAX_RETRIES))
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            concurrency: 3,
            max_retries: 5,
            backoff_base: Dur::secs(2),
            backoff_max: Dur::secs(32),
            send_timeout: Dur::secs(60),
            shutdown_grace: Dur::secs(10),
            keep_completed: Dur::secs(7 * 86_400),
            keep_failed: Dur::secs(30 * 86_400),
            prune_interval: Dur::secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Sandbox,
    Webdriver,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppConfig {
    pub driver: DriverKind,
    pub sandbox: SandboxConfig,
    pub webdriver: WebDriverConfig,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self {
            driver: DriverKind::Sandbox,
            sandbox: SandboxConfig::default(),
            webdriver: WebDriverConfig::default(),
        }
    }
}

/// `[[webhooks]]`: where events are delivered, signed with `secret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Event names (`job.waiting`, `job.active`, `job.completed`, `job.failed`,
    /// `whatsapp.state`, `whatsapp.qr`), or `*` for all.
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    /// HMAC-SHA256 key for the signature header; at least 16 characters.
    pub secret: String,
    /// Tries before a delivery is given up.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
}

fn all_events() -> Vec<String> {
    vec!["*".into()]
}

fn default_webhook_attempts() -> u32 {
    12
}

impl WebhookConfig {
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event)
    }
}

/// `[whatsapp.webdriver]`: WhatsApp Web in Chromium, driven through ChromeDriver.
#[derive(Debug, Clone, Deserialize)]
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
            memory_limit: ByteSize(1 << 30),
            selectors: Selectors::default(),
        }
    }
}

/// Every selector and text the WebDriver driver relies on, each an ordered list of fallbacks
/// (first match wins), so an operator can follow a WhatsApp Web change without a rebuild.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Selectors {
    pub loading: Vec<String>,
    pub qr_canvas: Vec<String>,
    /// The element holding the QR string in `data-ref`.
    pub qr_ref: Vec<String>,
    pub qr_reload: Vec<String>,
    pub ready: Vec<String>,
    /// Texts of the conflict screen ("open in another window").
    pub conflict_text: Vec<String>,
    /// Button texts that take the session over on the conflict screen.
    pub conflict_takeover: Vec<String>,
    pub invalid_dialog: Vec<String>,
    pub invalid_text: Vec<String>,
    pub compose: Vec<String>,
    pub outgoing: Vec<String>,
    /// Inside an outgoing bubble: its text.
    pub bubble_text: Vec<String>,
    /// Texts of the button that expands a long message cut in its bubble.
    pub read_more_text: Vec<String>,
    /// Inside an outgoing bubble: the status icon (`data-icon`).
    pub bubble_status: Vec<String>,
    /// `data-icon` values that mean "still pending".
    pub pending_icons: Vec<String>,
    /// `data-icon` values that mean "sent" (or better).
    pub sent_icons: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for Selectors {
    fn default() -> Self {
        Self {
            loading: strings(&["div[data-testid='wa-web-loading-screen']", "progress"]),
            qr_canvas: strings(&[
                "canvas[aria-label='Scan this QR code to link a device!']",
                "canvas[aria-label='Scan me!']",
                "div[data-ref] canvas[aria-label]",
            ]),
            qr_ref: strings(&["div[data-ref]"]),
            qr_reload: strings(&["div[data-ref] > span > button", "div[data-ref] button"]),
            ready: strings(&[
                "#pane-side",
                "#side",
                "span[data-icon='wa-wordmark-refreshed']",
                "span[data-icon='wa-wordmark']",
            ]),
            conflict_text: strings(&["WhatsApp is open in another window"]),
            conflict_takeover: strings(&["Use here", "Use Here"]),
            invalid_dialog: strings(&[
                "div[role='dialog']",
                "div[data-animate-modal-popup='true']",
            ]),
            invalid_text: strings(&["Phone number shared via url is invalid"]),
            compose: strings(&[
                "#main footer div[contenteditable='true'][role='textbox']",
                "div[contenteditable='true'][aria-placeholder='Type a message']",
                "div[contenteditable='true'][data-tab='10']",
            ]),
            outgoing: strings(&["#main div.message-out", "div.message-out"]),
            bubble_text: strings(&["span.selectable-text", "span[dir='ltr']"]),
            read_more_text: strings(&["Read more"]),
            bubble_status: strings(&["span[data-icon^='msg-']"]),
            pending_icons: strings(&["msg-time"]),
            sent_icons: strings(&["msg-check", "msg-dblcheck", "msg-dblcheck-ack"]),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `wa_gateway=debug,info`. `RUST_LOG` wins when set.
    pub level: String,
    /// `text` (readable lines) or `json` (one object per line, for log shippers).
    #[serde(alias = "log_format")]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Where a plugin plugs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginHook {
    FormatNumber,
    ClassifyError,
    Render,
    AssignPriority,
}

impl PluginHook {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginHook::FormatNumber => "format-number",
            PluginHook::ClassifyError => "classify-error",
            PluginHook::Render => "render",
            PluginHook::AssignPriority => "assign-priority",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique; shows in logs and the API.
    pub name: String,
    pub hook: PluginHook,
    /// The `.wasm` component, relative to the config file's folder unless absolute.
    pub path: PathBuf,
    /// Optional pin: a file whose SHA-256 differs is refused.
    pub sha256: Option<String>,
    /// Strings the plugin reads with `host.config(key)`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: PluginLimits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// CPU time per call.
    pub time: Dur,
    /// Memory per instance, e.g. "16MiB".
    pub memory: ByteSize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            time: Dur::millis(20),
            memory: ByteSize(16 << 20),
        }
    }
}

/// A size written like `"16MiB"`, `"512KiB"`, `"1GiB"` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let mult: usize = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "bad size {s:?}; write it like \"16MiB\""
                )));
            }
        };
        num.parse::<usize>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .map(ByteSize)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("bad size {s:?}; write it like \"16MiB\""))
            })
    }
}

/// A duration written like `"2s"`, `"150ms"`, `"15m"`, `"7d"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration {s:?} ({e}); write it like \"2s\", \"150ms\", \"15m\""
            ))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{source_name}: invalid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: key `{key}`: {message}")]
    Key {
        source_name: String,
        key: String,
        message: String,
    },
}

impl Config {
    /// Reads a config file, applies `GATEWAY__*` overrides from the process environment and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, &path.display().to_string(), base, std::env::vars())
    }

    /// Parses config text; `env` supplies the overrides (the process environment in production).
    pub fn parse(
        text: &str,
        source_name: &str,
        base_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value: toml::Table =
            toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Syntax {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?;
        let mut overridden = Vec::new();
        for (name, raw) in env {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
            if keys.iter().any(|k| k.is_empty()) {
                return Err(ConfigError::Key {
                    source_name: format!("environment variable {name}"),
                    key: keys.join("."),
                    message: "empty key segment".into(),
                });
            }
            set_path(&mut value, &keys, env_value(&raw));
            overridden.push(keys.join("."));
        }
        let de = toml::Value::Table(value);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let from_env = overridden.iter().any(|o| key.starts_with(o.as_str()));
            ConfigError::Key {
                source_name: if from_env {
                    format!("{source_name} (with GATEWAY__ overrides)")
                } else {
                    source_name.to_string()
                },
                key,
                message: e.into_inner().to_string(),
            }
        })?;
        config.base_dir = base_dir.to_path_buf();
        config.source = source_name.to_string();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Key {
            source_name: self.source.clone(),
            key: key.to_string(),
            message,
        };
        if let Err(why) = QueueConfig::check_concurrency(self.queue.concurrency) {
            return Err(bad("queue.concurrency", why));
        }
        if let Err(why) = QueueConfig::check_max_retries(self.queue.max_retries) {
            return Err(bad("queue.max_retries", why));
        }
        if self.queue.backoff_base.0.is_zero()
            || self.queue.backoff_max.0 < self.queue.backoff_base.0
        {
            return Err(bad(
                "queue.backoff_max",
                "backoff_base must be above zero and backoff_max at least backoff_base".into(),
            ));
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.len() < 32
        {
            return Err(bad(
                "auth.jwt_secret",
                format!("must be at least 32 bytes, got {}", secret.len()),
            ));
        }
        if self.auth.access_ttl.0 < Duration::from_secs(10) {
            return Err(bad("auth.access_ttl", "must be at least 10s".into()));
        }
        if self.auth.refresh_ttl.0 < self.auth.access_ttl.0 {
            return Err(bad(
                "auth.refresh_ttl",
                "must be at least access_ttl".into(),
            ));
        }
        if self.auth.login_max_failures == 0 {
            return Err(bad("auth.login_max_failures", "must be at least 1".into()));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(bad("server.max_body_bytes", "must be at least 1024".into()));
        }
        if self.server.header_timeout.0 < Duration::from_millis(100) {
            return Err(bad(
                "server.header_timeout",
                "must be at least 100ms".into(),
            ));
        }
        if self.server.request_timeout.0 < Duration::from_millis(100) {
            return Err(bad(
                "server.request_timeout",
                "must be at least 100ms".into(),
            ));
        }
        if self.server.max_connections < 16 {
            return Err(bad("server.max_connections", "must be at least 16".into()));
        }
        if self.server.max_event_streams == 0 {
            return Err(bad("server.max_event_streams", "must be at least 1".into()));
        }
        for w in &self.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(bad(
                    "webhooks.url",
                    format!("{:?} is not an http(s) URL", w.url),
                ));
            }
            if w.secret.len() < 16 {
                return Err(bad(
                    "webhooks.secret",
                    format!("the secret for {} must be at least 16 characters", w.url),
                ));
            }
            if w.max_attempts == 0 {
                return Err(bad("webhooks.max_attempts", "must be at least 1".into()));
            }
        }
        if self.queue.prune_interval.0 < Duration::from_millis(10) {
            return Err(bad("queue.prune_interval", "must be at least 10ms".into()));
        }
        let wd = &self.whatsapp.webdriver;
        if self.whatsapp.driver == DriverKind::Webdriver {
            if !(wd.web_url.starts_with("http://") || wd.web_url.starts_with("https://")) {
                return Err(bad(
                    "whatsapp.webdriver.web_url",
                    "must be an http(s) URL".into(),
                ));
            }
            for (key, d) in [
                ("ready_timeout", wd.ready_timeout),
                ("keepalive_interval", wd.keepalive_interval),
                ("session_timeout", wd.session_timeout),
                ("send_timeout", wd.send_timeout),
            ] {
                if d.0 < Duration::from_millis(100) {
                    return Err(bad(
                        &format!("whatsapp.webdriver.{key}"),
                        "must be at least 100ms".into(),
                    ));
                }
            }
            if wd.session_timeout.0 < wd.keepalive_interval.0 {
                return Err(bad(
                    "whatsapp.webdriver.session_timeout",
                    "must be at least keepalive_interval".into(),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut hooks = std::collections::HashSet::new();
        for p in &self.plugins {
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                return Err(bad(
                    "plugins",
                    format!("plugin names must be unique and not empty ({:?})", p.name),
                ));
            }
            if !hooks.insert(p.hook) {
                return Err(bad(
                    "plugins",
                    format!("two plugins for hook {}; one per hook", p.hook.as_str()),
                ));
            }
            if p.limits.time.0.is_zero() || p.limits.memory.0 < (1 << 20) {
                return Err(bad(
                    "plugins.limits",
                    format!(
                        "plugin {}: time must be above zero and memory at least 1MiB",
                        p.name
                    ),
                ));
            }
        }
        for name in self.templates.keys() {
            if name.is_empty() || name.len() > 64 {
                return Err(bad(
                    "templates",
                    format!("template name {name:?} must be 1 to 64 characters"),
                ));
            }
        }
        Ok(())
    }

    /// A path from the config, relative to the config file's folder unless absolute.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.storage.data_dir)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir().join("gateway.db")
    }
}

/// An environment value becomes an integer, float or boolean when it reads as one, else a string.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
        && !raw.contains(':')
    {
        return toml::Value::Float(f);
    }
    toml::Value::String(raw.to_string())
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    let (last, parents) = keys.split_last().expect("at least one key");
    let mut cur = table;
    for k in parents {
        let entry = cur
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    cur.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            "test.toml",
            Path::new("/etc/wa"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_committed_gateway_toml_documents_the_webdriver_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
        let c = Config::load(&path).expect("gateway.toml");
        let wd = &c.whatsapp.webdriver;
        let d = WebDriverConfig::default();
        assert_eq!(
            serde_json::to_value(&wd.selectors).unwrap(),
            serde_json::to_value(&d.selectors).unwrap(),
            "gateway.toml's selectors differ from the built-in defaults"
        );
        assert_eq!(wd.web_url, d.web_url);
        assert_eq!(wd.ready_timeout, d.ready_timeout);
        assert_eq!(wd.keepalive_interval, d.keepalive_interval);
        assert_eq!(wd.session_timeout, d.session_timeout);
        assert_eq!(wd.send_timeout, d.send_timeout);
        assert_eq!(wd.memory_limit, d.memory_limit);
        assert_eq!(wd.takeover_on_conflict, d.takeover_on_conflict);
    }

    #[test]
    fn empty_config_gets_documented_defaults() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.queue.concurrency, 3);
        assert_eq!(c.queue.max_retries, 5);
        assert_eq!(c.queue.backoff_base.0, Duration::from_secs(2));
        assert_eq!(c.queue.backoff_max.0, Duration::from_secs(32));
        assert_eq!(c.auth.access_ttl.0, Duration::from_secs(900));
        assert_eq!(c.whatsapp.sandbox.delay.0, Duration::from_millis(300));
        assert_eq!(c.data_dir(), PathBuf::from("/etc/wa/data"));
    }

    #[test]
    fn durations_parse_in_human_form() {
        let c = parse(
            "[queue]\nbackoff_base = \"150ms\"\nbackoff_max = \"15m\"",
            &[],
        )
        .unwrap();
        assert_eq!(c.queue.backoff_base.0, Duration::from_millis(150));
        assert_eq!(c.queue.backoff_max.0, Duration::from_secs(900));
    }

    #[test]
    fn bad_duration_names_key_and_file() {
        let err = parse("[queue]\nbackoff_base = \"soon\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("queue.backoff_base"), "{err}");
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let err = parse("[queue]\nconcurency = 4", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("concurency"), "{err}");
    }

    #[test]
    fn env_overrides_nested_keys_with_types() {
        let c = parse(
            "[queue]\nconcurrency = 3",
            &[
                ("GATEWAY__QUEUE__CONCURRENCY", "7"),
                ("GATEWAY__SERVER__BIND", "0.0.0.0:9000"),
                ("GATEWAY__WHATSAPP__SANDBOX__DELAY", "0ms"),
                ("GATEWAY__TEMPLATES__OTP", "code {{code}}"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.queue.concurrency, 7);
        assert_eq!(c.server.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.whatsapp.sandbox.delay.0, Duration::ZERO);
        assert_eq!(c.templates["otp"], "code {{code}}");
    }

    #[test]
    fn unknown_env_key_is_an_error_naming_it() {
        let err = parse("", &[("GATEWAY__QUEUE__SPEED", "9")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("queue") && err.contains("speed"), "{err}");
        assert!(err.contains("GATEWAY__"), "{err}");
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let err = parse("[auth]\njwt_secret = \"short\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.jwt_secret"), "{err}");
        assert!(
            !err.contains("short\""),
            "the secret itself must not be echoed: {err}"
        );
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let c = parse(
            "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef-x\"",
            &[],
        )
        .unwrap();
        let dbg = format!("{:?}", c.auth);
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
    }
}
