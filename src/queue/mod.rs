//! The durable message queue: what the API puts in, what the workers take out, and the
//! run-time controls that survive a restart. Writes that come in bursts (enqueues, outcomes)
//! share commits through one batcher (`batch`); each job state change writes its webhook
//! deliveries in the same transaction (`JobOutbox`); `settings` holds the controls; `worker`
//! claims and sends, one step of which tests can run on their own; `lane` keeps each
//! session's jobs apart, so one held session never blocks another; `slot` is one worker's
//! sends, outcomes and the next job it takes with each.

mod acks;
mod batch;
mod counts;
mod heartbeat;
mod inbound;
mod lane;
mod pacing;
pub mod retention;
pub mod retry;
mod settings;
mod slot;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::QueueConfig;
use crate::db::jobs::{Admin, AdminOutcome};
use crate::db::{Db, DbError, Durability, jobs};
use crate::events::{Event, Events};
use crate::hooks::Hooks;
use crate::metrics::Metrics;
use crate::webhooks::{Outbox, Written};
use batch::{Batcher, Record, Recorded, enqueue_batcher, outcome_batcher};
use counts::LiveCounts;

pub use jobs::{Counts, JobRow, JobState, NewJob};
pub use lane::{DefaultConcurrency, Lane};
pub use pacing::{PacingView, TROUBLE_CODES};
pub use settings::{QueueSettings, SettingsChange};
pub use worker::Step;

/// Webhook deliveries of job events, written in the transaction that changes the jobs.
#[derive(Clone, Default)]
pub(crate) struct JobOutbox(Option<Arc<Outbox>>);

impl JobOutbox {
    /// Writes the deliveries of `events` on `c` (inside its transaction); nothing without
    /// webhooks.
    async fn write(&self, c: &mut crate::db::Conn, events: &[Event]) -> sqlx::Result<Written> {
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

pub struct Queue {
    db: Db,
    /// This gateway node: its name goes on every claim, and it starts no send without its lease.
    node: Arc<crate::cluster::Node>,
    /// The time every rule of the queue reads (a test's own clock in tests).
    clock: crate::time::Clock,
    hooks: Arc<dyn Hooks>,
    /// One lane per session, by name.
    lanes: RwLock<HashMap<String, Arc<Lane>>>,
    /// Set by `start`: where lanes opened later run their dispatchers.
    running: Mutex<Option<(CancellationToken, TaskTracker)>>,
    backoff_base: Duration,
    backoff_max: Duration,
    send_timeout: Duration,
    keep_completed: Duration,
    keep_failed: Duration,
    /// Numbers that asked a session not to write to them.
    opt_outs: inbound::OptOuts,
    /// When each chat last got an automatic reply.
    replies: inbound::Replies,
    prune_interval: Duration,
    settings: settings::Settings,
    /// Jobs being sent right now by this process, all lanes together.
    active: AtomicU32,
    /// Stores accepted jobs together: one statement and one fsync per batch.
    enqueues: Batcher<NewJob, (JobRow, bool)>,
    /// Records finished attempts together, each only if its lease still holds, and claims the
    /// next due job for each slot that asks, in the same writer round trip.
    outcomes: Batcher<Record, Recorded>,
    counts: LiveCounts,
    events: Events,
    outbox: JobOutbox,
    metrics: Arc<Metrics>,
    notifier: Option<Arc<crate::db::notify::Notifier>>,
    poll: Duration,
}

/// What the queue shares with the rest of the gateway.
pub struct Wiring {
    pub events: Events,
    /// Webhook deliveries, stored with the outcomes they report.
    pub outbox: Option<Arc<Outbox>>,
    pub metrics: Arc<Metrics>,
    /// The time every rule of the queue reads (a test's own clock in tests).
    pub clock: crate::time::Clock,
    /// This node: its heartbeat keeps the claims alive.
    pub node: Arc<crate::cluster::Node>,
    /// Tells the other nodes when jobs become due (PostgreSQL with `cluster.notify`).
    pub notifier: Option<Arc<crate::db::notify::Notifier>>,
    /// How often an idle lane looks for jobs nobody told it about (`cluster.poll`).
    pub poll: Duration,
}

impl Queue {
    /// Builds the queue with settings from the database where the API changed them, else from
    /// the config file, after putting back the jobs a dead process left `active`. It has no
    /// lanes yet: each session opens its own.
    pub async fn new(
        db: Db,
        config: &QueueConfig,
        hooks: Arc<dyn Hooks>,
        wiring: Wiring,
    ) -> anyhow::Result<Arc<Queue>> {
        let Wiring {
            events,
            outbox,
            metrics,
            clock,
            node,
            notifier,
            poll,
        } = wiring;
        let outbox = JobOutbox(outbox);
        let settings = settings::Settings::load(&db, config).await?;
        // With SQLite this process is the only node: whatever is active was left by a dead one.
        let mine = (db.backend() == crate::db::Backend::Postgres).then(|| node.id().to_string());
        recover(&db, clock.now_ms(), mine).await?;
        let counts = LiveCounts::new(jobs::counts_by_session(&db.read).await?);
        let opt_outs = inbound::OptOuts::load(crate::db::inbound::opt_outs(&db.read, None).await?);
        let enqueues = enqueue_batcher(db.writer.clone(), events.clone(), outbox.clone());
        let outcomes = outcome_batcher(
            db.writer.clone(),
            outbox.clone(),
            clock.clone(),
            node.id().clone(),
        );
        Ok(Arc::new(Queue {
            node,
            clock,
            events,
            outbox,
            metrics,
            enqueues,
            outcomes,
            counts,
            db,
            hooks,
            lanes: RwLock::default(),
            running: Mutex::new(None),
            settings,
            backoff_base: config.backoff_base.0,
            backoff_max: config.backoff_max.0,
            send_timeout: config.send_timeout.0,
            opt_outs,
            replies: Default::default(),
            keep_completed: config.keep_completed.0,
            keep_failed: config.keep_failed.0,
            prune_interval: config.prune_interval.0,
            active: AtomicU32::new(0),
            notifier,
            poll,
        }))
    }

    pub fn hooks(&self) -> &dyn Hooks {
        self.hooks.as_ref()
    }

    pub fn clock(&self) -> &crate::time::Clock {
        &self.clock
    }

    /// True while this node may start the lane's sends: it holds its own lease and a fresh
    /// lease of the lane's session.
    pub fn may_send(&self, lane: &Lane) -> bool {
        self.node.holds_lease() && lane.owned().is_some_and(|(_, at)| self.node.fresh(at))
    }

    /// A new claim by this node.
    fn lease(&self) -> jobs::Lease {
        jobs::Lease::new(self.node.id())
    }
}

/// Puts jobs left `active` by a dead process back to `waiting`, before any lane runs: all of
/// them, or those of the node named `node` (an earlier run of this one).
async fn recover(db: &Db, now: i64, node: Option<String>) -> Result<(), DbError> {
    let (recovered, looped) = db
        .writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move { jobs::recover_active(c, now, node.as_deref()).await })
        })
        .await?;
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

impl Queue {
    /// Stores a job durably (fsynced) and wakes the workers. Returns the row and whether it is
    /// new; an existing row means the `message_id` was seen before.
    pub async fn enqueue(&self, job: NewJob) -> Result<(JobRow, bool), DbError> {
        let (row, created) = self.enqueues.submit(job).await?;
        if created {
            self.counts.add(&row.session, JobState::Waiting, 1);
            tracing::info!(
                job.id = %row.id,
                "📥 Message queued: {} to {} (priority: {})",
                row.id,
                crate::domain::mask_number(&row.number),
                crate::domain::Priority::from_rank(row.priority).as_str()
            );
            self.wake(&row.session);
            self.announce(&row.session);
        }
        Ok((row, created))
    }

    /// Tells the other nodes that `session` has jobs due (a hint; they also poll).
    pub(super) fn announce(&self, session: &str) {
        if let Some(n) = &self.notifier {
            n.notify(crate::db::notify::JOBS, session);
        }
    }

    pub fn settings(&self) -> QueueSettings {
        self.settings.get()
    }

    /// Applies a change at once and stores it, so it survives a restart.
    pub async fn update_settings(&self, change: SettingsChange) -> Result<QueueSettings, DbError> {
        let now = self.settings.update(&self.db, change).await?;
        self.wake_all();
        Ok(now)
    }

    /// Records how an attempt of a job of `session` ended, and with `next` claims the
    /// session's next due job for the same slot; `held` is false when the job's lease no
    /// longer held. A claimed job is counted `waiting` → `active` here; the slot it was claimed
    /// for was never freed, so it is not counted again in `active()`.
    async fn record(
        &self,
        session: &str,
        finished: jobs::Finished,
        event: Event,
        next: bool,
    ) -> Result<Recorded, DbError> {
        let to = finished.outcome.state();
        let record = Record {
            finished,
            event,
            next: next.then(|| session.to_string()),
        };
        // A transient database error (a full disk, a busy file) must not leave the job `active`
        // until the next restart: try again with backoff (0.1s … 3.2s) before giving up.
        let mut tries = 0;
        let recorded = loop {
            tries += 1;
            match self.outcomes.submit(record.clone()).await {
                Ok(recorded) => break recorded,
                Err(DbError::WriterGone) => return Err(DbError::WriterGone),
                Err(e) if tries >= 6 => return Err(e),
                Err(e) => {
                    let delay = crate::time::backoff(
                        tries,
                        Duration::from_millis(100),
                        Duration::from_secs(4),
                    );
                    tracing::warn!(error = %e, "cannot record a job outcome; trying again in {}", humantime::format_duration(delay));
                    tokio::time::sleep(delay).await;
                }
            }
        };
        if recorded.held {
            self.counts.shift(session, JobState::Active, to, 1);
            self.events.publish(record.event);
        }
        Ok(recorded)
    }

    /// Jobs by state, without touching the database.
    pub fn counts(&self) -> Counts {
        self.counts.snapshot()
    }

    /// One session's jobs by state.
    pub fn counts_of(&self, session: &str) -> Counts {
        self.counts.of(session)
    }

    /// Jobs by session and state: every session that has jobs.
    pub fn counts_by_session(&self) -> BTreeMap<String, Counts> {
        self.counts.by_session()
    }

    /// Jobs being sent right now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// An operator's transition of one job (re-queue a failed job, cancel a waiting one), with
    /// its event and webhook deliveries.
    pub async fn admin(&self, id: String, action: Admin) -> Result<AdminOutcome, DbError> {
        let out = self.outbox.clone();
        let now = self.clock.now_ms();
        let (r, written) = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    let r = jobs::admin(c, &id, action, now).await?;
                    let events: Vec<Event> = match &r {
                        AdminOutcome::Done(row) => {
                            vec![Event::from_row(row, action.to().as_str())]
                        }
                        _ => vec![],
                    };
                    let written = out.write(c, &events).await?;
                    Ok((r, written))
                })
            })
            .await?;
        self.outbox.wake(written);
        if let AdminOutcome::Done(row) = &r {
            self.counts
                .shift(&row.session, action.from(), action.to(), 1);
            self.events
                .publish(Event::from_row(row, action.to().as_str()));
            match action {
                Admin::Requeue => {
                    tracing::info!(job.id = %row.id, "🔁 Job {} re-queued by request", row.id);
                    self.wake(&row.session);
                    self.announce(&row.session);
                }
                Admin::Cancel => {
                    tracing::info!(job.id = %row.id, "🚫 Job {} cancelled by request", row.id)
                }
            }
        }
        Ok(r)
    }

    /// Deletes jobs in the given states (the caller keeps `active` out).
    pub async fn clear(&self, states: Vec<JobState>) -> Result<u64, DbError> {
        let wanted = states.clone();
        let per_state = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { jobs::clear(c, &wanted).await })
            })
            .await?;
        let mut n = 0;
        for (state, cleared) in states.iter().zip(per_state) {
            for (session, k) in cleared {
                self.counts.add(&session, *state, -(k as i64));
                n += k;
            }
        }
        tracing::info!(cleared = n, "🧹 Cleared {n} job(s)");
        Ok(n)
    }

    /// Starts a dispatcher per lane (and for each lane opened later), which claims jobs as
    /// workers free up. Sends in flight when `cancel` fires are tracked by `tracker`, so
    /// shutdown can wait for them.
    pub fn start(self: &Arc<Self>, cancel: CancellationToken, tracker: &TaskTracker) {
        *self.running.lock().expect("running lock") = Some((cancel.clone(), tracker.clone()));
        let lanes: Vec<Arc<Lane>> = self
            .lanes
            .read()
            .expect("lanes lock")
            .values()
            .cloned()
            .collect();
        for lane in lanes {
            self.spawn_dispatcher(lane, cancel.clone(), tracker.clone());
        }
        tracker.spawn(retention::run(
            self.clone(),
            self.keep_completed,
            self.keep_failed,
            self.prune_interval,
            cancel,
        ));
    }

    /// Runs this node's heartbeat until `stop`: renewing its lease and putting back the jobs
    /// of dead nodes. Stop it after the last send, then [`crate::cluster::Node::leave`].
    pub fn beat(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(heartbeat::run(self.clone(), stop))
    }

    /// This gateway node.
    pub fn node(&self) -> &Arc<crate::cluster::Node> {
        &self.node
    }

    /// The live event bus.
    pub fn events(&self) -> &Events {
        &self.events
    }
}
