//! PostgreSQL's `LISTEN/NOTIFY` as a wake-up hint between nodes: a node that queues work for a
//! session another node runs tells that node at once, instead of leaving it to its next poll.
//!
//! Only a hint. Notifications sent while a listener reconnects are lost, so every node still
//! polls (`[cluster] poll`), and a listener that (re)connects wakes everything once. A commit
//! that carries a NOTIFY takes a global lock, so a notify is its own statement after the
//! commit, at most one per key per [`THROTTLE`]; a burst ends with a trailing one, so the last
//! job of a burst is not left to the poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Jobs became due for the session named in the payload.
pub const JOBS: &str = "wa_gateway_jobs";

/// At most one notify per channel and key this often.
const THROTTLE: Duration = Duration::from_millis(100);

/// Sends throttled notifies on a pool's connections.
pub struct Notifier {
    pool: PgPool,
    /// Per channel and key: when the last notify went, and whether one is scheduled.
    slots: Mutex<HashMap<(&'static str, String), Slot>>,
}

#[derive(Clone, Copy)]
struct Slot {
    sent_at: Option<Instant>,
    pending: bool,
}

impl Notifier {
    pub fn new(pool: PgPool) -> Arc<Notifier> {
        Arc::new(Notifier {
            pool,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// Tells the listeners of `channel` about `key`, now or at the end of the throttle window
    /// (once, however often it is asked meanwhile). Never waits; a failed notify is logged,
    /// and the poll covers it.
    pub fn notify(self: &Arc<Self>, channel: &'static str, key: &str) {
        let wait = {
            let mut slots = self.slots.lock().expect("notify lock");
            let slot = slots.entry((channel, key.to_string())).or_insert(Slot {
                sent_at: None,
                pending: false,
            });
            if slot.pending {
                return;
            }
            slot.pending = true;
            slot.sent_at
                .map_or(Duration::ZERO, |at| THROTTLE.saturating_sub(at.elapsed()))
        };
        let (me, key) = (self.clone(), key.to_string());
        tokio::spawn(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if let Some(slot) = me
                .slots
                .lock()
                .expect("notify lock")
                .get_mut(&(channel, key.clone()))
            {
                *slot = Slot {
                    sent_at: Some(Instant::now()),
                    pending: false,
                };
            }
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(&key)
                .execute(&me.pool)
                .await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, channel, "NOTIFY failed; the other nodes' poll covers it");
            }
        });
    }
}

/// Listens on `channels` until `cancel`: `on(channel, payload)` for each notification, and
/// `on_gap()` after every (re)connection, when notifications may have been missed.
pub async fn listen(
    pool: PgPool,
    channels: &[&str],
    on: impl Fn(&str, &str),
    on_gap: impl Fn(),
    cancel: CancellationToken,
) {
    let mut failures = 0u32;
    while !cancel.is_cancelled() {
        let connected = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen_all(channels.iter().copied()).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match connected.await {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                tracing::debug!(error = %e, "cannot LISTEN yet; polling meanwhile");
                let wait = crate::time::backoff(
                    failures,
                    Duration::from_millis(500),
                    Duration::from_secs(10),
                );
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        failures = 0;
        on_gap();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                got = listener.try_recv() => match got {
                    Ok(Some(n)) => on(n.channel(), n.payload()),
                    // The connection dropped; the next call reconnects.
                    Ok(None) => on_gap(),
                    Err(e) => {
                        tracing::debug!(error = %e, "LISTEN connection lost; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}
