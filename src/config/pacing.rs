//! `[pacing]`: the rules that keep a number from being banned, for every session; each session
//! may set its own through the sessions API ([`PacingOverrides`]). The rules themselves live in
//! the `wa-pacing` crate, shared with the bundled pacing plugin.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Dur, Invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    /// Pace sends at all (false: as fast as the driver goes).
    pub enabled: bool,
    /// A random gap between two sends of a session, uniform in the range.
    pub gap: String,
    /// Caps over sliding windows of what was really sent; 0 is no cap.
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    /// Messages to one chat per hour.
    pub per_recipient_per_hour: u32,
    /// Messages per day to numbers the session never exchanged messages with.
    pub first_contact_per_day: u32,
    /// Daily caps on a newly linked number's first days, then `per_day`.
    pub warmup: Vec<u32>,
    /// Local time window with no sends, e.g. "21:00-08:00"; "off" for none.
    pub quiet_hours: String,
    /// IANA time zone of `quiet_hours`, e.g. "Asia/Jakarta".
    pub timezone: String,
    /// How long the recipient sees "typing…" before a text goes (webdriver).
    pub typing: String,
    /// How long a session rests after a sign of trouble (rate-limited, a block page).
    pub cooldown: Dur,
}

impl Default for PacingConfig {
    fn default() -> Self {
        let r = wa_pacing::Rules::defaults();
        let n = |c: Option<u32>| c.unwrap_or(0);
        PacingConfig {
            enabled: true,
            gap: "3s..8s".into(),
            per_minute: n(r.per_minute),
            per_hour: n(r.per_hour),
            per_day: n(r.per_day),
            per_recipient_per_hour: n(r.per_recipient_per_hour),
            first_contact_per_day: n(r.first_contact_per_day),
            warmup: r.warmup,
            quiet_hours: "off".into(),
            timezone: "UTC".into(),
            typing: "40ms/char, max 6s".into(),
            cooldown: Dur::secs(3600),
        }
    }
}

/// A session's own pacing, over `[pacing]`: each field set replaces the file's value. Caps take
/// 0 for no cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PacingOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// e.g. "3s..8s" (units ms, s, m, h, d).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,9}(ms|s|m|h|d)(\.\.[0-9]{1,9}(ms|s|m|h|d))?$"))]
    pub gap: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole_number_or_null"
    )]
    #[schemars(range(max = u32::MAX))]
    pub per_minute: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole_number_or_null"
    )]
    #[schemars(range(max = u32::MAX))]
    pub per_hour: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole_number_or_null"
    )]
    #[schemars(range(max = u32::MAX))]
    pub per_day: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole_number_or_null"
    )]
    #[schemars(range(max = u32::MAX))]
    pub per_recipient_per_hour: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole_number_or_null"
    )]
    #[schemars(range(max = u32::MAX))]
    pub first_contact_per_day: Option<u32>,
    /// Daily caps of a new number's first days, e.g. [20, 40, 80, 160, 320].
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole_numbers_or_null"
    )]
    #[schemars(length(max = wa_pacing::MAX_WARMUP_DAYS), extend("items" = {"type": "integer", "minimum": 1, "maximum": 4294967295u64}))]
    pub warmup: Option<Vec<u32>>,
    /// e.g. "21:00-08:00", or "off".
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(off|([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9])$"
    ))]
    pub quiet_hours: Option<String>,
    /// IANA name, e.g. "Asia/Jakarta".
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "timezone_schema")]
    pub timezone: Option<String>,
    /// e.g. "40ms/char, max 6s", or "off".
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(off|[0-9]{1,6}(ms|s)/char, *max *[0-9]{1,6}(ms|s|m))$"))]
    pub typing: Option<String>,
    /// e.g. "1h".
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,9}(ms|s|m|h|d)$"))]
    pub cooldown: Option<String>,
}

/// Every IANA name the gateway knows (its bundled time zone database).
fn timezone_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .collect();
    names.sort();
    names.push("UTC".into());
    names.dedup();
    let mut values: Vec<serde_json::Value> = names.into_iter().map(Into::into).collect();
    values.push(serde_json::Value::Null);
    schemars::json_schema!({
        "type": ["string", "null"],
        "description": "IANA time zone name, e.g. \"Asia/Jakarta\".",
        "enum": values,
    })
}

impl PacingOverrides {
    /// The rules this sets, as the pace plugin hook receives them (`key`, written value).
    pub fn rule_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v));
            }
        };
        put("gap", self.gap.clone());
        put("per_minute", self.per_minute.map(|n| n.to_string()));
        put("per_hour", self.per_hour.map(|n| n.to_string()));
        put("per_day", self.per_day.map(|n| n.to_string()));
        put(
            "per_recipient_per_hour",
            self.per_recipient_per_hour.map(|n| n.to_string()),
        );
        put(
            "first_contact_per_day",
            self.first_contact_per_day.map(|n| n.to_string()),
        );
        put("warmup", self.warmup.as_ref().map(|w| join(w)));
        put("quiet_hours", self.quiet_hours.clone());
        out
    }
}

fn join(w: &[u32]) -> String {
    w.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// A session's pacing in force: the file's, with the session's own on top.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub enabled: bool,
    pub rules: wa_pacing::Rules,
    /// The session's own rules, for the pace plugin (which has its own defaults).
    pub overrides: Vec<(String, String)>,
    pub timezone: jiff::tz::TimeZone,
    /// (ms per character, most ms) of "typing…".
    pub typing: (u64, u64),
    pub cooldown: Duration,
}

impl Pacing {
    /// How long "typing…" shows for a text of `chars` characters.
    pub fn typing_for(&self, chars: usize) -> Duration {
        let (per, max) = self.typing;
        Duration::from_millis(per.saturating_mul(chars as u64).min(max))
    }
}

impl PacingConfig {
    /// The pacing in force for a session with `own` settings; why not, naming the setting.
    pub fn resolve(&self, own: &PacingOverrides) -> Result<Pacing, String> {
        let mut rules = wa_pacing::Rules::none();
        let file = [
            ("gap", self.gap.clone()),
            ("per_minute", self.per_minute.to_string()),
            ("per_hour", self.per_hour.to_string()),
            ("per_day", self.per_day.to_string()),
            (
                "per_recipient_per_hour",
                self.per_recipient_per_hour.to_string(),
            ),
            (
                "first_contact_per_day",
                self.first_contact_per_day.to_string(),
            ),
            ("warmup", join(&self.warmup)),
            ("quiet_hours", self.quiet_hours.clone()),
        ];
        let overrides = own.rule_pairs();
        for (k, v) in file
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            rules.set(k, v)?;
        }
        let tz_name = own.timezone.as_deref().unwrap_or(&self.timezone);
        let timezone = jiff::tz::TimeZone::get(tz_name)
            .map_err(|_| format!("timezone: {tz_name:?} is not an IANA time zone name"))?;
        let typing = wa_pacing::parse_typing(own.typing.as_deref().unwrap_or(&self.typing))?;
        let cooldown = match &own.cooldown {
            Some(c) => Duration::from_millis(
                wa_pacing::parse_duration_ms(c).map_err(|e| format!("cooldown: {e}"))?,
            ),
            None => self.cooldown.0,
        };
        Ok(Pacing {
            enabled: own.enabled.unwrap_or(self.enabled),
            rules,
            overrides,
            timezone,
            typing,
            cooldown,
        })
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        self.resolve(&PacingOverrides::default())
            .map(|_| ())
            .map_err(|m| Invalid::new("pacing", m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_s_own_rules_replace_the_file_s_one_by_one() {
        let file = PacingConfig::default();
        let base = file.resolve(&PacingOverrides::default()).unwrap();
        assert_eq!(base.rules, wa_pacing::Rules::defaults());
        assert_eq!(base.typing_for(10), Duration::from_millis(400));
        assert_eq!(base.typing_for(1000), Duration::from_secs(6));
        let own = PacingOverrides {
            per_hour: Some(0),
            gap: Some("1s..2s".into()),
            timezone: Some("Asia/Jakarta".into()),
            ..Default::default()
        };
        let p = file.resolve(&own).unwrap();
        assert_eq!((p.rules.per_hour, p.rules.gap), (None, (1_000, 2_000)));
        assert_eq!(p.rules.per_day, Some(1_000));
        assert_eq!(p.overrides.len(), 2);
        let bad = PacingOverrides {
            timezone: Some("Mars/Olympus".into()),
            ..Default::default()
        };
        assert!(file.resolve(&bad).unwrap_err().contains("IANA"));
    }
}
