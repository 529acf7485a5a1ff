//! Group commit, once for every kind of write that comes in bursts (enqueues, outcomes): the
//! requests waiting in the channel are taken together, written in one transaction by the
//! caller's function, and each caller gets its own answer. While one batch commits, the next one
//! gathers. The task ends when every sender is gone.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use crate::db::DbError;

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
