//! Receipts of sent messages: what a driver sees (two ticks, blue ticks) raises the jobs it
//! covers, with their `message.delivered` / `message.read` events and webhooks written in the
//! same transaction, once each.

use std::time::Duration;

use super::Queue;
use crate::db::{DbError, Durability, jobs};
use crate::events::Event;
use crate::whatsapp::AckSeen;

impl Queue {
    /// Keeps receipts a session's driver saw on the jobs they cover: messages sent within
    /// `watch`. Returns how many steps were taken (a job read at once takes two).
    pub async fn record_acks(
        &self,
        session: &str,
        seen: Vec<AckSeen>,
        watch: Duration,
    ) -> Result<usize, DbError> {
        let now = self.clock.now_ms();
        let since = now - watch.as_millis() as i64;
        // Many receipts of one chat (a busy sandbox) are one: the highest covers the rest.
        let mut seen = seen;
        seen.sort_by(|a, b| {
            (&a.chat_id, &a.bubble_id, b.ack).cmp(&(&b.chat_id, &b.bubble_id, a.ack))
        });
        seen.dedup_by(|a, b| a.chat_id == b.chat_id && a.bubble_id == b.bubble_id);
        let (out, name) = (self.outbox.clone(), session.to_string());
        let (events, written) = self
            .db
            .writer
            .exec(Durability::Relaxed, move |c| {
                Box::pin(async move {
                    let mut events = Vec::new();
                    for s in &seen {
                        for (row, step) in jobs::raise_ack(c, &name, s, since, now).await? {
                            events.push(Event::ack(&row, step, now));
                        }
                    }
                    let written = out.write(c, &events).await?;
                    Ok((events, written))
                })
            })
            .await?;
        self.outbox.wake(written);
        let n = events.len();
        for e in events {
            if let Event::Message { job_id, status, .. } = &e {
                tracing::info!(job.id = %job_id, session, "📬 Job {job_id}: {}", status.as_str());
            }
            self.events.publish(e);
        }
        Ok(n)
    }
}
