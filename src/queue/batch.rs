//! Group commit, once for every kind of write that comes in bursts (enqueues, outcomes): the
//! requests waiting in the channel are taken together, written in one transaction by the
//! caller's function, and each caller gets its own answer. While one batch commits, the next one
//! gathers. The task ends when every sender is gone. And the queue's two batchers: enqueues
//! (durable) and outcomes with the next jobs of the slots that finished them (relaxed).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use super::{JobOutbox, JobRow, NewJob};
use crate::db::{self, DbError, Durability, jobs};
use crate::events::{Event, Events};

type Request<Req, Resp> = (Req, oneshot::Sender<Result<Resp, DbError>>);

/// What a batch's writer returns: one answer per request, in order.
pub(super) type BatchFuture<Resp> =
    Pin<Box<dyn Future<Output = Result<Vec<Resp>, DbError>> + Send>>;

pub(super) struct Batcher<Req, Resp> {
    tx: mpsc::Sender<Request<Req, Resp>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the batching task; `write` stores one batch of at most `max` requests.
    pub(super) fn spawn(
        max: usize,
        write: impl Fn(Vec<Req>) -> BatchFuture<Resp> + Send + 'static,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Request<Req, Resp>>(4096);
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(max);
            while rx.recv_many(&mut pending, max).await > 0 {
                let (batch, replies): (Vec<Req>, Vec<_>) = pending.drain(..).unzip();
                match write(batch).await {
                    Ok(answers) => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
                // Let the callers just answered run before the next batch is taken: a worker
                // slot sends its next job and joins that batch instead of the one after it.
                tokio::task::yield_now().await;
            }
        });
        Batcher { tx }
    }

    /// Joins the next batch and waits for its commit.
    pub(super) async fn submit(&self, req: Req) -> Result<Resp, DbError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((req, tx))
            .await
            .map_err(|_| DbError::WriterGone)?;
        rx.await.map_err(|_| DbError::WriterGone)?
    }
}

/// Enqueues: inserted with one multi-row statement in one durable (fsynced) transaction, with
/// their `job.waiting` deliveries; the events are published right after the commit, before any
/// claim can see the rows, so `job.waiting` always comes before `job.active`.
pub(super) fn enqueue_batcher(
    writer: db::Writer,
    events: Events,
    outbox: JobOutbox,
) -> Batcher<NewJob, (JobRow, bool)> {
    Batcher::spawn(
        jobs::MAX_INSERT_ROWS,
        move |batch| -> BatchFuture<(JobRow, bool)> {
            let (events, out, wake) = (events.clone(), outbox.clone(), outbox.clone());
            let write = writer.exec_then(
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
                move |(_, waiting, written)| {
                    for e in waiting {
                        events.publish(e.clone());
                    }
                    if let Some(w) = written.lock().expect("written lock").take() {
                        wake.wake(w);
                    }
                },
            );
            Box::pin(async move { write.await.map(|(rows, _, _)| rows) })
        },
    )
}

/// A finished attempt to record; `next` names the session whose next due job the freed slot
/// takes, if it takes one.
#[derive(Clone)]
pub(super) struct Record {
    pub(super) finished: jobs::Finished,
    pub(super) event: Event,
    pub(super) next: Option<String>,
}

/// What recording answered: whether the lease held, and the job claimed for the slot.
pub(super) struct Recorded {
    pub(super) held: bool,
    pub(super) next: Option<JobRow>,
}

/// Outcomes: completions that arrive together are recorded with one statement, with their
/// deliveries, and the slots that asked get their session's next due jobs from one claim per
/// session in the same transaction (as BullMQ's move-to-finished hands back the next job): a
/// busy lane costs one writer round trip per batch of jobs, not two per job. Without an fsync
/// (they survive a crashed process, and the next durable commit makes them durable).
pub(super) fn outcome_batcher(
    writer: db::Writer,
    outbox: JobOutbox,
    clock: crate::time::Clock,
    node: std::sync::Arc<str>,
) -> Batcher<Record, Recorded> {
    Batcher::spawn(256, move |batch: Vec<Record>| -> BatchFuture<Recorded> {
        let mut finished = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        let mut wants = Vec::with_capacity(batch.len());
        for r in batch {
            finished.push(r.finished);
            events.push(r.event);
            wants.push(r.next);
        }
        // Each outcome and each claim is one statement, a whole change on its own; only the
        // webhook deliveries must commit with the changes they announce.
        let autocommit = outbox.0.is_none();
        let (out, wake) = (outbox.clone(), outbox.clone());
        let now = clock.now_ms();
        let lease = jobs::Lease::new(&node);
        let write = writer.exec_with(Durability::Relaxed, autocommit, move |c| {
            Box::pin(async move {
                let (held, next) =
                    jobs::finish_and_claim(c, &finished, &wants, &lease, now).await?;
                let mut moved: Vec<Event> = events
                    .into_iter()
                    .zip(&held)
                    .filter(|(_, h)| **h)
                    .map(|(e, _)| e)
                    .collect();
                moved.extend(next.iter().flatten().map(|r| Event::from_row(r, "active")));
                let written = out.write(c, &moved).await?;
                Ok((held, next, written))
            })
        });
        Box::pin(async move {
            let (held, next, written) = write.await?;
            wake.wake(written);
            Ok(held
                .into_iter()
                .zip(next)
                .map(|(held, next)| Recorded { held, next })
                .collect())
        })
    })
}
