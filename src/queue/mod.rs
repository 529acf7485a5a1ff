//! The durable message queue: what the API puts in, what the workers take out, and the
//! run-time controls (concurrency, retries, pause) that survive a restart.

mod counts;
pub mod retention;
pub mod retry;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use sqlx::SqliteConnection;

use crate::config::QueueConfig;
use crate::db::{self, Db, DbError, Durability, jobs, settings};
use crate::events::{Event, Events};
use crate::hooks::Hooks;
use crate::metrics::Metrics;
use crate::webhooks::{Outbox, Written};
use crate::whatsapp::MessageSender;

pub use counts::JobState;
pub use jobs::{Counts, JobRow, NewJob};

use counts::LiveCounts;

/// Run-time queue settings, as `POST /api/whatsapp/queue/config` shows and changes them.
#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueSettings {
    pub concurrency: u32,
    pub max_retries: u32,
    pub paused: bool,
}

type EnqueueRequest = (NewJob, oneshot::Sender<Result<(JobRow, bool), DbError>>);

/// Webhook deliveries of job events, written in the transaction that changes the jobs.
#[derive(Clone, Default)]
pub(crate) struct JobOutbox(Option<Arc<Outbox>>);

impl JobOutbox {
    /// Writes the deliveries of `events` on `c` (inside its transaction); nothing without
    /// webhooks.
    async fn write(&self, c: &mut SqliteConnection, events: &[Event]) -> sqlx::Result<Written> {
        match &self.0 {
            Some(o) if !events.is_empty() => o.write(c, events, crate::time::now_ms()).await,
            _ => Ok(Written::default()),
        }
    }

    /// After the commit: wake the webhook senders.
    fn wake(&self, written: Written) {
        if let Some(o) = &self.0 {
            o.wake(written);
        }
    }
}

/// Group commit for enqueues: takes every job waiting in the channel, inserts them with one
/// multi-row statement in one durable transaction, then answers each caller. While one batch
/// commits, the next one gathers. Ends when the queue is dropped.
async fn batch_enqueues(
    writer: db::Writer,
    mut rx: mpsc::Receiver<EnqueueRequest>,
    events: Events,
    outbox: JobOutbox,
) {
    let mut pending: Vec<EnqueueRequest> = Vec::with_capacity(jobs::MAX_INSERT_ROWS);
    while rx.recv_many(&mut pending, jobs::MAX_INSERT_ROWS).await > 0 {
        let (batch, replies): (Vec<NewJob>, Vec<_>) = pending.drain(..).unzip();
        let events = events.clone();
        let (out, wake) = (outbox.clone(), outbox.clone());
        let result = writer
            .exec_then(
                Durability::Durable,
                move |c| {
                    Box::pin(async move {
                        let rows = jobs::insert_many(c, &batch).await?;
                        let waiting: Vec<Event> = rows
                            .iter()
                            .filter(|(_, created)| *created)
                            .map(|(row, _)| Event::from_row(row, "waiting"))
                            .collect();
                        let written = out.write(c, &waiting).await?;
                        Ok((rows, waiting, std::sync::Mutex::new(Some(written))))
                    })
                },
                // Published before any claim can see these rows, so `job.waiting` always
                // comes before `job.active`.
                move |(_, waiting, written)| {
                    for e in waiting {
                        events.publish(e.clone());
                    }
                    if let Some(w) = written.lock().expect("written lock").take() {
                        wake.wake(w);
                    }
                },
            )
            .await
            .map(|(rows, _, _)| rows);
        match result {
            Ok(rows) => {
                for (reply, row) in replies.into_iter().zip(rows) {
                    let _ = reply.send(Ok(row));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

type OutcomeRequest = (
    jobs::Finished,
    Event,
    oneshot::Sender<Result<bool, DbError>>,
);

/// Group commit for attempt outcomes: completions that arrive together are recorded with one
/// statement, with their webhook deliveries. Outcomes commit without an fsync: they survive a
/// crashed process, and the next durable commit makes them durable.
async fn batch_outcomes(
    writer: db::Writer,
    mut rx: mpsc::Receiver<OutcomeRequest>,
    outbox: JobOutbox,
) {
    let mut pending: Vec<OutcomeRequest> = Vec::with_capacity(256);
    while rx.recv_many(&mut pending, 256).await > 0 {
        let mut batch = Vec::with_capacity(pending.len());
        let mut events = Vec::with_capacity(pending.len());
        let mut replies = Vec::with_capacity(pending.len());
        for (f, e, r) in pending.drain(..) {
            batch.push(f);
            events.push(e);
            replies.push(r);
        }
        let single = jobs::all_completed(&batch) && outbox.0.is_none();
        let out = outbox.clone();
        let result = writer
            .exec_with(Durability::Relaxed, single, move |c| {
                Box::pin(async move {
                    let held = jobs::finish_many(c, &batch, crate::time::now_ms()).await?;
                    let moved: Vec<Event> = events
                        .into_iter()
                        .zip(&held)
                        .filter(|(_, h)| **h)
                        .map(|(e, _)| e)
                        .collect();
                    let written = out.write(c, &moved).await?;
                    Ok((held, written))
                })
            })
            .await;
        let result = result.map(|(held, written)| {
            outbox.wake(written);
            held
        });
        match result {
            Ok(held) => {
                for (reply, ok) in replies.into_iter().zip(held) {
                    let _ = reply.send(Ok(ok));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// A change to the settings; absent fields stay as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct SettingsChange {
    pub concurrency: Option<u32>,
    pub max_retries: Option<u32>,
    pub paused: Option<bool>,
}

pub struct Queue {
    db: Db,
    hooks: Arc<dyn Hooks>,
    sender: Arc<dyn MessageSender>,
    backoff_base: Duration,
    backoff_max: Duration,
    send_timeout: Duration,
    keep_completed: Duration,
    keep_failed: Duration,
    prune_interval: Duration,
    concurrency: AtomicU32,
    max_retries: AtomicU32,
    paused: AtomicBool,
    /// Jobs being sent right now by this process.
    active: AtomicU32,
    /// Wakes the dispatcher: a job was queued or finished, or the settings changed.
    wake: Notify,
    /// To the enqueue batcher, which stores all waiting jobs with one statement and one fsync.
    enqueue_tx: mpsc::Sender<EnqueueRequest>,
    /// To the outcome batcher, which records finished attempts in groups.
    outcome_tx: mpsc::Sender<OutcomeRequest>,
    counts: LiveCounts,
    events: Events,
    outbox: JobOutbox,
    metrics: Arc<Metrics>,
}

const KEY_CONCURRENCY: &str = "queue.concurrency";
const KEY_MAX_RETRIES: &str = "queue.max_retries";
const KEY_PAUSED: &str = "queue.paused";

impl Queue {
    /// Builds the queue with settings from the database where the API changed them, else from
    /// the config file.
    pub async fn new(
        db: Db,
        config: &QueueConfig,
        hooks: Arc<dyn Hooks>,
        sender: Arc<dyn MessageSender>,
        events: Events,
        outbox: Option<Arc<Outbox>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Queue>> {
        let outbox = JobOutbox(outbox);
        let stored = |key: &'static str| {
            let pool = db.read.clone();
            async move { settings::get(&pool, key).await }
        };
        let concurrency = match stored(KEY_CONCURRENCY).await?.and_then(|v| v.parse().ok()) {
            Some(v) if v != config.concurrency => {
                tracing::info!(
                    concurrency = v,
                    file = config.concurrency,
                    "queue concurrency set through the API overrides gateway.toml"
                );
                v
            }
            _ => config.concurrency,
        };
        let max_retries = match stored(KEY_MAX_RETRIES).await?.and_then(|v| v.parse().ok()) {
            Some(v) if v != config.max_retries => {
                tracing::info!(
                    max_retries = v,
                    file = config.max_retries,
                    "queue max_retries set through the API overrides gateway.toml"
                );
                v
            }
            _ => config.max_retries,
        };
        let paused = stored(KEY_PAUSED).await?.is_some_and(|v| v == "true");
        if paused {
            tracing::warn!(
                "the queue is paused (set through the API); resume with POST /api/whatsapp/queue/config {{\"paused\":false}}"
            );
        }
        let counts = LiveCounts::new(jobs::counts(&db.read).await?);
        let (enqueue_tx, enqueue_rx) = mpsc::channel(4096);
        tokio::spawn(batch_enqueues(
            db.writer.clone(),
            enqueue_rx,
            events.clone(),
            outbox.clone(),
        ));
        let (outcome_tx, outcome_rx) = mpsc::channel(4096);
        tokio::spawn(batch_outcomes(
            db.writer.clone(),
            outcome_rx,
            outbox.clone(),
        ));
        Ok(Arc::new(Queue {
            events,
            outbox,
            metrics,
            enqueue_tx,
            outcome_tx,
            counts,
            db,
            hooks,
            sender,
            backoff_base: config.backoff_base.0,
            backoff_max: config.backoff_max.0,
            send_timeout: config.send_timeout.0,
            keep_completed: config.keep_completed.0,
            keep_failed: config.keep_failed.0,
            prune_interval: config.prune_interval.0,
            concurrency: AtomicU32::new(concurrency),
            max_retries: AtomicU32::new(max_retries),
            paused: AtomicBool::new(paused),
            active: AtomicU32::new(0),
            wake: Notify::new(),
        }))
    }

    pub fn hooks(&self) -> &dyn Hooks {
        self.hooks.as_ref()
    }

    pub fn sender(&self) -> &dyn MessageSender {
        self.sender.as_ref()
    }

    /// Puts jobs left `active` by a dead process back to `waiting`. Call once, before the workers.
    pub async fn recover(&self) -> Result<(), DbError> {
        let (recovered, looped) = self
            .db
            .writer
            .exec(Durability::Durable, |c| {
                Box::pin(async move { jobs::recover_active(c, crate::time::now_ms()).await })
            })
            .await?;
        self.counts
            .shift(JobState::Active, JobState::Waiting, recovered as i64);
        self.counts
            .shift(JobState::Waiting, JobState::Failed, looped as i64);
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "♻️ Recovered {recovered} job(s) that were active when the gateway stopped"
            );
        }
        if looped > 0 {
            tracing::error!(
                failed = looped,
                "❌ {looped} job(s) failed permanently: crash-loop (the gateway died while sending them {} times)",
                jobs::MAX_RESCUES + 1
            );
        }
        Ok(())
    }

    /// Stores a job durably (fsynced) and wakes the workers. Returns the row and whether it is
    /// new; an existing row means the `message_id` was seen before.
    pub async fn enqueue(&self, job: NewJob) -> Result<(JobRow, bool), DbError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue_tx
            .send((job, tx))
            .await
            .map_err(|_| DbError::WriterGone)?;
        let (row, created) = rx.await.map_err(|_| DbError::WriterGone)??;
        if created {
            self.counts.add(JobState::Waiting, 1);
            tracing::info!(
                job.id = %row.id,
                "📥 Message queued: {} to {} (priority: {})",
                row.id,
                crate::domain::mask_number(&row.number),
                crate::domain::Priority::from_rank(row.priority).as_str()
            );
            self.wake.notify_one();
        }
        Ok((row, created))
    }

    pub fn settings(&self) -> QueueSettings {
        QueueSettings {
            concurrency: self.concurrency.load(Ordering::Relaxed),
            max_retries: self.max_retries.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
        }
    }

    /// Applies a change at once and stores it, so it survives a restart.
    pub async fn update_settings(&self, change: SettingsChange) -> Result<QueueSettings, DbError> {
        let mut pairs = Vec::new();
        if let Some(c) = change.concurrency {
            pairs.push((KEY_CONCURRENCY, c.to_string()));
        }
        if let Some(m) = change.max_retries {
            pairs.push((KEY_MAX_RETRIES, m.to_string()));
        }
        if let Some(p) = change.paused {
            pairs.push((KEY_PAUSED, p.to_string()));
        }
        self.db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    let now = crate::time::now_ms();
                    for (k, v) in &pairs {
                        settings::set(c, k, v, now).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        if let Some(c) = change.concurrency {
            self.concurrency.store(c, Ordering::Relaxed);
        }
        if let Some(m) = change.max_retries {
            self.max_retries.store(m, Ordering::Relaxed);
        }
        if let Some(p) = change.paused {
            self.paused.store(p, Ordering::Relaxed);
        }
        let now = self.settings();
        tracing::info!(
            concurrency = now.concurrency,
            max_retries = now.max_retries,
            paused = now.paused,
            "⚙️ Queue settings changed"
        );
        self.wake.notify_one();
        Ok(now)
    }

    /// Records how an attempt ended; false when the job's lease no longer held.
    async fn record(&self, finished: jobs::Finished, event: Event) -> Result<bool, DbError> {
        let to = match finished.outcome {
            jobs::Outcome::Completed { .. } => JobState::Completed,
            jobs::Outcome::Retry { .. } => JobState::Waiting,
            jobs::Outcome::Failed { .. } => JobState::Failed,
        };
        // A transient database error (a full disk, a busy file) must not leave the job `active`
        // until the next restart: try again with backoff before giving up.
        let mut delay = Duration::from_millis(100);
        let held = loop {
            let (tx, rx) = oneshot::channel();
            self.outcome_tx
                .send((finished.clone(), event.clone(), tx))
                .await
                .map_err(|_| DbError::WriterGone)?;
            match rx.await.map_err(|_| DbError::WriterGone)? {
                Ok(held) => break held,
                Err(DbError::WriterGone) => return Err(DbError::WriterGone),
                Err(e) if delay > Duration::from_secs(5) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record a job outcome; trying again in {}", humantime::format_duration(delay));
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        };
        if held {
            self.counts.shift(JobState::Active, to, 1);
            self.events.publish(event);
        }
        Ok(held)
    }

    /// Jobs by state, without touching the database.
    pub fn counts(&self) -> Counts {
        self.counts.snapshot()
    }

    /// Jobs being sent right now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    pub async fn requeue_failed(
        &self,
        id: String,
    ) -> Result<Result<Option<JobRow>, String>, DbError> {
        let out = self.outbox.clone();
        let (r, written) = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    let r = jobs::requeue_failed(c, &id, crate::time::now_ms()).await?;
                    let events: Vec<Event> = match &r {
                        Ok(Some(row)) => vec![Event::from_row(row, "waiting")],
                        _ => vec![],
                    };
                    let written = out.write(c, &events).await?;
                    Ok((r, written))
                })
            })
            .await?;
        self.outbox.wake(written);
        if let Ok(Some(row)) = &r {
            self.counts.shift(JobState::Failed, JobState::Waiting, 1);
            self.events.publish(Event::from_row(row, "waiting"));
            tracing::info!(job.id = %row.id, "🔁 Job {} re-queued by request", row.id);
            self.wake.notify_one();
        }
        Ok(r)
    }

    pub async fn cancel_waiting(
        &self,
        id: String,
    ) -> Result<Result<Option<JobRow>, String>, DbError> {
        let out = self.outbox.clone();
        let (r, written) = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    let r = jobs::cancel_waiting(c, &id, crate::time::now_ms()).await?;
                    let events: Vec<Event> = match &r {
                        Ok(Some(row)) => vec![Event::from_row(row, "failed")],
                        _ => vec![],
                    };
                    let written = out.write(c, &events).await?;
                    Ok((r, written))
                })
            })
            .await?;
        self.outbox.wake(written);
        if let Ok(Some(row)) = &r {
            self.counts.shift(JobState::Waiting, JobState::Failed, 1);
            self.events.publish(Event::from_row(row, "failed"));
            tracing::info!(job.id = %row.id, "🚫 Job {} cancelled by request", row.id);
        }
        Ok(r)
    }

    /// Deletes jobs in the given states (the caller keeps `active` out).
    pub async fn clear(&self, states: Vec<JobState>) -> Result<u64, DbError> {
        let names: Vec<&'static str> = states.iter().map(|s| s.as_str()).collect();
        let per_state = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { jobs::clear(c, &names).await })
            })
            .await?;
        let mut n = 0;
        for (state, cleared) in states.iter().zip(per_state) {
            self.counts.add(*state, -(cleared as i64));
            n += cleared;
        }
        tracing::info!(cleared = n, "🧹 Cleared {n} job(s)");
        Ok(n)
    }

    /// Starts the dispatcher, which claims jobs as workers free up. Sends in flight when
    /// `cancel` fires are tracked by `tracker`, so shutdown can wait for them.
    pub fn start(self: &Arc<Self>, cancel: CancellationToken, tracker: &TaskTracker) {
        let queue = self.clone();
        let workers = tracker.clone();
        let dispatch_cancel = cancel.clone();
        tracker.spawn(async move { worker::dispatch(queue, dispatch_cancel, workers).await });
        tracker.spawn(retention::run(
            self.clone(),
            self.keep_completed,
            self.keep_failed,
            self.prune_interval,
            cancel,
        ));
    }

    /// The live event bus.
    pub fn events(&self) -> &Events {
        &self.events
    }
}
