//! error-classifier: the design's table, with config to move codes and set delays.
//!
//! Retryable by default: session-closed, protocol-error, timeout, not-ready, and any unknown code.
//! Permanent by default: not-registered, invalid-number, blocked, rate-limited, media-missing,
//! media-rejected, opted-out.
//! Config (all optional): `retryable = "rate-limited"` and `permanent = "timeout,not-ready"`
//! (comma-separated codes to move), `delay_<code> = "60000"` (milliseconds before retrying that
//! code, instead of the queue's backoff).

wit_bindgen::generate!({ world: "error-classifier", path: "../../wit" });

pub const PERMANENT: &[&str] = &[
    "not-registered",
    "invalid-number",
    "blocked",
    "rate-limited",
    "media-missing",
    "media-rejected",
    "opted-out",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Retry(Option<u64>),
    Permanent(String),
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The decision for a failure code, given a config lookup.
pub fn decide(code: &str, get: impl Fn(&str) -> Option<String>) -> Decision {
    let permanent = if list(get("retryable")).iter().any(|c| c == code) {
        false
    } else {
        list(get("permanent")).iter().any(|c| c == code) || PERMANENT.contains(&code)
    };
    if permanent {
        return Decision::Permanent(code.to_string());
    }
    let delay = get(&format!("delay_{code}")).and_then(|v| v.trim().parse::<u64>().ok());
    Decision::Retry(delay)
}

struct Plugin;

impl Guest for Plugin {
    fn classify_error(failure: Failure) -> Verdict {
        match decide(&failure.code, wa_gateway::plugin::host::config) {
            Decision::Retry(d) => Verdict::Retry(d),
            Decision::Permanent(reason) => Verdict::Permanent(reason),
        }
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn follows_the_design_table_by_default() {
        for code in PERMANENT {
            assert_eq!(decide(code, none), Decision::Permanent(code.to_string()));
        }
        for code in [
            "session-closed",
            "protocol-error",
            "timeout",
            "not-ready",
            "brand-new",
        ] {
            assert_eq!(decide(code, none), Decision::Retry(None), "{code}");
        }
    }

    #[test]
    fn config_moves_codes_and_sets_delays() {
        let cfg = |k: &str| match k {
            "retryable" => Some("rate-limited".to_string()),
            "permanent" => Some("timeout, not-ready".to_string()),
            "delay_rate-limited" => Some("60000".to_string()),
            _ => None,
        };
        assert_eq!(decide("rate-limited", cfg), Decision::Retry(Some(60_000)));
        assert_eq!(
            decide("timeout", cfg),
            Decision::Permanent("timeout".into())
        );
        assert_eq!(
            decide("not-ready", cfg),
            Decision::Permanent("not-ready".into())
        );
        assert_eq!(decide("session-closed", cfg), Decision::Retry(None));
    }
}
