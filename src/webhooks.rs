//! Webhooks: events pushed to integrators, at least once, signed, in order.
//!
//! Each event a webhook wants becomes a delivery row (stable id, body) in the database. For job
//! events the queue writes the rows through the [`Outbox`] in the same transaction as the job's
//! state change, so a job that moved has its event stored, whatever happens next; WhatsApp
//! events go through a recorder task. One sender per URL posts that URL's pending deliveries
//! oldest first, retrying a failing receiver with backoff before moving on, so events reach it
//! in order (per job and overall) and a restart loses none. Each request carries
//! `X-WaGateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Node;
use crate::config::WebhookConfig;
use crate::db::{self, Db, Durability};
use crate::events::{Event, Events};

pub use crate::db::webhooks::{Delivery, recent};

/// Where delivery rows are written: which webhook wants which event, and how to wake the
/// senders once the rows are committed.
pub struct Outbox {
    hooks: Vec<WebhookConfig>,
    wake: Vec<Notify>,
}

/// The senders to wake after a commit that wrote deliveries.
#[derive(Debug, Default)]
#[must_use = "wake the senders after the transaction commits"]
pub struct Written(Vec<usize>);

impl Outbox {
    /// None when no webhook is configured: the queue then writes nothing.
    pub fn new(hooks: &[WebhookConfig]) -> Option<Arc<Outbox>> {
        (!hooks.is_empty()).then(|| {
            Arc::new(Outbox {
                hooks: hooks.to_vec(),
                wake: hooks.iter().map(|_| Notify::new()).collect(),
            })
        })
    }

    /// Writes a delivery row for each webhook that wants each event, on the caller's
    /// connection (inside its transaction).
    pub async fn write(
        &self,
        conn: &mut crate::db::Conn,
        events: &[Event],
        now: i64,
    ) -> sqlx::Result<Written> {
        let mut woken = Vec::new();
        for event in events {
            let kind = event.kind();
            let job_id = event.job_id();
            for (i, h) in self.hooks.iter().enumerate() {
                if !h.wants(&kind) {
                    continue;
                }
                let id = format!("dlv_{}", uuid::Uuid::now_v7().simple());
                let body = serde_json::to_string(&Body {
                    id: &id,
                    event: &kind,
                    created_at: crate::time::rfc3339(now),
                    data: event,
                })
                .unwrap_or_default();
                db::webhooks::insert(conn, &id, &h.url, &kind, job_id, &body, now).await?;
                if !woken.contains(&i) {
                    woken.push(i);
                }
            }
        }
        Ok(Written(woken))
    }

    /// After the commit: the senders of the written rows look again.
    pub fn wake(&self, written: Written) {
        for i in written.0 {
            self.wake[i].notify_one();
        }
    }
}

/// Starts the recorder of WhatsApp events and one sender per webhook URL.
pub fn start(
    outbox: Option<Arc<Outbox>>,
    db: &Db,
    node: &Arc<Node>,
    events: &Events,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    let Some(outbox) = outbox else {
        return;
    };
    tracker.spawn(record(
        outbox.clone(),
        db.clone(),
        events.subscribe(),
        cancel.clone(),
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("wa-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client");
    for i in 0..outbox.hooks.len() {
        tracker.spawn(send(
            outbox.clone(),
            i,
            db.clone(),
            node.clone(),
            client.clone(),
            cancel.clone(),
        ));
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    id: &'a str,
    event: &'a str,
    created_at: String,
    data: &'a Event,
}

/// Writes the deliveries of WhatsApp events (job events are written by the queue, in the
/// transaction that changed the job).
async fn record(
    outbox: Arc<Outbox>,
    db: Db,
    mut rx: tokio::sync::broadcast::Receiver<Event>,
    cancel: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = rx.recv() => match e {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::error!(missed = n, "🪝 webhook recorder fell behind; {n} WhatsApp events were not recorded");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
        };
        if event.written_with_its_job() {
            continue;
        }
        let o = outbox.clone();
        let r = db
            .writer
            .exec(Durability::Relaxed, move |c| {
                Box::pin(async move { o.write(c, &[event], crate::time::now_ms()).await })
            })
            .await;
        match r {
            Ok(written) => outbox.wake(written),
            Err(e) => tracing::error!(error = %e, "🪝 cannot record a webhook delivery"),
        }
    }
}

/// The signature header value for a body at time `t` (unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers one receiver's deliveries oldest first, one at a time, from the node that holds
/// the maintenance role: one sender per receiver in the cluster keeps them in order.
async fn send(
    outbox: Arc<Outbox>,
    index: usize,
    db: Db,
    node: Arc<Node>,
    client: reqwest::Client,
    cancel: CancellationToken,
) {
    let hook = &outbox.hooks[index];
    loop {
        if cancel.is_cancelled() {
            return;
        }
        if !node.leads() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = node.until_leading(Duration::from_secs(5)) => {}
            }
            continue;
        }
        let next = match db::webhooks::oldest_pending(&db.read, &hook.url).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "🪝 cannot read webhook deliveries");
                None
            }
        };
        let Some(d) = next else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = outbox.wake[index].notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        };
        let wait = d.next_attempt_at - crate::time::now_ms();
        if wait > 0 {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
        let t = crate::time::now_ms() / 1000;
        let result = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-wagateway-delivery", &d.id)
            .header("x-wagateway-event", &d.event)
            .header(
                "x-wagateway-signature",
                signature(hook.secret.expose_secret(), t, &d.body),
            )
            .body(d.body.clone())
            .send()
            .await;
        let error = match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the receiver answered {}", r.status())),
            Err(e) => Some(format!("cannot reach the receiver: {e}")),
        };
        let attempts = d.attempts + 1;
        let (status, next_at) = match &error {
            None => ("delivered", 0),
            Some(_) if attempts >= hook.max_attempts as i64 => ("failed", 0),
            Some(_) => (
                "pending",
                crate::time::now_ms()
                    + crate::time::backoff(
                        attempts as u32,
                        Duration::from_secs(1),
                        Duration::from_secs(300),
                    )
                    .as_millis() as i64,
            ),
        };
        match (&error, status) {
            (Some(e), "failed") => {
                tracing::error!(delivery = %d.id, attempts, "🪝 webhook delivery given up after {attempts} attempts: {e}")
            }
            (Some(e), _) => {
                tracing::warn!(delivery = %d.id, attempts, "🪝 webhook delivery failed ({e}); retrying")
            }
            _ => tracing::debug!(delivery = %d.id, "🪝 webhook delivered"),
        }
        let id = d.id.clone();
        let r = db
            .writer
            .exec(Durability::Relaxed, move |c| {
                Box::pin(async move {
                    let now = crate::time::now_ms();
                    db::webhooks::record_attempt(
                        c,
                        &id,
                        status,
                        attempts,
                        next_at,
                        error.as_deref(),
                        now,
                    )
                    .await?;
                    Ok(())
                })
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "🪝 cannot record a webhook delivery's outcome");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
