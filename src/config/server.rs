//! `[server]`, `[storage]` and `[log]`: where the gateway listens and with what limits, where
//! it keeps its data, and how it logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Dur, Invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
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

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.max_body_bytes < 1024 {
            return Err(Invalid::new(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        for (key, d) in [
            ("server.header_timeout", self.header_timeout),
            ("server.request_timeout", self.request_timeout),
        ] {
            if d.0 < Duration::from_millis(100) {
                return Err(Invalid::new(key, "must be at least 100ms"));
            }
        }
        if self.max_connections < 16 {
            return Err(Invalid::new(
                "server.max_connections",
                "must be at least 16",
            ));
        }
        if self.max_event_streams == 0 {
            return Err(Invalid::new(
                "server.max_event_streams",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// `postgres://user:password@host/db` puts the queue, users and sessions in PostgreSQL
    /// (several nodes may share it); unset, they live in SQLite at `<data_dir>/gateway.db`.
    /// `DATABASE_URL` sets it too. Never printed: it may hold a password.
    #[serde(skip_serializing)]
    pub database_url: Option<SecretString>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
        }
    }
}

impl StorageConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(url) = &self.database_url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(Invalid::new(
                    "storage.database_url",
                    "must be a PostgreSQL URL (postgres://user:password@host:port/database); leave it unset for SQLite",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `wa_gateway=debug,info`. `RUST_LOG` wins when set.
    pub level: String,
    /// `text` (readable lines) or `json` (one object per line, for log shippers).
    #[serde(alias = "log_format")]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
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
