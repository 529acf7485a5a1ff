//! The written forms of the rules, as gateway.toml, a plugin's config and the sessions API take
//! them: `"3s..8s"`, `"21:00-08:00"`, `"40ms/char, max 6s"`.

/// `"150ms"`, `"3s"`, `"2m"`, `"1h"`, `"1d"`, or a sum of them (`"1h 30m"`) → milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let bad = || format!("bad duration {s:?}; write it like \"3s\", \"150ms\", \"1h\"");
    let mut total = 0u64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == ' ')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if n == 0 => 0,
            _ => return Err(bad()),
        };
        total = total.saturating_add(n.saturating_mul(mult));
        rest = rest[unit..].trim_start();
    }
    Ok(total)
}

/// `"3s..8s"` (uniform in the range, either order), `"5s"` (always 5 s) or `"0s"` (none) →
/// (lo, hi) ms.
pub fn parse_gap(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = match s.split_once("..") {
        Some((lo, hi)) => (parse_duration_ms(lo)?, parse_duration_ms(hi)?),
        None => {
            let d = parse_duration_ms(s)?;
            (d, d)
        }
    };
    // Either order means the same range.
    Ok((lo.min(hi), lo.max(hi)))
}

/// `"21:00-08:00"` (across midnight) or `"13:00-14:00"` → local seconds of the day; `"off"` or
/// an empty window (`"08:00-08:00"`) → none.
pub fn parse_quiet_hours(s: &str) -> Result<Option<(u32, u32)>, String> {
    let s = s.trim();
    if s == "off" {
        return Ok(None);
    }
    let bad = || format!("quiet_hours {s:?}: write it like \"21:00-08:00\", or \"off\"");
    let clock = |t: &str| -> Result<u32, String> {
        let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(h * 3600 + m * 60)
    };
    let (from, to) = s.split_once('-').ok_or_else(bad)?;
    let (from, to) = (clock(from)?, clock(to)?);
    // An empty window ("08:00-08:00") is none.
    Ok((from != to).then_some((from, to)))
}

/// `"40ms/char, max 6s"` → (ms per character, most ms); `"off"` → (0, 0).
pub fn parse_typing(s: &str) -> Result<(u64, u64), String> {
    let s = s.trim();
    if s == "off" {
        return Ok((0, 0));
    }
    let bad = || format!("typing {s:?}: write it like \"40ms/char, max 6s\", or \"off\"");
    let (per, max) = s.split_once(',').ok_or_else(bad)?;
    let per = per.trim().strip_suffix("/char").ok_or_else(bad)?;
    let max = max.trim().strip_prefix("max").ok_or_else(bad)?;
    Ok((parse_duration_ms(per)?, parse_duration_ms(max)?))
}
