//! Retention: finished jobs past their age are deleted in small batches, each its own write,
//! so enqueues and claims interleave and sending never stalls. Freed pages go back to the
//! file system (incremental vacuum) and the WAL is truncated after a prune, so the database
//! stays bounded under steady traffic.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{JobState, Queue};
use crate::db::{self, Durability, jobs};

/// Jobs deleted per write.
const BATCH: i64 = 500;

/// Keeps pruning every `interval` until `cancel`; a state kept for 0 is never pruned.
pub(super) async fn run(
    queue: Arc<Queue>,
    keep_completed: Duration,
    keep_failed: Duration,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        // One node of a cluster prunes.
        if !queue.node.leads() {
            continue;
        }
        let mut pruned = 0;
        for (state, keep) in [
            (JobState::Completed, keep_completed),
            (JobState::Failed, keep_failed),
        ] {
            if keep.is_zero() {
                continue;
            }
            let before = queue.clock.now_ms() - keep.as_millis() as i64;
            loop {
                if cancel.is_cancelled() {
                    return;
                }
                let n = queue
                    .db
                    .writer
                    .exec_with(Durability::Relaxed, true, move |c| {
                        Box::pin(async move { jobs::prune(c, state, before, BATCH).await })
                    })
                    .await;
                match n {
                    Ok(by_session) => {
                        let mut n = 0;
                        for (session, k) in by_session {
                            queue.counts.add(&session, state, -(k as i64));
                            n += k;
                        }
                        pruned += n;
                        if (n as i64) < BATCH {
                            break;
                        }
                        // Let other writes in between batches.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning finished jobs failed; trying again later");
                        break;
                    }
                }
            }
        }
        // The pacing windows look back a day: older sends only take room.
        let before = queue.clock.now_ms() - crate::db::pacing::KEEP_SENT_MS;
        if let Err(e) = queue
            .db
            .writer
            .exec_with(Durability::Relaxed, true, move |c| {
                Box::pin(async move { crate::db::pacing::prune_sent(c, before).await })
            })
            .await
        {
            tracing::warn!(error = %e, "pruning the send history failed; trying again later");
        }
        // Received messages are kept as long as completed jobs.
        if !keep_completed.is_zero() {
            let before = queue.clock.now_ms() - keep_completed.as_millis() as i64;
            if let Err(e) = queue
                .db
                .writer
                .exec_with(Durability::Relaxed, true, move |c| {
                    Box::pin(async move { crate::db::inbound::prune(c, before, 10_000).await })
                })
                .await
            {
                tracing::warn!(error = %e, "pruning received messages failed; trying again later");
            }
        }
        queue
            .metrics
            .retention_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if pruned > 0 {
            tracing::info!(
                pruned,
                "🧹 Pruned {pruned} finished job(s) past their retention"
            );
            compact(&queue.db).await;
        }
    }
}

/// Gives free pages back to the file system and truncates the WAL.
pub async fn compact(db: &db::Db) {
    let r = db
        .writer
        .exec_standalone(|c| {
            Box::pin(async move {
                // PostgreSQL's autovacuum does this work by itself.
                if !c.is_pg() {
                    c.execute("PRAGMA incremental_vacuum").await?;
                    c.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
                }
                Ok(())
            })
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "compacting the database failed");
    }
}
