//! The pacing rules of wa-gateway, as pure functions: given what a session sent lately and the
//! message at hand, may it go now, or when? The gateway's built-in pacer and the bundled `pacing`
//! plugin both decide with [`decide`], so the plugin is the same rules, replaceable.
//!
//! No clock, no randomness, no I/O: the caller passes the time, the local time of day and the
//! gap's random draw, so every decision can be replayed in a test.

mod parse;

pub use parse::{parse_duration_ms, parse_gap, parse_quiet_hours, parse_typing};

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
/// The longest warm-up, in days.
pub const MAX_WARMUP_DAYS: usize = 60;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// A session's rules. A cap of `None` is no cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The gap between two sends, in milliseconds: uniform in `lo..=hi`.
    pub gap: (u64, u64),
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub per_day: Option<u32>,
    pub per_recipient_per_hour: Option<u32>,
    pub first_contact_per_day: Option<u32>,
    /// Daily caps for the first days of a newly linked number, then `per_day`.
    pub warmup: Vec<u32>,
    /// Local seconds of the day: nothing is sent from the first to the second.
    pub quiet_hours: Option<(u32, u32)>,
}

impl Rules {
    /// No rule at all: everything goes at once.
    pub fn none() -> Rules {
        Rules {
            gap: (0, 0),
            per_minute: None,
            per_hour: None,
            per_day: None,
            per_recipient_per_hour: None,
            first_contact_per_day: None,
            warmup: Vec::new(),
            quiet_hours: None,
        }
    }

    /// The documented defaults (README, "Keeping your number safe").
    pub fn defaults() -> Rules {
        Rules {
            gap: (3_000, 8_000),
            per_minute: Some(10),
            per_hour: Some(200),
            per_day: Some(1_000),
            per_recipient_per_hour: Some(4),
            first_contact_per_day: Some(50),
            warmup: vec![20, 40, 80, 160, 320],
            quiet_hours: None,
        }
    }

    /// The keys [`Rules::set`] takes, in the plugin's config and the session's own settings.
    pub const KEYS: [&'static str; 8] = [
        "gap",
        "per_minute",
        "per_hour",
        "per_day",
        "per_recipient_per_hour",
        "first_contact_per_day",
        "warmup",
        "quiet_hours",
    ];

    /// Sets one rule from its written form: `gap = "3s..8s"`, a cap as a number (`0` or `off`:
    /// no cap), `warmup = "20,40,80"` (empty: none), `quiet_hours = "21:00-08:00"` (`off`: none).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.set_inner(key, value)
            .map_err(|e| match e.starts_with(key) {
                true => e,
                false => format!("{key}: {e}"),
            })
    }

    fn set_inner(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        match key {
            "gap" => self.gap = parse_gap(v)?,
            "per_minute" => self.per_minute = cap(key, v)?,
            "per_hour" => self.per_hour = cap(key, v)?,
            "per_day" => self.per_day = cap(key, v)?,
            "per_recipient_per_hour" => self.per_recipient_per_hour = cap(key, v)?,
            "first_contact_per_day" => self.first_contact_per_day = cap(key, v)?,
            "warmup" => {
                self.warmup = v
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| match s.parse::<u32>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("warmup: {s:?} is not a positive number")),
                    })
                    .collect::<Result<_, _>>()?;
                if self.warmup.len() > MAX_WARMUP_DAYS {
                    return Err(format!(
                        "warmup: at most {MAX_WARMUP_DAYS} days, not {}",
                        self.warmup.len()
                    ));
                }
            }
            "quiet_hours" => self.quiet_hours = parse_quiet_hours(v)?,
            _ => return Err(format!("unknown pacing rule {key:?}")),
        }
        Ok(())
    }

    /// The daily cap on day `day` of the number's life (0: the day it was linked).
    pub fn daily_cap(&self, day: Option<u32>) -> Option<(u32, Rule)> {
        match day.and_then(|d| self.warmup.get(d as usize)) {
            Some(&n) => Some((n, Rule::Warmup)),
            None => self.per_day.map(|n| (n, Rule::PerDay)),
        }
    }
}

fn cap(key: &str, v: &str) -> Result<Option<u32>, String> {
    match v {
        "off" | "0" => Ok(None),
        _ => v
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{key}: {v:?} is not a number (0 or \"off\": no cap)")),
    }
}

/// Which rule held a message back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Gap,
    PerMinute,
    PerHour,
    PerDay,
    Warmup,
    PerRecipient,
    FirstContact,
    QuietHours,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Gap,
        Rule::PerMinute,
        Rule::PerHour,
        Rule::PerDay,
        Rule::Warmup,
        Rule::PerRecipient,
        Rule::FirstContact,
        Rule::QuietHours,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Gap => "gap",
            Rule::PerMinute => "per_minute",
            Rule::PerHour => "per_hour",
            Rule::PerDay => "per_day",
            Rule::Warmup => "warmup",
            Rule::PerRecipient => "per_recipient_per_hour",
            Rule::FirstContact => "first_contact_per_day",
            Rule::QuietHours => "quiet_hours",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// True when the rule holds back only messages like this one (to this chat, to a first
    /// contact), not the whole session.
    pub fn is_per_message(self) -> bool {
        matches!(self, Rule::PerRecipient | Rule::FirstContact)
    }
}

/// One message the session really sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Unix milliseconds.
    pub at: i64,
    /// To a number the session had never exchanged messages with.
    pub first_contact: bool,
}

/// What a decision is made on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Unix milliseconds.
    pub now: i64,
    /// Milliseconds since local midnight, in the session's time zone.
    pub local_ms: u32,
    /// The session's sends of the last 24 hours, oldest first.
    pub recent: &'a [Sent],
    /// When the session sent to this message's chat in the last hour, oldest first.
    pub to_recipient: &'a [i64],
    /// The message goes to a number the session has never exchanged messages with.
    pub first_contact: bool,
    /// Whole days since the number was linked (0 on that day); `None` when unknown.
    pub day: Option<u32>,
    /// High priority skips the gap (and nothing else).
    pub high_priority: bool,
    /// A uniform random number drawn after the last send: where in the gap's range it falls.
    pub gap_draw: u32,
}

/// May the message go?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Now,
    /// Not before `until` (Unix milliseconds), because of `rule`.
    Defer {
        until: i64,
        rule: Rule,
    },
}

/// The gap after a send, for a draw: `lo + draw × (hi − lo) / 2³²`.
pub fn gap_ms((lo, hi): (u64, u64), draw: u32) -> u64 {
    lo + (hi.saturating_sub(lo) * draw as u64) / (1u64 << 32)
}

/// The earliest time a cap of `cap` sends per `window` lets one more go, given `at` (the
/// window's sends, oldest first); `None` when it lets one go now.
fn cap_until(at: impl Iterator<Item = i64>, now: i64, window: i64, cap: u32) -> Option<i64> {
    let inside: Vec<i64> = at.filter(|&t| t > now - window).collect();
    let n = inside.len();
    let cap = cap as usize;
    // One more may go once all but cap − 1 of them have left the window.
    (n >= cap).then(|| match cap {
        0 => now + window,
        _ => inside[n - cap] + window,
    })
}

/// Decides by every rule: `Now`, or the latest of the times the rules that hold it back allow,
/// with that rule.
pub fn decide(rules: &Rules, f: &Facts) -> Decision {
    let mut held: Option<(i64, Rule)> = None;
    let mut hold = |until: Option<i64>, rule: Rule| {
        if let Some(until) = until.filter(|&u| u > f.now)
            && held.is_none_or(|(h, _)| until > h)
        {
            held = Some((until, rule));
        }
    };
    let all = || f.recent.iter().map(|s| s.at);
    if let Some((start, end)) = rules.quiet_hours {
        let day_ms = DAY as u32;
        let (s, e, t) = (start * 1000, end * 1000, f.local_ms % day_ms);
        let inside = if s <= e {
            t >= s && t < e
        } else {
            t >= s || t < e
        };
        if inside {
            hold(
                Some(f.now + ((e + day_ms - t) % day_ms) as i64),
                Rule::QuietHours,
            );
        }
    }
    if !f.high_priority
        && let Some(last) = f.recent.last()
    {
        hold(
            Some(last.at + gap_ms(rules.gap, f.gap_draw) as i64),
            Rule::Gap,
        );
    }
    if let Some(n) = rules.per_minute {
        hold(cap_until(all(), f.now, MINUTE, n), Rule::PerMinute);
    }
    if let Some(n) = rules.per_hour {
        hold(cap_until(all(), f.now, HOUR, n), Rule::PerHour);
    }
    if let Some((n, rule)) = rules.daily_cap(f.day) {
        hold(cap_until(all(), f.now, DAY, n), rule);
    }
    if let Some(n) = rules.per_recipient_per_hour {
        hold(
            cap_until(f.to_recipient.iter().copied(), f.now, HOUR, n),
            Rule::PerRecipient,
        );
    }
    if f.first_contact
        && let Some(n) = rules.first_contact_per_day
    {
        let firsts = f.recent.iter().filter(|s| s.first_contact).map(|s| s.at);
        hold(cap_until(firsts, f.now, DAY, n), Rule::FirstContact);
    }
    match held {
        Some((until, rule)) => Decision::Defer { until, rule },
        None => Decision::Now,
    }
}

#[cfg(test)]
mod tests;
