//! What a driver reports as it sees it (receipts, received messages), taken in batches: what
//! comes within a moment of the first goes into one write, so a busy session costs one
//! transaction per batch, not one per item.

use std::future::Future;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

/// How long items are gathered into one batch.
const BATCH: Duration = Duration::from_millis(200);

/// Hands each batch from `rx` to `keep`, one batch at a time and in order, until `stop` or the
/// driver is gone. Items dropped because `keep` fell behind are logged (`what` says which).
pub(super) fn keep<T, F, Fut>(
    mut rx: broadcast::Receiver<T>,
    stop: CancellationToken,
    session: String,
    what: &'static str,
    mut keep: F,
) where
    T: Clone + Send + 'static,
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                r = rx.recv() => r,
            };
            let mut batch = match first {
                Ok(item) => vec![item],
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(session = %session, missed = n, "{what} came faster than they were kept; {n} were dropped");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let window = tokio::time::Instant::now() + BATCH;
            while let Ok(Ok(item)) = tokio::time::timeout_at(window, rx.recv()).await {
                batch.push(item);
            }
            keep(batch).await;
        }
    });
}
