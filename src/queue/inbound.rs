//! Messages sessions receive: each stored once (by WhatsApp's id for it), with its
//! `message.received` event and webhook written in the same transaction, and its sender made a
//! contact (pacing's first-contact rule no longer counts a number that wrote first). And the
//! opt-out list: numbers a session must not write to, kept in memory for the workers.

use std::collections::HashSet;

use super::Queue;
use crate::db::inbound::{self, InboundRow, OptOutRow};
use crate::db::{DbError, Durability};
use crate::events::Event;
use crate::whatsapp::Incoming;

/// The shortest time between two automatic replies to one chat.
pub const REPLY_GAP: std::time::Duration = std::time::Duration::from_secs(600);

/// When each chat last got an automatic reply.
#[derive(Default)]
pub(super) struct Replies(std::sync::Mutex<std::collections::HashMap<(String, String), i64>>);

impl Replies {
    /// True (and noted) when the chat may get an automatic reply at `now`.
    fn may_reply(&self, session: &str, chat_id: &str, now: i64) -> bool {
        let mut last = self.0.lock().expect("replies lock");
        let gap = REPLY_GAP.as_millis() as i64;
        last.retain(|_, at| now - *at < gap);
        let key = (session.to_string(), chat_id.to_string());
        if last.contains_key(&key) {
            return false;
        }
        last.insert(key, now);
        true
    }
}

/// Who opted out of which session's messages.
#[derive(Default)]
pub(super) struct OptOuts(std::sync::RwLock<HashSet<(String, String)>>);

impl OptOuts {
    pub(super) fn load(rows: Vec<OptOutRow>) -> OptOuts {
        OptOuts(std::sync::RwLock::new(
            rows.into_iter().map(|r| (r.session, r.number)).collect(),
        ))
    }

    fn contains(&self, session: &str, number: &str) -> bool {
        self.0
            .read()
            .expect("opt-outs lock")
            .contains(&(session.to_string(), number.to_string()))
    }

    fn set(&self, session: &str, number: &str, out: bool) {
        let key = (session.to_string(), number.to_string());
        let mut set = self.0.write().expect("opt-outs lock");
        if out {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }
}

impl Queue {
    /// Stores what a session received; the messages that were new (a message seen again is
    /// not stored, announced or answered twice).
    pub async fn record_incoming(
        &self,
        session: &str,
        messages: Vec<Incoming>,
    ) -> Result<Vec<InboundRow>, DbError> {
        let now = self.clock.now_ms();
        let (out, name) = (self.outbox.clone(), session.to_string());
        let (rows, events, written) = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    let mut rows = Vec::new();
                    for m in &messages {
                        if let Some(row) = inbound::insert(c, &name, m, now).await? {
                            crate::db::pacing::add_contact(c, &name, &row.chat_id, now).await?;
                            rows.push(row);
                        }
                    }
                    let events: Vec<Event> = rows.iter().map(Event::received).collect();
                    let written = out.write(c, &events).await?;
                    Ok((rows, events, written))
                })
            })
            .await?;
        self.outbox.wake(written);
        if !rows.is_empty() {
            self.metrics.received(session, rows.len());
        }
        for (row, e) in rows.iter().zip(events) {
            tracing::info!(session, from = %crate::domain::mask_number(&row.from_number), "📥 Message received from {}", crate::domain::mask_number(&row.from_number));
            self.events.publish(e);
        }
        Ok(rows)
    }

    /// Asks the on-message hook about each received message and does what it says: puts the
    /// sender on the opt-out list, queues the reply (high priority, once: its `messageId` is
    /// `reply:<the message's id>`). A new opt-out's confirmation goes to the number it just
    /// put on the list; a number on the list gets no other answer.
    pub async fn answer_incoming(&self, rows: &[InboundRow]) {
        for row in rows {
            let answer = self.hooks.on_message(&crate::hooks::Received {
                session: row.session.clone(),
                number: row.from_number.clone(),
                chat_id: row.chat_id.clone(),
                text: row.text.clone(),
                media_type: row.media_type.clone(),
                at: row.at,
            });
            let who = crate::domain::mask_number(&row.from_number);
            // A number already on the list gets no answer at all: a STOP answered by a bot that
            // answers STOP would otherwise never end.
            let mut confirm = false;
            if let Some(reason) = answer.opt_out {
                match self.opt_out(&row.session, &row.from_number, &reason).await {
                    Ok(true) => {
                        tracing::info!(session = %row.session, "🚫 {who} opted out ({reason})");
                        confirm = true;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(session = %row.session, error = %e, "cannot keep an opt-out");
                        continue;
                    }
                }
            } else if self.opted_out(&row.session, &row.from_number) {
                continue;
            }
            let Some(text) = answer.reply.filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            // Two bots answering each other: one automatic reply per chat per REPLY_GAP, but
            // an opt-out's confirmation always goes.
            if !confirm
                && !self
                    .replies
                    .may_reply(&row.session, &row.chat_id, self.clock.now_ms())
            {
                tracing::info!(session = %row.session, "↩️ No reply to {who}: it got one less than {} ago", humantime::format_duration(REPLY_GAP));
                continue;
            }
            let text: String = text
                .chars()
                .take(crate::domain::MAX_MESSAGE_CHARS)
                .collect();
            let job = super::NewJob {
                id: format!("job_{}", uuid::Uuid::now_v7().simple()),
                session: row.session.clone(),
                message_id: format!("reply:{}", row.message_id)
                    .chars()
                    .take(128)
                    .collect(),
                number: row.from_number.clone(),
                chat_id: row.chat_id.clone(),
                message: text,
                template: None,
                priority: crate::domain::Priority::High.rank(),
                media: None,
                ignore_opt_out: true,
                now: self.clock.now_ms(),
            };
            match self.enqueue(job).await {
                Ok((job, _)) => {
                    tracing::info!(session = %row.session, job.id = %job.id, "↩️ Reply to {who} queued")
                }
                Err(e) => {
                    tracing::error!(session = %row.session, error = %e, "cannot queue a reply")
                }
            }
        }
    }

    /// Whether `number` asked `session` not to write to it.
    pub fn opted_out(&self, session: &str, number: &str) -> bool {
        self.opt_outs.contains(session, number)
    }

    /// Puts `number` on `session`'s opt-out list (true when it was not on it).
    pub async fn opt_out(
        &self,
        session: &str,
        number: &str,
        reason: &str,
    ) -> Result<bool, DbError> {
        let now = self.clock.now_ms();
        let (s, n, r) = (session.to_string(), number.to_string(), reason.to_string());
        let added = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { inbound::opt_out(c, &s, &n, &r, now).await })
            })
            .await?;
        self.opt_outs.set(session, number, true);
        Ok(added)
    }

    /// Takes `number` off `session`'s opt-out list (true when it was on it).
    pub async fn opt_in(&self, session: &str, number: &str) -> Result<bool, DbError> {
        let (s, n) = (session.to_string(), number.to_string());
        let removed = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { inbound::opt_in(c, &s, &n).await })
            })
            .await?;
        self.opt_outs.set(session, number, false);
        Ok(removed)
    }
}
