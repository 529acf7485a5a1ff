//! One worker slot's sends: a claimed job goes to the session's driver, its outcome is decided
//! (retry or give up, by the classifier and the retry budget) and recorded, and the slot takes
//! the lane's next due job with that outcome for as long as the lane may go on.

use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use super::{JobRow, JobState, Lane, Queue, retry};
use crate::db::jobs::{self, Outcome};
use crate::domain::mask_number;
use crate::events::Event;
use crate::hooks::{Failure, Verdict};
use crate::whatsapp::{Outbound, SendError};

/// One slot of a lane: sends its claimed job, then, for as long as the lane may go on, the
/// next due job claimed with each outcome (one writer round trip per job, not two). The slot is
/// given back when the lane has nothing due, is paused, held, paced or over its concurrency.
pub(super) async fn run_slot(queue: &Queue, lane: &Lane, job: JobRow, cancel: &CancellationToken) {
    let mut job = job;
    while let (_, Some(next)) = process(queue, lane, job, Some(cancel)).await {
        job = next;
    }
}

/// True when a slot that just finished a send may take the lane's next job at once.
fn may_go_on(queue: &Queue, lane: &Lane, cancel: Option<&CancellationToken>) -> bool {
    let settings = queue.settings();
    cancel.is_some_and(|c| !c.is_cancelled())
        && !lane.closed.is_cancelled()
        && !lane.is_paced()
        && !settings.paused
        && !lane.paused()
        && lane.is_ready()
        && lane.active() <= lane.concurrency(settings.concurrency)
}

/// Gives a slot back: its lane's dispatcher may fill it.
fn free_slot(queue: &Queue, lane: &Lane) {
    queue.active.fetch_sub(1, Ordering::AcqRel);
    lane.active.fetch_sub(1, Ordering::AcqRel);
    lane.wake.notify_one();
}

/// Sends one claimed job and records the outcome; the job's state after it (None when its
/// lease no longer held or the outcome could not be recorded), and the next job claimed for
/// the same slot when `cancel` is given (a dispatcher's slot) and the lane may go on.
pub(super) async fn process(
    queue: &Queue,
    lane: &Lane,
    job: jobs::JobRow,
    cancel: Option<&CancellationToken>,
) -> (Option<JobState>, Option<JobRow>) {
    let attempt = job.attempts as u32;
    tracing::info!(job.id = %job.id, session = %job.session, attempt, "📤 Processing {} to {} (attempt {attempt})", job.id, mask_number(&job.number));
    let media = if !job.ignore_opt_out && queue.opted_out(&job.session, &job.number) {
        Err(SendError::new(
            "opted-out",
            format!(
                "{} asked this session not to write to them (its opt-out list); send with ignoreOptOut to send anyway",
                mask_number(&job.number)
            ),
        ))
    } else {
        attachment(queue, &job).await
    };
    let outbound = Outbound {
        job_id: job.id.clone(),
        message_id: job.message_id.clone(),
        chat_id: job.chat_id.clone(),
        number: job.number.clone(),
        text: job.message.clone(),
        attempt,
        typing: lane.typing_for(&job.message),
        media: media.as_ref().ok().cloned().flatten(),
    };
    let started = std::time::Instant::now();
    let result = match (lane.sender(), media) {
        (_, Err(e)) => Err(e),
        // Stopped between the claim and now: the job waits for the session, as a retry.
        (None, _) => Err(SendError::new("session-closed", "the session was stopped")),
        // Another node may take this job once this node's lease lapses: don't start it.
        _ if !queue.node.holds_lease() => Err(SendError::new(
            "node-lease-lost",
            "this gateway node could not renew its lease in the database; the job is retried",
        )),
        // Another node may run the session now (or soon): never send from two places.
        _ if !queue.may_send(lane) => Err(SendError::new(
            "session-lease-lost",
            "this gateway node no longer holds the session's lease; the job is retried by the node that does",
        )),
        (Some(sender), _) => {
            match tokio::time::timeout(queue.send_timeout, sender.send(&outbound)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::new(
                    "timeout",
                    format!(
                        "no answer from the driver within {}",
                        humantime::format_duration(queue.send_timeout)
                    ),
                )),
            }
        }
    };
    // A paced lane counts the send before its slot frees, so the next decision sees it.
    if result.is_ok() && lane.is_paced() {
        queue.paced_sent(lane, &job);
    }
    // The send is over. A slot that goes on keeps its place and gets its next job with this
    // outcome; one that stops is freed now, so a dispatcher's claim can share a transaction with
    // this outcome. `concurrency` bounds sends in flight; recording does not touch WhatsApp.
    let go_on = may_go_on(queue, lane, cancel);
    if !go_on {
        free_slot(queue, lane);
    }
    let (outcome, log): (Outcome, Box<dyn FnOnce() + Send>) = match result {
        Ok(receipt) => {
            let id = job.id.clone();
            (
                Outcome::Completed {
                    // A driver that saw nothing worth keeping (the sandbox) stores nothing.
                    receipt: (!receipt.detail.is_empty())
                        .then(|| serde_json::to_string(&receipt).ok())
                        .flatten(),
                },
                Box::new(move || tracing::info!(job.id = %id, "✅ Job {id} completed")),
            )
        }
        Err(err) => {
            if lane.is_paced() && super::TROUBLE_CODES.contains(&err.code.as_str()) {
                queue.cool_down(lane, &err.code, &err.message).await;
            }
            decide(queue, &job.id, attempt, err)
        }
    };
    let took = started.elapsed();
    let s = job.session.as_str();
    match &outcome {
        Outcome::Completed { .. } => queue.metrics.send(s, "completed", "", took),
        Outcome::Retry { code, .. } => queue.metrics.send(s, "retry", code, took),
        Outcome::Failed { code, .. } => queue.metrics.send(s, "failed", code, took),
    }
    if !matches!(outcome, Outcome::Retry { .. }) {
        queue.metrics.attempts.observe(job.attempts as f64);
    }
    let event = match &outcome {
        Outcome::Completed { .. } => Event::job(&job, "completed", None),
        Outcome::Retry { code, message, .. } => Event::job(&job, "waiting", Some((code, message))),
        Outcome::Failed { code, message } => Event::job(&job, "failed", Some((code, message))),
    };
    let to = outcome.state();
    let finished = jobs::Finished {
        seq: job.seq,
        lease: job.lease.unwrap_or_default(),
        outcome,
    };
    let (state, next) = match queue.record(&job.session, finished, event, go_on).await {
        Ok(r) if r.held => {
            log();
            (Some(to), r.next)
        }
        Ok(r) => {
            tracing::warn!(job.id = %job.id, "job {} changed hands while it was being sent; its result was not recorded", job.id);
            (None, r.next)
        }
        Err(e) => {
            tracing::error!(job.id = %job.id, error = %e, "cannot record the outcome of job {}; it will be retried after the next start", job.id);
            (None, None)
        }
    };
    match &next {
        Some(row) => queue.claimed(lane, std::slice::from_ref(row), queue.clock.now_ms()),
        None if go_on => free_slot(queue, lane),
        None => {}
    }
    (state, next)
}

/// Retry or give up, as the classifier and the retry budget say; and the log line for it.
fn decide(
    queue: &Queue,
    id: &str,
    attempt: u32,
    err: SendError,
) -> (Outcome, Box<dyn FnOnce() + Send>) {
    let failure = Failure {
        code: err.code.clone(),
        message: err.message.clone(),
        attempt,
    };
    let verdict = queue.hooks.classify_error(&failure);
    let max_retries = queue.settings().max_retries;
    let id = id.to_string();
    let SendError { code, message } = err;
    match verdict {
        Verdict::Retry(after) if retry::may_retry(attempt, max_retries) => {
            let delay = after.unwrap_or_else(|| {
                crate::time::backoff(attempt, queue.backoff_base, queue.backoff_max)
            });
            let run_at = queue.clock.now_ms() + delay.as_millis() as i64;
            let log_code = code.clone();
            (
                Outcome::Retry {
                    run_at,
                    code,
                    message,
                },
                Box::new(move || {
                    tracing::warn!(job.id = %id, attempt, code = %log_code, "🔁 Job {id} attempt {attempt} failed ({log_code}); retrying in {}", humantime::format_duration(delay));
                }),
            )
        }
        verdict => {
            let reason = match verdict {
                Verdict::Permanent(_) => code.clone(),
                Verdict::Retry(_) => format!("{code} (no retries left after {attempt} attempts)"),
            };
            let log_code = code.clone();
            (
                Outcome::Failed { code, message },
                Box::new(move || {
                    tracing::error!(job.id = %id, attempt, code = %log_code, "❌ Job {id} failed permanently: {reason}");
                }),
            )
        }
    }
}

/// The file a job sends, read from the database: `media-missing` (permanent) when it is gone,
/// `storage-error` (retried) when the database did not answer.
async fn attachment(
    queue: &Queue,
    job: &jobs::JobRow,
) -> Result<Option<crate::whatsapp::Attachment>, SendError> {
    let Some(id) = &job.media_id else {
        return Ok(None);
    };
    let storage =
        |e: sqlx::Error| SendError::new("storage-error", format!("cannot read the file: {e}"));
    let row = crate::db::media::get(&queue.db.read, id)
        .await
        .map_err(storage)?;
    let data = match &row {
        Some(r) => crate::db::media::data(&queue.db.read, &r.sha256)
            .await
            .map_err(storage)?,
        None => None,
    };
    let (Some(row), Some(data)) = (row, data) else {
        return Err(SendError::new(
            "media-missing",
            format!("the file {id} is no longer stored"),
        ));
    };
    let kind = job
        .media_as
        .as_deref()
        .and_then(crate::domain::MediaKind::parse)
        .unwrap_or_else(|| crate::domain::MediaKind::for_mime(&row.mime_type));
    Ok(Some(crate::whatsapp::Attachment {
        kind,
        filename: row.filename,
        mime_type: row.mime_type,
        sha256: row.sha256,
        data: std::sync::Arc::new(data),
    }))
}
