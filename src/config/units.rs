//! The units gateway.toml is written in: durations (`"2s"`, `"150ms"`, `"7d"`) and sizes
//! (`"16MiB"`), one small type each, read and written in the same human form.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written like `"2s"`, `"150ms"`, `"15m"`, `"7d"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration {s:?} ({e}); write it like \"2s\", \"150ms\", \"15m\""
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// A size written like `"16MiB"`, `"512KiB"`, `"1GiB"` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("bad size {s:?}; write it like \"16MiB\""));
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let mult: usize = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        num.parse::<usize>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .map(ByteSize)
            .ok_or_else(bad)
    }
}

impl schemars::JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A size: digits and a unit (KiB, MiB, GiB), e.g. \"512MiB\".",
            "pattern": "^[1-9][0-9]{0,5}(KiB|MiB|GiB)$",
            "example": "512MiB"
        })
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        let text = [(30, "GiB"), (20, "MiB"), (10, "KiB")]
            .into_iter()
            .find(|(shift, _)| n >= 1 << shift && n.is_multiple_of(1 << shift))
            .map_or_else(
                || n.to_string(),
                |(shift, unit)| format!("{}{unit}", n >> shift),
            );
        s.serialize_str(&text)
    }
}

/// An optional whole number that JSON may write as `5` or `5.0` (JSON Schema's `integer`
/// admits both); a fraction, a value out of range or `null` is refused. Use with
/// `#[serde(default, deserialize_with = "…")]`.
pub fn whole_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    whole(serde_json::Number::deserialize(d)?).map(Some)
}

/// [`whole_number`], with `null` as absent.
pub fn whole_number_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    Option::<serde_json::Number>::deserialize(d)?
        .map(whole)
        .transpose()
}

/// A list of whole numbers as [`whole_number`] reads each, `null` as absent.
pub fn whole_numbers_or_null<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    Option::<Vec<serde_json::Number>>::deserialize(d)?
        .map(|v| v.into_iter().map(whole).collect())
        .transpose()
}

fn whole<T: TryFrom<u64>, E: serde::de::Error>(n: serde_json::Number) -> Result<T, E> {
    let w = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    });
    w.and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| E::custom(format!("{n} is not a whole number in range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_back_what_they_write() {
        for text in ["2s", "150ms", "15m", "7days"] {
            let d: Dur = toml::Value::String(text.into()).try_into().unwrap();
            let again: Dur = toml::Value::try_from(d).unwrap().try_into().unwrap();
            assert_eq!(d, again, "{text}");
        }
        for (text, bytes) in [("16MiB", 16 << 20), ("1GiB", 1 << 30), ("1000", 1000)] {
            let b: ByteSize = toml::Value::String(text.into()).try_into().unwrap();
            assert_eq!(b.0, bytes);
            assert_eq!(toml::Value::try_from(b).unwrap().as_str(), Some(text));
        }
        let bad: Result<ByteSize, _> = toml::Value::String("16MB".into()).try_into();
        assert!(bad.unwrap_err().to_string().contains("16MiB"));
    }
}
