//! Live events: job state changes, receipts, received messages, WhatsApp state changes, new QR
//! codes and pacing cooldowns,
//! published once and read by `GET /api/events` (Server-Sent Events). Every job event carries
//! its `jobId`, `messageId` and `session`, so clients can match them; every other event names
//! its session.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::db::jobs::JobRow;
use crate::whatsapp::{Seen, SessionState};

/// One event, as clients receive it (`data:` of an SSE message; its `event:` is `kind()`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// A job entered `status` (`waiting`, `active`, `completed` or `failed`).
    #[serde(rename = "job", rename_all = "camelCase")]
    Job {
        job_id: String,
        message_id: String,
        session: String,
        status: &'static str,
        attempts: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<EventError>,
        at: String,
    },
    #[serde(rename = "whatsapp", rename_all = "camelCase")]
    WhatsApp {
        session: String,
        state: SessionState,
        detail: String,
        at: String,
    },
    /// A new QR code to scan.
    #[serde(rename = "qr", rename_all = "camelCase")]
    Qr {
        session: String,
        qr: String,
        at: String,
    },
    /// A sent message got further: `delivered` (two ticks) or `read` (blue ticks).
    #[serde(rename = "message", rename_all = "camelCase")]
    Message {
        job_id: String,
        message_id: String,
        session: String,
        chat_id: String,
        status: crate::whatsapp::Ack,
        at: String,
    },
    /// Someone wrote to the session: a message it received (stored once, by `messageId`).
    #[serde(rename = "received")]
    Received(ReceivedMessage),
    /// A session rests after a sign of trouble (`rate-limited`) until `until`.
    #[serde(rename = "cooldown", rename_all = "camelCase")]
    Cooldown {
        session: String,
        until: String,
        reason: String,
        at: String,
    },
}

/// A message a session received, as events, webhooks and the API show it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedMessage {
    pub session: String,
    /// WhatsApp's id for the message.
    pub message_id: String,
    /// The sender's number (digits).
    pub from: String,
    pub chat_id: String,
    /// Its text (a file's caption).
    pub text: String,
    /// `image`, `video`, `audio`, `document`, `sticker`, or null for text.
    pub media_type: Option<String>,
    /// When the gateway read it.
    pub at: String,
}

impl From<crate::db::inbound::InboundRow> for ReceivedMessage {
    fn from(row: crate::db::inbound::InboundRow) -> Self {
        ReceivedMessage {
            session: row.session,
            message_id: row.message_id,
            from: row.from_number,
            chat_id: row.chat_id,
            text: row.text,
            media_type: row.media_type,
            at: crate::time::rfc3339(row.at),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventError {
    pub code: String,
    pub message: String,
}

impl Event {
    /// The SSE event name: `job.<status>`, `message.delivered`, `message.read`,
    /// `whatsapp.state`, `whatsapp.qr` or `session.cooldown`.
    pub fn kind(&self) -> String {
        match self {
            Event::Job { status, .. } => format!("job.{status}"),
            Event::WhatsApp { .. } => "whatsapp.state".into(),
            Event::Qr { .. } => "whatsapp.qr".into(),
            Event::Cooldown { .. } => "session.cooldown".into(),
            Event::Message { status, .. } => format!("message.{}", status.as_str()),
            Event::Received(_) => "message.received".into(),
        }
    }

    /// A message the session received, as stored.
    pub fn received(row: &crate::db::inbound::InboundRow) -> Event {
        Event::Received(row.clone().into())
    }

    /// The job's message reached `status` at `at` (ms).
    pub fn ack(row: &JobRow, status: crate::whatsapp::Ack, at: i64) -> Event {
        Event::Message {
            job_id: row.id.clone(),
            message_id: row.message_id.clone(),
            session: row.session.clone(),
            chat_id: row.chat_id.clone(),
            status,
            at: crate::time::rfc3339(at),
        }
    }

    /// The id of the job the event is about, if it is about one.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Event::Job { job_id, .. } | Event::Message { job_id, .. } => Some(job_id),
            _ => None,
        }
    }

    /// Job events reach the webhooks through the transaction that changes the job, a received
    /// message's through the one that stores it; the others through the recorder.
    pub fn written_with_its_job(&self) -> bool {
        self.job_id().is_some() || matches!(self, Event::Received(_))
    }

    pub fn cooldown(session: &str, until: i64, reason: &str) -> Event {
        Event::Cooldown {
            session: session.to_string(),
            until: crate::time::rfc3339(until),
            reason: reason.to_string(),
            at: now(),
        }
    }

    /// The job entered `status`, with this error.
    pub fn job(row: &JobRow, status: &'static str, error: Option<(&str, &str)>) -> Event {
        Event::Job {
            job_id: row.id.clone(),
            message_id: row.message_id.clone(),
            session: row.session.clone(),
            status,
            attempts: row.attempts,
            error: error.map(|(code, message)| EventError {
                code: code.to_string(),
                message: message.to_string(),
            }),
            at: now(),
        }
    }

    pub fn from_row(row: &JobRow, status: &'static str) -> Event {
        let error = match (&row.error_code, &row.error_message) {
            (Some(c), Some(m)) => Some((c.as_str(), m.as_str())),
            _ => None,
        };
        Event::job(row, status, error)
    }
}

fn now() -> String {
    crate::time::rfc3339(crate::time::now_ms())
}

/// The bus: cheap to clone; publishing with no listener is a no-op.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Events {
        Events {
            tx: broadcast::channel(4096).0,
        }
    }

    pub fn publish(&self, e: Event) {
        let _ = self.tx.send(e);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// A session's current state as an event (sent first to every new listener).
    pub fn whatsapp_now(session: &str, s: crate::whatsapp::WhatsAppStatus) -> Event {
        Event::WhatsApp {
            session: session.to_string(),
            state: s.state,
            detail: s.detail,
            at: now(),
        }
    }

    /// Publishes what changed in what a session's driver shows: its state, a new QR code.
    pub fn driver_changed(&self, session: &str, seen: &Seen, before: Option<&Seen>) {
        if before.is_none_or(|b| b.state != seen.state || b.detail != seen.detail) {
            self.publish(Event::WhatsApp {
                session: session.to_string(),
                state: seen.state,
                detail: seen.detail.clone(),
                at: now(),
            });
        }
        if let Some(code) = &seen.qr
            && before.is_none_or(|b| b.qr.as_ref() != Some(code))
        {
            self.publish(Event::Qr {
                session: session.to_string(),
                qr: code.clone(),
                at: now(),
            });
        }
    }
}
