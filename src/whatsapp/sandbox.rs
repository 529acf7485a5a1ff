//! The sandbox driver: a stand-in for WhatsApp that integrators can build against without a
//! phone. Deliveries append a JSON line to the outbox; numbers ending in documented digits fail
//! in documented ways, like a payment provider's test cards.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use super::{
    Ack, AckSeen, Incoming, MessageSender, Outbound, Receipt, SendError, SendFuture, SessionState,
    WhatsAppStatus,
};

pub struct Sandbox {
    session: String,
    delay: Duration,
    outbox_path: PathBuf,
    outbox: Mutex<File>,
    since: String,
    acks: tokio::sync::broadcast::Sender<AckSeen>,
    incoming: tokio::sync::broadcast::Sender<Incoming>,
}

impl Sandbox {
    /// A sandbox for one session; its deliveries are outbox lines that name the session.
    pub fn new(session: &str, delay: Duration, outbox: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = outbox.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(outbox)
            .with_context(|| format!("cannot open sandbox outbox {}", outbox.display()))?;
        Ok(Self {
            session: session.to_string(),
            delay,
            outbox_path: outbox.to_path_buf(),
            outbox: Mutex::new(file),
            since: crate::time::rfc3339(crate::time::now_ms()),
            acks: tokio::sync::broadcast::channel(1024).0,
            incoming: tokio::sync::broadcast::channel(1024).0,
        })
    }

    /// The scripted outcome for a number, if it is a test number.
    fn scripted_failure(number: &str, attempt: u32) -> Option<SendError> {
        let suffix = number.get(number.len().saturating_sub(4)..)?;
        match suffix {
            "0000" => Some(SendError::new(
                "not-registered",
                "sandbox: this number is not on WhatsApp",
            )),
            "0001" if attempt <= 2 => Some(SendError::new(
                "timeout",
                format!(
                    "sandbox: no answer in time (attempt {attempt} of the 3 this number needs)"
                ),
            )),
            "0002" => Some(SendError::new(
                "session-closed",
                "sandbox: the WhatsApp session closed",
            )),
            "0003" => Some(SendError::new(
                "blocked",
                "sandbox: this contact blocked you",
            )),
            "0004" => Some(SendError::new(
                "rate-limited",
                "sandbox: WhatsApp rate-limited this account",
            )),
            _ => None,
        }
    }

    /// Numbers ending `0007` take text but refuse files (as WhatsApp refuses a file it cannot
    /// process).
    fn scripted_media_failure(m: &Outbound) -> Option<SendError> {
        let a = m.media.as_ref()?;
        m.number.ends_with("0007").then(|| {
            SendError::new(
                "media-rejected",
                format!(
                    "sandbox: WhatsApp refused the {} ({})",
                    a.kind.as_str(),
                    a.mime_type
                ),
            )
        })
    }

    fn deliver(&self, m: &Outbound) -> Result<(), SendError> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Line<'a> {
            session: &'a str,
            job_id: &'a str,
            message_id: &'a str,
            chat_id: &'a str,
            text: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            media: Option<MediaLine<'a>>,
            at: String,
        }
        /// What the recipient got: the file's description and sha256, not its bytes.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct MediaLine<'a> {
            #[serde(rename = "as")]
            kind: &'a str,
            filename: &'a str,
            mime_type: &'a str,
            bytes: usize,
            sha256: &'a str,
        }
        let mut line = serde_json::to_string(&Line {
            session: &self.session,
            job_id: &m.job_id,
            message_id: &m.message_id,
            chat_id: &m.chat_id,
            text: &m.text,
            media: m.media.as_ref().map(|a| MediaLine {
                kind: a.kind.as_str(),
                filename: &a.filename,
                mime_type: &a.mime_type,
                bytes: a.data.len(),
                sha256: &a.sha256,
            }),
            at: crate::time::rfc3339(crate::time::now_ms()),
        })
        .map_err(|e| SendError::new("protocol-error", format!("sandbox: {e}")))?;
        line.push('\n');
        let mut file = self.outbox.lock().expect("outbox lock");
        file.write_all(line.as_bytes()).map_err(|e| {
            SendError::new(
                "protocol-error",
                format!("sandbox: cannot write the outbox: {e}"),
            )
        })
    }
}

impl Sandbox {
    /// The recipient's phone: it gets every message after `delay` (two ticks), but for numbers
    /// ending `0006` (a phone that stays off); numbers ending `0005` also read it after another
    /// `delay` (blue ticks); `0008` answers `Got it: <text>`, `0009` answers `STOP`.
    fn phone_receives(&self, m: &Outbound) {
        let suffix = m
            .number
            .get(m.number.len().saturating_sub(4)..)
            .unwrap_or("");
        if suffix == "0006" {
            return;
        }
        let answer = match suffix {
            "0008" => Some(format!("Got it: {}", m.text)),
            "0009" => Some("STOP".to_string()),
            _ => None,
        };
        if let Some(text) = answer {
            let (tx, delay) = (self.incoming.clone(), self.delay);
            let reply = Incoming {
                message_id: format!(
                    "false_{}_SB{}",
                    m.chat_id,
                    uuid::Uuid::new_v4().simple().to_string().to_uppercase()
                ),
                chat_id: m.chat_id.clone(),
                from: m.number.clone(),
                text,
                media_type: None,
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay * 2).await;
                let _ = tx.send(reply);
            });
        }
        let (tx, delay, chat_id) = (self.acks.clone(), self.delay, m.chat_id.clone());
        let reads = suffix == "0005";
        tokio::spawn(async move {
            let seen = |ack| AckSeen {
                chat_id: chat_id.clone(),
                bubble_id: None,
                ack,
            };
            tokio::time::sleep(delay).await;
            let _ = tx.send(seen(Ack::Delivered));
            if reads {
                tokio::time::sleep(delay).await;
                let _ = tx.send(seen(Ack::Read));
            }
        });
    }
}

impl MessageSender for Sandbox {
    fn acks(&self) -> Option<tokio::sync::broadcast::Receiver<AckSeen>> {
        Some(self.acks.subscribe())
    }

    fn incoming(&self) -> Option<tokio::sync::broadcast::Receiver<Incoming>> {
        Some(self.incoming.subscribe())
    }

    fn send<'a>(&'a self, m: &'a Outbound) -> SendFuture<'a> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if let Some(err) = Self::scripted_failure(&m.number, m.attempt)
                .or_else(|| Self::scripted_media_failure(m))
            {
                return Err(err);
            }
            self.deliver(m)?;
            self.phone_receives(m);
            // Nothing to keep: the outbox line is the receipt.
            Ok(Receipt::default())
        })
    }

    fn status(&self) -> WhatsAppStatus {
        WhatsAppStatus {
            state: SessionState::Connected,
            detail: format!(
                "sandbox driver: deliveries go to {}; numbers ending 0000-0004 fail on purpose, 0005 reads, 0006 is never delivered, 0007 refuses files, 0008 and 0009 answer",
                self.outbox_path.display()
            ),
            driver: "sandbox",
            since: self.since.clone(),
        }
    }

    fn is_ready(&self) -> bool {
        true
    }

    /// Every number is on WhatsApp but those ending in `0000` (as for sends).
    fn check_number<'a>(
        &'a self,
        number: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, SendError>> + Send + 'a>>
    {
        Box::pin(async move { Ok(!number.ends_with("0000")) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_numbers_fail_as_documented() {
        let f = |n: &str, a| Sandbox::scripted_failure(n, a).map(|e| e.code);
        assert_eq!(f("6281200000000", 1).as_deref(), Some("not-registered"));
        assert_eq!(f("6281200000001", 1).as_deref(), Some("timeout"));
        assert_eq!(f("6281200000001", 2).as_deref(), Some("timeout"));
        assert_eq!(f("6281200000001", 3), None);
        assert_eq!(f("6281200000002", 9).as_deref(), Some("session-closed"));
        assert_eq!(f("6281200000003", 1).as_deref(), Some("blocked"));
        assert_eq!(f("6281200000004", 1).as_deref(), Some("rate-limited"));
        assert_eq!(f("6281234567890", 1), None);
    }
}
