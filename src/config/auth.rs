//! `[auth]`: token lifetimes, the JWT secret, login throttling.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Dur, Invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub access_ttl: Dur,
    pub refresh_ttl: Dur,
    /// HS256 secret, at least 32 bytes. Unset: generated into `<data_dir>/jwt-secret` (0600).
    /// Never printed: its `Debug` is redacted.
    #[serde(skip_serializing)]
    pub jwt_secret: Option<SecretString>,
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

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(secret) = &self.jwt_secret {
            let len = secret.expose_secret().len();
            if len < 32 {
                return Err(Invalid::new(
                    "auth.jwt_secret",
                    format!("must be at least 32 bytes, got {len}"),
                ));
            }
        }
        if self.access_ttl.0 < Duration::from_secs(10) {
            return Err(Invalid::new("auth.access_ttl", "must be at least 10s"));
        }
        if self.refresh_ttl.0 < self.access_ttl.0 {
            return Err(Invalid::new(
                "auth.refresh_ttl",
                "must be at least access_ttl",
            ));
        }
        if self.login_max_failures == 0 {
            return Err(Invalid::new(
                "auth.login_max_failures",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
