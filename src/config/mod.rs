//! `gateway.toml`, parsed once at start-up into typed values, one file per section with its
//! own `validate`.
//!
//! Every key can be overridden from the environment as `GATEWAY__<SECTION>__<KEY>` (e.g.
//! `GATEWAY__QUEUE__CONCURRENCY=5`, `GATEWAY__AUTH__JWT_SECRET=...`), typed by the field it sets
//! (`env.rs`). Unknown keys, bad durations and unreadable files stop start-up with a message that
//! names the key and the file.

mod auth;
mod cluster;
mod env;
mod media;
mod pacing;
mod plugins;
mod queue;
mod server;
mod sessions;
mod units;
mod webhooks;
mod whatsapp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use auth::AuthConfig;
pub use cluster::ClusterConfig;
pub use env::ENV_PREFIX;
pub use media::MediaConfig;
pub use pacing::{Pacing, PacingConfig, PacingOverrides};
pub use plugins::{PluginConfig, PluginHook, PluginLimits};
pub use queue::QueueConfig;
pub use server::{LogConfig, LogFormat, ServerConfig, StorageConfig};
pub use sessions::{SessionConfig, valid_session_name};
pub use units::{ByteSize, Dur, whole_number, whole_number_or_null, whole_numbers_or_null};
pub use webhooks::WebhookConfig;
pub use whatsapp::{DriverKind, SandboxConfig, Selectors, WebDriverConfig, WhatsAppConfig};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
    /// This node among the nodes on one database.
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub whatsapp: WhatsAppConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Per-session send limits that keep numbers from being banned.
    #[serde(default)]
    pub pacing: PacingConfig,
    /// Files sent with messages: size, types, fetching from URLs.
    #[serde(default)]
    pub media: MediaConfig,
    /// Message templates by name: `otp = "Your code is {{code}}"`.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// WASM plugins, at most one per hook; a hook with none uses the built-in rule.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Receivers of signed event deliveries.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// WhatsApp accounts besides `default`, created on start if missing.
    #[serde(default)]
    pub sessions: Vec<SessionConfig>,
    /// The folder relative paths are resolved against (the config file's folder).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where the config came from, for messages.
    #[serde(skip)]
    pub source: String,
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

/// A section's verdict on one of its keys; [`Config::parse`] adds where the config came from.
#[derive(Debug)]
pub(crate) struct Invalid {
    key: String,
    message: String,
}

impl Invalid {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
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
        let shape = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        let overridden = env::apply(&mut value, &shape, env.iter().cloned())?;
        env::database_url(&mut value, &env);
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
        config.validate().map_err(|i| ConfigError::Key {
            source_name: source_name.to_string(),
            key: i.key,
            message: i.message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        self.storage.validate()?;
        self.auth.validate()?;
        self.queue.validate()?;
        self.cluster.validate()?;
        self.whatsapp.validate()?;
        self.pacing.validate()?;
        self.media.validate()?;
        plugins::validate(&self.plugins)?;
        sessions::validate(&self.sessions)?;
        for w in &self.webhooks {
            w.validate()?;
        }
        for name in self.templates.keys() {
            if name.is_empty() || name.len() > 64 {
                return Err(Invalid::new(
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

    /// Where the browser keeps the login: `profile_dir`, or `<data_dir>/browser-profile`.
    /// Where a session's browser keeps its login: `<data_dir>/sessions/<name>/browser-profile`;
    /// for `default`, `[whatsapp.webdriver] profile_dir` when set.
    pub fn browser_profile(&self, session: &str) -> PathBuf {
        match &self.whatsapp.webdriver.profile_dir {
            Some(p) if session == "default" => self.resolve(p),
            _ => self.session_dir(session).join("browser-profile"),
        }
    }

    /// A session's own folder under `data_dir`.
    pub fn session_dir(&self, session: &str) -> PathBuf {
        self.data_dir().join("sessions").join(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert_eq!(
            serde_json::to_value(&c.media).unwrap(),
            serde_json::to_value(MediaConfig::default()).unwrap(),
            "gateway.toml's [media] differs from the built-in defaults"
        );
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

    #[test]
    fn no_secret_is_ever_in_debug_output() {
        let c = parse(
            "[auth]\njwt_secret = \"jwt-0123456789abcdef0123456789abcdef\"\n\
             [[webhooks]]\nurl = \"https://example.com/hook\"\nsecret = \"hook-secret-0123456789\"\n",
            &[],
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("jwt-0123"), "{dbg}");
        assert!(!dbg.contains("hook-secret"), "{dbg}");
        assert!(dbg.contains("example.com/hook"), "the rest is still shown");
    }

    #[test]
    fn database_url_comes_from_the_file_or_database_url_and_is_never_shown() {
        use secrecy::ExposeSecret;
        let url = |c: &Config| {
            c.storage
                .database_url
                .as_ref()
                .map(|u| u.expose_secret().to_string())
        };
        assert_eq!(url(&parse("", &[]).unwrap()), None);
        let from_env = parse("", &[("DATABASE_URL", "postgres://u:pw-123@db/wa")]).unwrap();
        assert_eq!(url(&from_env).as_deref(), Some("postgres://u:pw-123@db/wa"));
        assert!(!format!("{from_env:?}").contains("pw-123"));
        // The file, then GATEWAY__, win over DATABASE_URL.
        let file = parse(
            "[storage]\ndatabase_url = \"postgres://file/wa\"",
            &[("DATABASE_URL", "postgres://env/wa")],
        )
        .unwrap();
        assert_eq!(url(&file).as_deref(), Some("postgres://file/wa"));
        let ours = parse(
            "",
            &[
                ("DATABASE_URL", "postgres://env/wa"),
                ("GATEWAY__STORAGE__DATABASE_URL", "postgresql://ours/wa"),
            ],
        )
        .unwrap();
        assert_eq!(url(&ours).as_deref(), Some("postgresql://ours/wa"));
        let err = parse("[storage]\ndatabase_url = \"mysql://pw-456@x/y\"", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage.database_url") && !err.contains("pw-456"),
            "{err}"
        );
    }
}
