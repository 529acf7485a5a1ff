//! priority-rules: the client's requested priority, else rules from config, else normal.
//!
//! Config (all optional, comma-separated): `high_templates = "otp"`, `low_templates = "promo"`,
//! `high_keywords = "OTP,verification code"`, `low_keywords = "promo,discount"`. Keywords match
//! the text case-insensitively; templates match the template's name exactly. High rules win.

// wit-bindgen flattens the `outgoing` record into the export's arguments.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "priority-assigner", path: "../../wit" });

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    High,
    Normal,
    Low,
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The priority for a message with no requested priority.
pub fn by_rules(template: Option<&str>, text: &str, get: impl Fn(&str) -> Option<String>) -> Level {
    let lower = text.to_lowercase();
    let matches = |kind: &str| {
        let by_template = template.is_some_and(|t| {
            list(get(&format!("{kind}_templates")))
                .iter()
                .any(|x| x == t)
        });
        let by_keyword = list(get(&format!("{kind}_keywords")))
            .iter()
            .any(|k| lower.contains(&k.to_lowercase()));
        by_template || by_keyword
    };
    if matches("high") {
        Level::High
    } else if matches("low") {
        Level::Low
    } else {
        Level::Normal
    }
}

struct Plugin;

impl Guest for Plugin {
    fn assign_priority(message: Outgoing) -> Priority {
        if let Some(p) = message.requested {
            return p;
        }
        match by_rules(
            message.template.as_deref(),
            &message.text,
            wa_gateway::plugin::host::config,
        ) {
            Level::High => Priority::High,
            Level::Normal => Priority::Normal,
            Level::Low => Priority::Low,
        }
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(k: &str) -> Option<String> {
        match k {
            "high_templates" => Some("otp".into()),
            "high_keywords" => Some("OTP, verification code".into()),
            "low_keywords" => Some("promo,discount".into()),
            _ => None,
        }
    }

    #[test]
    fn templates_and_keywords_set_the_priority() {
        assert_eq!(by_rules(Some("otp"), "anything", cfg), Level::High);
        assert_eq!(
            by_rules(None, "Your Verification Code is 1234", cfg),
            Level::High
        );
        assert_eq!(by_rules(None, "Big PROMO today", cfg), Level::Low);
        assert_eq!(
            by_rules(None, "promo: your OTP is 1", cfg),
            Level::High,
            "high wins"
        );
        assert_eq!(by_rules(None, "hello", cfg), Level::Normal);
        assert_eq!(by_rules(Some("welcome"), "hello", |_| None), Level::Normal);
    }
}
