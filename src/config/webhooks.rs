//! `[[webhooks]]`: receivers of signed event deliveries. A webhook's secret is a
//! [`SecretString`]: its `Debug` is redacted, so nothing prints it.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::Invalid;

/// `[[webhooks]]`: where events are delivered, signed with `secret`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Event names (`job.waiting`, `job.active`, `job.completed`, `job.failed`,
    /// `message.delivered`, `message.read`, `message.received`, `whatsapp.state`, `whatsapp.qr`,
    /// `session.cooldown`),
    /// or `*` for all.
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    /// HMAC-SHA256 key for the signature header; at least 16 characters.
    #[serde(skip_serializing)]
    pub secret: SecretString,
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
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Invalid::new(
                "webhooks.url",
                format!("{:?} is not an http(s) URL", self.url),
            ));
        }
        if self.secret.expose_secret().chars().count() < 16 {
            return Err(Invalid::new(
                "webhooks.secret",
                format!("the secret for {} must be at least 16 characters", self.url),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Invalid::new("webhooks.max_attempts", "must be at least 1"));
        }
        Ok(())
    }

    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event)
    }
}
