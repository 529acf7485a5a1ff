//! `[[sessions]]`: WhatsApp accounts declared in the file, created on start when the database
//! has none of that name (after that, the API and the database own them). The `default`
//! session comes from `[whatsapp]` and needs no entry.

use serde::{Deserialize, Serialize};

use super::{ByteSize, DriverKind, Invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// `^[a-z0-9][a-z0-9_-]{0,31}$`.
    pub name: String,
    /// Default: `[whatsapp] driver`.
    #[serde(default)]
    pub driver: Option<DriverKind>,
    /// Start it with the gateway (default true).
    #[serde(default = "yes")]
    pub start: bool,
    /// Sends at once; default 1 for webdriver, the queue's `concurrency` for the sandbox.
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub paused: bool,
    /// Extra browser flags for this session only (e.g. `--proxy-server=...`).
    #[serde(default)]
    pub browser_args: Vec<String>,
    /// Default: `[whatsapp.webdriver] memory_limit`.
    #[serde(default)]
    pub memory_limit: Option<ByteSize>,
}

fn yes() -> bool {
    true
}

/// True for a valid session name: `^[a-z0-9][a-z0-9_-]{0,31}$`.
pub fn valid_session_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

pub(super) fn validate(sessions: &[SessionConfig]) -> Result<(), Invalid> {
    let mut seen = std::collections::HashSet::new();
    for (i, s) in sessions.iter().enumerate() {
        if !valid_session_name(&s.name) {
            return Err(Invalid::new(
                format!("sessions[{i}].name"),
                format!("{:?} must match ^[a-z0-9][a-z0-9_-]{{0,31}}$", s.name),
            ));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(Invalid::new(
                format!("sessions[{i}].name"),
                format!("{:?} is declared twice", s.name),
            ));
        }
        if let Some(c) = s.concurrency {
            super::QueueConfig::check_concurrency(c)
                .map_err(|m| Invalid::new(format!("sessions[{i}].concurrency"), m))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_session_name;

    #[test]
    fn session_names_follow_the_documented_pattern() {
        for ok in ["default", "sales", "a", "0", "shop-2_b", &"x".repeat(32)] {
            assert!(valid_session_name(ok), "{ok}");
        }
        for bad in ["", "Sales", "-a", "_a", "a b", "a.b", "é", &"x".repeat(33)] {
            assert!(!valid_session_name(bad), "{bad}");
        }
    }
}
