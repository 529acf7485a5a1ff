//! `[media]`: files sent with messages. How large, which types, and whether (and from where)
//! the gateway may fetch a file from a URL a client gave: off unless turned on, and then never
//! from a loopback, private or link-local address unless the operator says so.

use serde::{Deserialize, Serialize};

use super::Invalid;
use super::units::{ByteSize, Dur};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Largest file accepted (upload or URL): 16 MiB, WhatsApp's limit for photos and videos.
    pub max_bytes: ByteSize,
    /// MIME types accepted; `type/*` takes a whole family.
    pub allowed_types: Vec<String>,
    /// Unused files (no job refers to them) are deleted this long after their last upload or
    /// send; "0" keeps them.
    pub keep_unused: Dur,
    /// `send-message` may take `"media": {"url": ...}` and fetch the file at once.
    pub url_fetch: bool,
    /// Plain `http://` URLs too (else https only).
    pub url_allow_http: bool,
    /// Hosts (`name` or `name:port`) URLs may name; empty: any public host.
    pub url_allow_hosts: Vec<String>,
    /// Loopback, private and link-local addresses too (else refused, also through redirects).
    pub url_allow_private: bool,
    /// Longest a fetch may take, redirects included.
    pub url_timeout: Dur,
    /// Redirects followed, each checked as the first URL was.
    pub url_max_redirects: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_bytes: ByteSize(16 << 20),
            allowed_types: [
                "image/jpeg",
                "image/png",
                "image/webp",
                "video/mp4",
                "video/3gpp",
                "audio/*",
                "application/pdf",
                "text/plain",
                "text/csv",
                "application/zip",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.*",
                // A file of no known type goes as a document.
                "application/octet-stream",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            keep_unused: Dur(std::time::Duration::from_secs(24 * 3600)),
            url_fetch: false,
            url_allow_http: false,
            url_allow_hosts: Vec::new(),
            url_allow_private: false,
            url_timeout: Dur(std::time::Duration::from_secs(20)),
            url_max_redirects: 3,
        }
    }
}

impl MediaConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.max_bytes.0 == 0 || self.max_bytes.0 > 2 << 30 {
            return Err(Invalid::new(
                "media.max_bytes",
                "must be more than 0 and at most 2GiB (WhatsApp's limit for documents)",
            ));
        }
        for t in &self.allowed_types {
            let ok = t
                .split_once('/')
                .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !a.contains('*'));
            if !ok {
                return Err(Invalid::new(
                    "media.allowed_types",
                    format!("{t:?} is not a MIME type like \"application/pdf\" or \"image/*\""),
                ));
            }
        }
        if self.url_timeout.0.is_zero() {
            return Err(Invalid::new("media.url_timeout", "must be more than 0"));
        }
        for h in &self.url_allow_hosts {
            if h.is_empty() || h.contains('/') || h.contains('@') {
                return Err(Invalid::new(
                    "media.url_allow_hosts",
                    format!(
                        "{h:?} is not a host (\"files.example.com\" or \"files.example.com:8443\")"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether a MIME type (lowercase, no parameters) is allowed.
    pub fn allows(&self, mime: &str) -> bool {
        self.allowed_types
            .iter()
            .any(|t| match t.strip_suffix("/*") {
                Some(family) => mime
                    .split_once('/')
                    .is_some_and(|(f, _)| f.eq_ignore_ascii_case(family)),
                None => match t.strip_suffix('*') {
                    Some(prefix) => mime.starts_with(&prefix.to_ascii_lowercase()),
                    None => t.eq_ignore_ascii_case(mime),
                },
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_types_take_families_and_prefixes() {
        let c = MediaConfig::default();
        assert!(c.allows("application/pdf"));
        assert!(c.allows("audio/ogg"));
        assert!(
            c.allows("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
        assert!(!c.allows("application/x-msdownload"));
        assert!(!c.allows("image/svg+xml"));
    }
}
