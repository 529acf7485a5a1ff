//! A lane per session: the queue claims each session's jobs on their own, at that session's
//! concurrency, through that session's driver. A paused, stopped or disconnected session holds
//! only its own lane; the others keep sending.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{JobState, Queue, worker};
use crate::db::{DbError, Durability, jobs};
use crate::events::Event;
use crate::whatsapp::MessageSender;

/// What a lane sends at when its session sets no `concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultConcurrency {
    /// The queue's `concurrency` (the sandbox).
    Queue,
    /// One at a time: a browser types into one chat at a time.
    One,
}

pub struct Lane {
    name: String,
    /// The session's driver while it runs; none while it is stopped.
    sender: RwLock<Option<Arc<dyn MessageSender>>>,
    /// 0: [`Lane::default_concurrency`] decides.
    concurrency: AtomicU32,
    default_concurrency: RwLock<DefaultConcurrency>,
    paused: AtomicBool,
    /// Jobs of this lane being sent right now.
    pub(super) active: AtomicU32,
    /// Wakes this lane's dispatcher: a job was queued or finished, or a setting changed.
    pub(super) wake: Notify,
    /// Ends this lane's dispatcher (the session was deleted).
    pub(super) closed: CancellationToken,
    /// This lane's sends in flight, with their outcomes.
    pub(super) inflight: TaskTracker,
    /// Its pacing rules and what it sent lately.
    pub(super) pacer: super::pacing::Pacer,
    /// This node's lease of the session: the epoch it holds (0: none) and when it last renewed
    /// it (system ms). Nothing is claimed or sent without a fresh one.
    epoch: AtomicI64,
    renewed_at: AtomicI64,
}

impl Lane {
    pub(super) fn new(name: &str, default: DefaultConcurrency) -> Lane {
        Lane {
            name: name.to_string(),
            sender: RwLock::new(None),
            concurrency: AtomicU32::new(0),
            default_concurrency: RwLock::new(default),
            paused: AtomicBool::new(false),
            active: AtomicU32::new(0),
            wake: Notify::new(),
            closed: CancellationToken::new(),
            inflight: TaskTracker::new(),
            pacer: Default::default(),
            epoch: AtomicI64::new(0),
            renewed_at: AtomicI64::new(0),
        }
    }

    /// This node owns the session under `epoch`, renewed at `renewed_at` (system ms); `None`:
    /// it does not (any more).
    pub fn set_owned(&self, owned: Option<(i64, i64)>) {
        let (epoch, at) = owned.unwrap_or((0, 0));
        self.renewed_at.store(at, Ordering::Release);
        self.epoch.store(epoch, Ordering::Release);
        self.wake.notify_one();
    }

    /// A renewal of the lease held under `epoch`, at `at`. It wakes the dispatcher only when
    /// `was_stale` (the lane had stopped sending for want of a fresh lease): a renewal on time
    /// changes nothing it waits for.
    pub fn renewed(&self, epoch: i64, at: i64, was_stale: bool) {
        self.renewed_at.store(at, Ordering::Release);
        self.epoch.store(epoch, Ordering::Release);
        if was_stale {
            self.wake.notify_one();
        }
    }

    /// The epoch this node owns the session under and when it last renewed it.
    pub fn owned(&self) -> Option<(i64, i64)> {
        let epoch = self.epoch.load(Ordering::Acquire);
        (epoch > 0).then(|| (epoch, self.renewed_at.load(Ordering::Acquire)))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sender(&self) -> Option<Arc<dyn MessageSender>> {
        self.sender.read().expect("lane lock").clone()
    }

    /// Gives the lane its driver (a session started) or takes it away (stopped).
    pub fn set_sender(&self, sender: Option<Arc<dyn MessageSender>>) {
        *self.sender.write().expect("lane lock") = sender;
        self.wake.notify_one();
    }

    /// True when the session's driver is running and connected.
    pub fn is_ready(&self) -> bool {
        self.sender().is_some_and(|s| s.is_ready())
    }

    /// Applies the session's settings; `None` concurrency follows the default.
    pub fn configure(&self, concurrency: Option<u32>, default: DefaultConcurrency, paused: bool) {
        self.concurrency
            .store(concurrency.unwrap_or(0), Ordering::Relaxed);
        *self.default_concurrency.write().expect("lane lock") = default;
        self.paused.store(paused, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// The concurrency in force, given the queue's.
    pub fn concurrency(&self, queue: u32) -> u32 {
        match self.concurrency.load(Ordering::Relaxed) {
            0 => match *self.default_concurrency.read().expect("lane lock") {
                DefaultConcurrency::Queue => queue,
                DefaultConcurrency::One => 1,
            },
            n => n,
        }
    }

    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until every send this lane started has ended and its outcome is recorded.
    pub async fn drained(&self) {
        self.inflight.close();
        self.inflight.wait().await;
        self.inflight.reopen();
    }
}

/// The queue's lanes: opened by sessions, each with its own dispatcher.
impl Queue {
    /// The session's lane, opened (and its dispatcher started, once the queue runs) if new.
    pub fn open_lane(self: &Arc<Self>, name: &str, default: DefaultConcurrency) -> Arc<Lane> {
        let mut lanes = self.lanes.write().expect("lanes lock");
        if let Some(l) = lanes.get(name) {
            return l.clone();
        }
        let lane = Arc::new(Lane::new(name, default));
        lanes.insert(name.to_string(), lane.clone());
        drop(lanes);
        if let Some((cancel, tracker)) = self.running.lock().expect("running lock").clone() {
            self.spawn_dispatcher(lane.clone(), cancel, tracker);
        }
        lane
    }

    pub fn lane(&self, name: &str) -> Option<Arc<Lane>> {
        self.lanes.read().expect("lanes lock").get(name).cloned()
    }

    /// Closes a deleted session's lane: no more claims, and every send it started has ended.
    pub async fn close_lane(&self, name: &str) {
        let lane = self.lanes.write().expect("lanes lock").remove(name);
        if let Some(lane) = lane {
            lane.closed.cancel();
            lane.drained().await;
        }
    }

    pub(super) fn spawn_dispatcher(
        self: &Arc<Self>,
        lane: Arc<Lane>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) {
        let queue = self.clone();
        let workers = tracker.clone();
        tracker.spawn(async move { worker::dispatch(queue, lane, cancel, workers).await });
    }

    /// Every lane looks for due jobs (after notifications may have been missed).
    pub fn wake_all(&self) {
        for lane in self.lanes.read().expect("lanes lock").values() {
            lane.wake.notify_one();
        }
    }

    /// The session's lane looks for due jobs (another node said it has some).
    pub fn wake(&self, session: &str) {
        if let Some(l) = self.lane(session) {
            l.wake.notify_one();
        }
    }

    /// Ends every job of a deleted session that has not ended: `failed` with
    /// `session_deleted`, with their events and webhooks. Call after [`Queue::close_lane`].
    pub async fn fail_session(&self, name: &str) -> Result<u64, DbError> {
        let out = self.outbox.clone();
        let session = name.to_string();
        let now = self.clock.now_ms();
        let (rows, written) = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    let rows = jobs::fail_session(c, &session, now).await?;
                    let events: Vec<Event> =
                        rows.iter().map(|r| Event::from_row(r, "failed")).collect();
                    let written = out.write(c, &events).await?;
                    Ok((rows, written))
                })
            })
            .await?;
        self.outbox.wake(written);
        // A deleted session's lane is closed: none of these can be active, but count what was.
        let before = self.counts.of(name);
        self.counts
            .shift(name, JobState::Waiting, JobState::Failed, before.waiting);
        self.counts
            .shift(name, JobState::Active, JobState::Failed, before.active);
        for row in &rows {
            self.events.publish(Event::from_row(row, "failed"));
        }
        if !rows.is_empty() {
            tracing::warn!(
                session = name,
                failed = rows.len(),
                "❌ {} waiting job(s) of the deleted session {name} failed (session_deleted)",
                rows.len()
            );
        }
        Ok(rows.len() as u64)
    }
}
