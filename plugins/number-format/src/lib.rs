//! number-format: the 62xxx rules of the design, driven by config.
//!
//! Config (all optional): `country_code` ("62"), `trunk_prefix` ("0"), `min_digits` ("10"),
//! `max_digits` ("15").

wit_bindgen::generate!({ world: "number-formatter", path: "../../wit" });

use wa_gateway::plugin::host;

/// The rules, as plain data so they can be tested without a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub country_code: String,
    pub trunk_prefix: String,
    pub min_digits: usize,
    pub max_digits: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            country_code: "62".into(),
            trunk_prefix: "0".into(),
            min_digits: 10,
            max_digits: 15,
        }
    }
}

impl Rules {
    /// Reads the rules from a config lookup; bad values are reported, not ignored.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Rules, String> {
        let mut r = Rules::default();
        if let Some(cc) = get("country_code") {
            let cc = cc.trim().trim_start_matches('+').to_string();
            if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("config country_code {cc:?} must be 1 to 3 digits"));
            }
            r.country_code = cc;
        }
        if let Some(t) = get("trunk_prefix") {
            if !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "config trunk_prefix {t:?} must be digits (or empty)"
                ));
            }
            r.trunk_prefix = t;
        }
        for (key, slot) in [
            ("min_digits", &mut r.min_digits),
            ("max_digits", &mut r.max_digits),
        ] {
            if let Some(v) = get(key) {
                *slot = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("config {key} {v:?} is not a number"))?;
            }
        }
        if r.min_digits > r.max_digits || r.max_digits > 15 {
            return Err(
                "config min_digits must not exceed max_digits, and max_digits is at most 15".into(),
            );
        }
        Ok(r)
    }

    /// Raw input → digits in full international form.
    pub fn format(&self, raw: &str) -> Result<String, String> {
        let trimmed = raw.trim();
        let (international, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(format!("unexpected character {c:?} in the number")),
            }
        }
        if digits.is_empty() {
            return Err("the number has no digits".into());
        }
        let full = if international || digits.starts_with(&self.country_code) {
            digits
        } else if !self.trunk_prefix.is_empty() && digits.starts_with(&self.trunk_prefix) {
            format!(
                "{}{}",
                self.country_code,
                &digits[self.trunk_prefix.len()..]
            )
        } else {
            format!("{}{digits}", self.country_code)
        };
        let n = full.len();
        if n < self.min_digits {
            return Err(format!(
                "too short: {n} digits with the country code, at least {} needed",
                self.min_digits
            ));
        }
        if n > self.max_digits {
            return Err(format!(
                "too long: {n} digits with the country code, at most {} allowed",
                self.max_digits
            ));
        }
        Ok(full)
    }
}

struct Plugin;

impl Guest for Plugin {
    fn format_number(raw: String) -> Result<String, String> {
        Rules::from_config(host::config)?.format(&raw)
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_examples_all_give_the_same_number() {
        let r = Rules::default();
        for raw in [
            "081234567890",
            "+62 812-3456-7890",
            "812 3456 7890",
            "(0812) 3456.7890",
            "6281234567890",
        ] {
            assert_eq!(r.format(raw).unwrap(), "6281234567890", "{raw}");
        }
    }

    #[test]
    fn a_plus_keeps_another_country_as_it_is() {
        assert_eq!(
            Rules::default().format("+1 (415) 555-2671").unwrap(),
            "14155552671"
        );
    }

    #[test]
    fn bad_numbers_say_why() {
        let r = Rules::default();
        assert!(r.format("0812").unwrap_err().contains("too short"));
        assert!(
            r.format("0812345678901234567")
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            r.format("0812-abc")
                .unwrap_err()
                .contains("unexpected character")
        );
        assert!(r.format("  ").unwrap_err().contains("no digits"));
    }

    #[test]
    fn config_changes_the_country() {
        let r = Rules::from_config(|k| (k == "country_code").then(|| "44".to_string())).unwrap();
        assert_eq!(r.format("07700 900123").unwrap(), "447700900123");
        assert!(Rules::from_config(|k| (k == "country_code").then(|| "x".to_string())).is_err());
    }
}
