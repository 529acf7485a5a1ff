//! The places where deployment rules decide: format a number, classify a failure, render a
//! template, assign a priority, and pace a session's sends.
//!
//! One trait, so the WASM plugin host can take over each hook; [`Builtin`] holds the neutral
//! rules used when no plugin is configured.

use std::time::Duration;

use crate::domain::Priority;

/// A message about to be queued, as the priority hook sees it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub number: String,
    pub chat_id: String,
    pub text: String,
    pub template: Option<String>,
    pub requested: Option<Priority>,
    pub metadata: Vec<(String, String)>,
}

/// A failed send attempt, as the classifier sees it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again: after this delay, or the queue's backoff when `None`.
    Retry(Option<Duration>),
    /// Give up now, with a reason.
    Permanent(String),
}

/// A message the pacer is about to let go, with what its session sent lately: the pace hook's
/// question. Times are Unix milliseconds.
#[derive(Debug, Clone)]
pub struct PaceRequest {
    pub session: String,
    pub chat_id: String,
    pub number: String,
    pub text: String,
    pub priority: Priority,
    /// The session's rules in force (`[pacing]` and its own): what the built-in rule applies.
    pub rules: wa_pacing::Rules,
    /// The session's own rules only (key, written value): a plugin applies them over its config.
    pub overrides: Vec<(String, String)>,
    pub now: i64,
    /// Milliseconds since midnight in the session's time zone.
    pub local_ms: u32,
    /// The session's sends of the last 24 hours, oldest first.
    pub recent: Vec<wa_pacing::Sent>,
    /// Its sends to this chat in the last hour, oldest first.
    pub to_recipient: Vec<i64>,
    pub first_contact: bool,
    /// Whole days since the number was linked.
    pub day: Option<u32>,
    pub gap_draw: u32,
}

impl PaceRequest {
    pub fn facts(&self) -> wa_pacing::Facts<'_> {
        wa_pacing::Facts {
            now: self.now,
            local_ms: self.local_ms,
            recent: &self.recent,
            to_recipient: &self.to_recipient,
            first_contact: self.first_contact,
            day: self.day,
            high_priority: self.priority == Priority::High,
            gap_draw: self.gap_draw,
        }
    }
}

/// The pace hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paced {
    Now,
    /// Not before `until`, for `reason` (a rule's name); `this_message_only` when the rule holds
    /// back only this message (its recipient, a first contact), not the whole session.
    Defer {
        until: i64,
        reason: String,
        this_message_only: bool,
    },
}

impl From<wa_pacing::Decision> for Paced {
    fn from(d: wa_pacing::Decision) -> Paced {
        match d {
            wa_pacing::Decision::Now => Paced::Now,
            wa_pacing::Decision::Defer { until, rule } => Paced::Defer {
                until,
                reason: rule.as_str().to_string(),
                this_message_only: rule.is_per_message(),
            },
        }
    }
}

/// A message someone sent to a session, as the on-message hook sees it.
#[derive(Debug, Clone)]
pub struct Received {
    pub session: String,
    pub number: String,
    pub chat_id: String,
    pub text: String,
    pub media_type: Option<String>,
    pub at: i64,
}

/// The on-message hook's answer: a text to send back, and whether to put the sender on the
/// session's opt-out list (with the reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub reply: Option<String>,
    pub opt_out: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    /// The rule said no (a bad number, a missing variable): the client's input is at fault.
    #[error("{0}")]
    Rejected(String),
    /// The hook itself broke (a plugin trapped or ran out of time): the gateway is at fault.
    #[error("plugin {plugin} failed: {reason}")]
    Failed { plugin: String, reason: String },
}

pub trait Hooks: Send + Sync + 'static {
    /// Raw input → digits in full international form.
    fn format_number(&self, raw: &str) -> Result<String, HookError>;
    fn classify_error(&self, failure: &Failure) -> Verdict;
    fn render(&self, template: &str, variables: &[(String, String)]) -> Result<String, HookError>;
    fn assign_priority(&self, message: &Outgoing) -> Result<Priority, HookError>;
    /// May the message go now? A failing plugin falls back to the built-in rules.
    fn pace(&self, request: &PaceRequest) -> Paced;
    /// What to do about a received message; nothing unless a plugin says.
    fn on_message(&self, _message: &Received) -> Answer {
        Answer::default()
    }
}

/// Neutral rules: digits only with no country logic, the design's error table, `{{name}}`
/// substitution, and the requested priority or normal.
#[derive(Debug, Default, Clone, Copy)]
pub struct Builtin;

/// Codes the design lists as permanent; every other code is retried.
pub const PERMANENT_CODES: &[&str] = &[
    "not-registered",
    "invalid-number",
    "blocked",
    "rate-limited",
    "media-missing",
    "media-rejected",
    "opted-out",
];

impl Hooks for Builtin {
    fn format_number(&self, raw: &str) -> Result<String, HookError> {
        let trimmed = raw.trim();
        let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(HookError::Rejected(format!(
                        "unexpected character {c:?}: use digits, spaces, dashes, dots, parentheses and a leading +"
                    )));
                }
            }
        }
        // The length rule (8 to 15 digits) is `PhoneNumber::parse`'s, applied to every
        // formatter's answer.
        Ok(digits)
    }

    fn classify_error(&self, failure: &Failure) -> Verdict {
        if PERMANENT_CODES.contains(&failure.code.as_str()) {
            Verdict::Permanent(failure.code.clone())
        } else {
            Verdict::Retry(None)
        }
    }

    fn render(&self, template: &str, variables: &[(String, String)]) -> Result<String, HookError> {
        render_placeholders(template, variables)
    }

    fn assign_priority(&self, message: &Outgoing) -> Result<Priority, HookError> {
        Ok(message.requested.unwrap_or(Priority::Normal))
    }

    fn pace(&self, request: &PaceRequest) -> Paced {
        wa_pacing::decide(&request.rules, &request.facts()).into()
    }
}

/// `{{name}}` (spaces inside the braces allowed) → the variable's value; a missing one is an error.
pub fn render_placeholders(
    template: &str,
    variables: &[(String, String)],
) -> Result<String, HookError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(HookError::Rejected("unclosed `{{` in template".into()));
        };
        let name = after[..end].trim();
        match variables.iter().find(|(k, _)| k == name) {
            Some((_, v)) => out.push_str(v),
            None => return Err(HookError::Rejected(format!("missing variable `{name}`"))),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_format_keeps_digits_without_country_rules() {
        let b = Builtin;
        assert_eq!(
            b.format_number("+62 812-3456-7890").unwrap(),
            "6281234567890"
        );
        assert_eq!(b.format_number("(0812) 3456.7890").unwrap(), "081234567890");
        // Too short: the formatter keeps the digits, and PhoneNumber::parse (the one length
        // rule, applied to every formatter's answer) refuses them.
        let short = b.format_number("12345").unwrap();
        assert!(crate::domain::PhoneNumber::parse(&short).is_err());
        assert!(b.format_number("0812abc67890").is_err());
    }

    #[test]
    fn builtin_classification_follows_the_design_table() {
        let b = Builtin;
        let f = |code: &str| Failure {
            code: code.into(),
            message: String::new(),
            attempt: 1,
        };
        for code in PERMANENT_CODES {
            assert!(
                matches!(b.classify_error(&f(code)), Verdict::Permanent(_)),
                "{code}"
            );
        }
        for code in [
            "session-closed",
            "protocol-error",
            "timeout",
            "not-ready",
            "something-new",
        ] {
            assert_eq!(b.classify_error(&f(code)), Verdict::Retry(None), "{code}");
        }
    }

    #[test]
    fn placeholders_are_filled_and_missing_ones_named() {
        let vars = vec![
            ("name".to_string(), "Ani".to_string()),
            ("code".into(), "42".into()),
        ];
        assert_eq!(
            render_placeholders("Hi {{name}}, code {{ code }}.", &vars).unwrap(),
            "Hi Ani, code 42."
        );
        let err = render_placeholders("Hi {{who}}", &vars).unwrap_err();
        assert!(err.to_string().contains("`who`"));
        assert!(render_placeholders("Hi {{name", &vars).is_err());
    }
}
