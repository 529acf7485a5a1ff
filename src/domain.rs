//! Domain types that are valid by construction: a phone number, a chat id, a priority, what a
//! file is sent as.

use std::fmt;

use serde::{Deserialize, Serialize};

/// WhatsApp's limit on one text message.
pub const MAX_MESSAGE_CHARS: usize = 65_536;

/// A phone number in full international form, digits only (`6281234567890`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts what a formatter produced: 8 to 15 ASCII digits (E.164 allows at most 15).
    pub fn parse(digits: &str) -> Result<Self, String> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{} is not digits only", mask_number(digits)));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(format!(
                "a phone number has 8 to 15 digits, this one has {}",
                digits.len()
            ));
        }
        Ok(PhoneNumber(digits.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// WhatsApp's chat id for a personal chat.
    pub fn chat_id(&self) -> String {
        format!("{}@c.us", self.0)
    }

    /// The form for logs: `62812****7890`.
    pub fn masked(&self) -> String {
        mask_number(&self.0)
    }
}

impl fmt::Display for PhoneNumber {
    /// Displays masked, so a number never reaches a log by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masks the middle of a number or chat id for logs: `6281234567890` → `62812****7890`.
pub fn mask_number(raw: &str) -> String {
    let digits = raw.split('@').next().unwrap_or(raw);
    let chars: Vec<char> = digits.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        0..=4 => return "*".repeat(n),
        5..=9 => (2, 2),
        _ => (5, 4),
    };
    let mut out: String = chars[..head].iter().collect();
    out.push_str("****");
    out.extend(&chars[n - tail..]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    Normal,
    Low,
}

impl Priority {
    /// Claim order: lower ranks go first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }

    /// `high`, `normal` or `low`, in any case.
    pub fn parse(s: &str) -> Option<Priority> {
        match s.to_ascii_lowercase().as_str() {
            "high" => Some(Priority::High),
            "normal" => Some(Priority::Normal),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }

    pub fn from_rank(rank: i64) -> Self {
        match rank {
            0 => Priority::High,
            2 => Priority::Low,
            _ => Priority::Normal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// What WhatsApp shows a file as: a photo, a video or a voice-less audio in the chat, or a
/// document (any file, with its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
}

impl MediaKind {
    pub const ALL: [MediaKind; 4] = [
        MediaKind::Image,
        MediaKind::Video,
        MediaKind::Audio,
        MediaKind::Document,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        MediaKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What a file of this MIME type is sent as when the request does not say: the photo and
    /// video types WhatsApp shows inline as themselves, audio as audio, the rest as documents.
    pub fn for_mime(mime: &str) -> MediaKind {
        match mime {
            "image/jpeg" | "image/png" | "image/webp" => MediaKind::Image,
            "video/mp4" | "video/3gpp" | "video/quicktime" => MediaKind::Video,
            m if m.starts_with("audio/") => MediaKind::Audio,
            _ => MediaKind::Document,
        }
    }

    /// Whether a file of this MIME type can be sent as this kind: a photo or a video must be
    /// one (WhatsApp Web's photo picker takes only those), audio must be audio; anything goes
    /// as a document.
    pub fn takes(self, mime: &str) -> bool {
        match self {
            MediaKind::Image => mime.starts_with("image/"),
            MediaKind::Video => mime.starts_with("video/"),
            MediaKind::Audio => mime.starts_with("audio/"),
            MediaKind::Document => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_the_design_says() {
        assert_eq!(mask_number("6281234567890"), "62812****7890");
        assert_eq!(mask_number("6281234567890@c.us"), "62812****7890");
        assert_eq!(mask_number("12345678"), "12****78");
        assert_eq!(mask_number("123"), "***");
    }

    #[test]
    fn phone_number_takes_8_to_15_digits() {
        assert!(PhoneNumber::parse("6281234567890").is_ok());
        assert!(PhoneNumber::parse("12345678").is_ok());
        assert!(PhoneNumber::parse("1234567").is_err());
        assert!(PhoneNumber::parse("1234567890123456").is_err());
        assert!(PhoneNumber::parse("62812x4567890").is_err());
        assert_eq!(
            PhoneNumber::parse("6281234567890").unwrap().chat_id(),
            "6281234567890@c.us"
        );
    }

    #[test]
    fn display_never_shows_the_whole_number() {
        let n = PhoneNumber::parse("6281234567890").unwrap();
        assert_eq!(n.to_string(), "62812****7890");
    }
}
