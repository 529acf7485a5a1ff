//! The node's heartbeat, as the queue needs it: every third of the lease this node renews its
//! row (`cluster::Node::renew`), and the active jobs of nodes whose lease lapsed (killed,
//! frozen, cut off from the database) go back to waiting, with their attempts and the
//! crash-loop rule, for whichever node claims them next. Runs until the node leaves, after
//! the last send of a clean stop, so its lease holds while those sends finish.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{JobState, Queue};
use crate::db::{Durability, jobs};

pub(super) async fn run(queue: Arc<Queue>, stop: CancellationToken) {
    let every = queue.node.renew_every();
    loop {
        match queue.node.renew(&queue.db).await {
            Ok(()) => rescue(&queue).await,
            Err(e) => tracing::error!(
                error = %e,
                "🫀 cannot renew this node's lease; it starts no send until it can"
            ),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Puts the jobs of dead nodes back to waiting and wakes their lanes.
async fn rescue(queue: &Queue) {
    let (now, alive_at) = (queue.clock.now_ms(), crate::time::now_ms());
    let result = queue
        .db
        .writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move { jobs::rescue_orphans(c, now, alive_at).await })
        })
        .await;
    match result {
        Ok((sessions, looped)) => {
            if sessions.is_empty() {
                return;
            }
            tracing::warn!(
                rescued = sessions.len(),
                "♻️ {} job(s) of a node that stopped answering went back to waiting",
                sessions.len()
            );
            if !looped.is_empty() {
                let n = looped.len();
                tracing::error!(failed = n, "❌ {n} job(s) failed permanently: crash-loop");
            }
            for session in &sessions {
                queue
                    .counts
                    .shift(session, JobState::Active, JobState::Waiting, 1);
            }
            for session in &looped {
                queue
                    .counts
                    .shift(session, JobState::Waiting, JobState::Failed, 1);
            }
            queue.wake_all();
            for session in &sessions {
                queue.announce(session);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot put back the jobs of dead nodes; trying again")
        }
    }
}
