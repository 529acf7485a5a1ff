//! pacing: the gateway's own pacing rules (the `wa-pacing` crate, which the built-in pacer runs
//! too) as a plugin, so that a deployment can start from them and change them.
//!
//! Config (all optional; unset keys keep the documented defaults): `gap = "3s..8s"`,
//! `per_minute`, `per_hour`, `per_day`, `per_recipient_per_hour`, `first_contact_per_day` (a
//! number; `0` or `off`: no cap), `warmup = "20,40,80,160,320"`, `quiet_hours = "21:00-08:00"`.
//! A session's own rules (set through the sessions API) apply over these. A value that does not
//! parse is logged and skipped. Quiet hours use the local time the gateway passes, in the
//! session's `[pacing] timezone`.

wit_bindgen::generate!({ world: "pacer", path: "../../wit" });

use wa_gateway::plugin::host::{self, Level};
use wa_gateway::plugin::types::Deferral;

/// The rules: the defaults, then this plugin's config, then the session's own.
pub fn rules(
    config: impl Fn(&str) -> Option<String>,
    own: &[(String, String)],
) -> (wa_pacing::Rules, Vec<String>) {
    let mut rules = wa_pacing::Rules::defaults();
    let mut problems = Vec::new();
    let from_config = wa_pacing::Rules::KEYS
        .iter()
        .filter_map(|k| config(k).map(|v| (k.to_string(), v)));
    for (k, v) in from_config.chain(own.iter().cloned()) {
        if let Err(e) = rules.set(&k, &v) {
            problems.push(e);
        }
    }
    (rules, problems)
}

struct Plugin;

impl Guest for Plugin {
    fn pace(r: PaceRequest) -> PaceVerdict {
        let (rules, problems) = rules(host::config, &r.rules);
        for p in problems {
            host::log(Level::Warn, &format!("ignored: {p}"));
        }
        let recent: Vec<wa_pacing::Sent> = r
            .recent
            .iter()
            .map(|s| wa_pacing::Sent {
                at: s.at as i64,
                first_contact: s.first_contact,
            })
            .collect();
        let to_recipient: Vec<i64> = r.to_recipient.iter().map(|&t| t as i64).collect();
        let facts = wa_pacing::Facts {
            now: r.now as i64,
            local_ms: r.local_ms,
            recent: &recent,
            to_recipient: &to_recipient,
            first_contact: r.first_contact,
            day: r.day,
            high_priority: matches!(r.priority, wa_gateway::plugin::types::Priority::High),
            gap_draw: r.gap_draw,
        };
        match wa_pacing::decide(&rules, &facts) {
            wa_pacing::Decision::Now => PaceVerdict::Now,
            wa_pacing::Decision::Defer { until, rule } => PaceVerdict::Defer(Deferral {
                until: until.max(0) as u64,
                reason: rule.as_str().to_string(),
                this_message_only: rule.is_per_message(),
            }),
        }
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    #[test]
    fn config_then_the_session_s_own_rules_apply_over_the_defaults() {
        let config = |k: &str| match k {
            "per_hour" => Some("30".to_string()),
            "gap" => Some("slow".to_string()),
            _ => None,
        };
        let own = vec![("per_hour".to_string(), "off".to_string())];
        let (rules, problems) = super::rules(config, &own);
        assert_eq!(rules.per_hour, None);
        assert_eq!(rules.gap, wa_pacing::Rules::defaults().gap);
        assert_eq!(problems.len(), 1);
        let (rules, _) = super::rules(config, &[]);
        assert_eq!(rules.per_hour, Some(30));
    }
}
