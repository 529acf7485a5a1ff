//! The worker pool: each session's lane has a dispatcher that claims as many of its due jobs
//! as it has free slots and runs each send in its own task. Concurrency is read on every
//! round, so a change applies at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pacing::PaceStep;
use super::slot::{process, run_slot};
use super::{JobRow, JobState, Lane, Queue};
use crate::db::{DbError, Durability, jobs};
use crate::events::Event;

/// Longest sleep of a lane its pacing holds back.
const HELD_POLL: Duration = Duration::from_secs(60);

/// What one step of the worker did ([`Queue::try_execute_one`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The queue or the session is paused: nothing was claimed.
    Paused,
    /// The session is not connected (or has no lane): nothing was claimed.
    Held,
    /// No job is due.
    Idle,
    /// Pacing holds the session back until `until` (Unix ms), by `reason`.
    Paced { until: i64, reason: String },
    /// One job was sent; it is now in `state` (`waiting` again for a retry), or `None` when its
    /// lease no longer held.
    Ran {
        job_id: String,
        state: Option<JobState>,
    },
}

impl Queue {
    /// One step of a session's worker, for tests that need order: unless paused or held,
    /// claims the session's next due job, sends it and records the outcome.
    pub async fn try_execute_one(&self, session: &str) -> Result<Step, DbError> {
        let Some(lane) = self.lane(session) else {
            return Ok(Step::Held);
        };
        if self.settings().paused || lane.paused() {
            return Ok(Step::Paused);
        }
        if !lane.is_ready() || !self.may_send(&lane) {
            return Ok(Step::Held);
        }
        let row = if lane.is_paced() {
            match self.pace_step(&lane).await? {
                PaceStep::Claimed(row) => *row,
                PaceStep::Held { until, reason } => return Ok(Step::Paced { until, reason }),
                PaceStep::Idle => return Ok(Step::Idle),
            }
        } else {
            match self.claim(&lane, 1).await?.pop() {
                Some(row) => row,
                None => return Ok(Step::Idle),
            }
        };
        let job_id = row.id.clone();
        let (state, _) = process(self, &lane, row, None).await;
        Ok(Step::Ran { job_id, state })
    }

    /// Claims up to `n` due jobs of a lane (with their `job.active` deliveries) and counts
    /// them active.
    async fn claim(&self, lane: &Lane, n: u32) -> Result<Vec<JobRow>, DbError> {
        let lease = self.lease();
        let session = lane.name().to_string();
        self.claim_with(lane, move |c, now| {
            Box::pin(async move { jobs::claim(c, &session, n as i64, now, &lease).await })
        })
        .await
    }

    /// Claims what `pick` moves to `active` (given the time), with the jobs' `job.active`
    /// deliveries, and counts them active.
    pub(super) async fn claim_with<F>(&self, lane: &Lane, pick: F) -> Result<Vec<JobRow>, DbError>
    where
        F: for<'c> FnOnce(
                &'c mut crate::db::Conn,
                i64,
            )
                -> futures_util::future::BoxFuture<'c, sqlx::Result<Vec<JobRow>>>
            + Send
            + 'static,
    {
        let out = self.outbox.clone();
        let autocommit = out.0.is_none();
        let now = self.clock.now_ms();
        let (rows, written) = self
            .db
            .writer
            .exec_with(Durability::Relaxed, autocommit, move |c| {
                Box::pin(async move {
                    let rows = pick(c, now).await?;
                    let active: Vec<Event> =
                        rows.iter().map(|r| Event::from_row(r, "active")).collect();
                    let written = out.write(c, &active).await?;
                    Ok((rows, written))
                })
            })
            .await?;
        self.outbox.wake(written);
        self.active.fetch_add(rows.len() as u32, Ordering::AcqRel);
        lane.active.fetch_add(rows.len() as u32, Ordering::AcqRel);
        self.claimed(lane, &rows, now);
        Ok(rows)
    }

    /// Counts claimed jobs `active` and announces them (their slots are counted by the caller).
    pub(super) fn claimed(&self, lane: &Lane, rows: &[JobRow], now: i64) {
        self.counts.shift(
            lane.name(),
            JobState::Waiting,
            JobState::Active,
            rows.len() as i64,
        );
        for row in rows {
            self.events.publish(Event::from_row(row, "active"));
            self.metrics
                .wait_seconds
                .observe((now - row.run_at).max(0) as f64 / 1000.0);
        }
    }
}

pub(super) async fn dispatch(
    queue: Arc<Queue>,
    lane: Arc<Lane>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let session = lane.name().to_string();
    tracing::info!(session, "🚀 Queue processor started for session {session}");
    let mut held_logged = false;
    loop {
        if cancel.is_cancelled() || lane.closed.is_cancelled() {
            break;
        }
        let settings = queue.settings();
        let sender = lane.sender();
        let ready = sender.as_ref().is_some_and(|s| s.is_ready());
        if ready {
            held_logged = false;
        } else if !held_logged {
            let state = sender
                .as_ref()
                .map_or("stopped", |s| s.status().state.as_str());
            tracing::warn!(
                session,
                state,
                "⏸️ Session {session} held: WhatsApp is not connected"
            );
            held_logged = true;
        }
        // A paced session sends one message at a time: the gap runs from the last send.
        let paced = lane.is_paced();
        let free = match paced {
            true => 1,
            false => lane.concurrency(settings.concurrency),
        }
        .saturating_sub(lane.active());
        // A node that could not renew its lease, or its lease of the session, starts nothing:
        // another may take its jobs or the session.
        let leased = queue.may_send(&lane);
        if settings.paused || lane.paused() || !ready || free == 0 || !leased {
            wait(&queue, &lane, sender.as_deref(), &cancel, queue.poll).await;
            continue;
        }
        let claimed = match paced {
            false => queue.claim(&lane, free).await,
            true => match queue.pace_step(&lane).await {
                Ok(PaceStep::Claimed(row)) => Ok(vec![*row]),
                Ok(PaceStep::Idle) => Ok(vec![]),
                Ok(PaceStep::Held { until, .. }) => {
                    // Nothing may go before `until`: sleep until then (a new job, a changed
                    // setting or a stopped session wakes it sooner), looking once a minute in
                    // case the system clock jumps.
                    let left = (until - queue.clock.now_ms()).max(1) as u64;
                    let at_most = Duration::from_millis(left).min(HELD_POLL);
                    wait(&queue, &lane, sender.as_deref(), &cancel, at_most).await;
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match claimed {
            Ok(rows) if rows.is_empty() => {
                let until_due = match jobs::next_run_at(&queue.db.read, &session).await {
                    Ok(Some(at)) => {
                        Duration::from_millis((at - queue.clock.now_ms()).max(1) as u64)
                            .min(queue.poll)
                    }
                    _ => queue.poll,
                };
                wait(&queue, &lane, sender.as_deref(), &cancel, until_due).await;
            }
            Ok(rows) => {
                for row in rows {
                    let (q, l, c) = (queue.clone(), lane.clone(), cancel.clone());
                    let send = lane
                        .inflight
                        .track_future(async move { run_slot(&q, &l, row, &c).await });
                    tracker.spawn(send);
                }
            }
            Err(e) => {
                tracing::error!(session, error = %e, "cannot claim jobs; trying again shortly");
                wait(&queue, &lane, sender.as_deref(), &cancel, queue.poll).await;
            }
        }
    }
    tracing::info!(
        session,
        "Queue processor of session {session} stopped claiming jobs"
    );
}

async fn wait(
    queue: &Queue,
    lane: &Lane,
    sender: Option<&dyn crate::whatsapp::MessageSender>,
    cancel: &CancellationToken,
    at_most: Duration,
) {
    let changed = async {
        match sender {
            Some(s) => s.changed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = lane.wake.notified() => {}
        _ = changed => {}
        _ = cancel.cancelled() => {}
        _ = lane.closed.cancelled() => {}
        _ = queue.clock.moved() => {}
        _ = tokio::time::sleep(at_most) => {}
    }
}
