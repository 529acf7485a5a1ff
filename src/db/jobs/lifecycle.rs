//! A job's working life: claimed (`waiting` → `active`, with a lease), then an outcome
//! (`completed`, back to `waiting` for a retry, or `failed`; recorded in `outcomes`), each only
//! if the lease the claim handed out still holds, so a job recovered by a restart can never be
//! overwritten by a stale worker. And the recovery itself, at start-up.

use std::sync::Arc;

use crate::db::{Conn, on};

use super::{COLS, JobRow};

/// A claim's lease: the node that claims (its heartbeat keeps the claim alive) and a token new
/// for each claim, which every outcome of a job it claimed must show.
#[derive(Debug, Clone)]
pub struct Lease {
    pub node: Arc<str>,
    pub token: i64,
}

impl Lease {
    /// A new claim by `node`.
    pub fn new(node: &Arc<str>) -> Lease {
        Lease {
            node: node.clone(),
            token: rand::random::<i64>().checked_abs().unwrap_or(1).max(1),
        }
    }
}

/// Moves up to $5 due jobs of session $4 to `active` under lease $3 of node $6 at time $1
/// (high priority first, then oldest), counting the attempt. Its parameters are numbered to share one list
/// with [`COMPLETE`] ($1 now, $2 the completions), so both run as one call to SQLite.
pub(super) fn claim_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE jobs SET status = 'active', attempts = attempts + 1, lease = $3, node = $6, updated_at = $1, paced = NULL \
             WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_claim \
                           WHERE session = $4 AND status = 'waiting' AND run_at <= $1 \
                           ORDER BY priority, seq LIMIT $5) \
             RETURNING {COLS}"
        )
    });
    &SQL
}

/// [`claim_sql`] on PostgreSQL: the rows are picked `FOR UPDATE SKIP LOCKED` in a CTE that
/// limits them, so nodes claiming at once take different jobs and never more than asked; and
/// only while node $6 owns the session ([`owned_by`]), so a node that lost it claims nothing.
fn claim_sql_pg() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH picked AS (SELECT seq AS picked FROM jobs \
                             WHERE session = $4 AND status = 'waiting' AND run_at <= $1 AND {} \
                             ORDER BY priority, seq LIMIT $5 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET status = 'active', attempts = attempts + 1, lease = $3, node = $6, updated_at = $1, paced = NULL \
             FROM picked WHERE jobs.seq = picked.picked \
             RETURNING {COLS}",
            owned_by("$4", "$6")
        )
    });
    &SQL
}

/// A PostgreSQL condition that holds while `node` owns `session` (SQL expressions), judged by
/// the database's clock (the queue's may be a test's own): claims on PostgreSQL, where several
/// nodes share the jobs, are fenced by it. With SQLite the data_dir lock keeps one node on the
/// database, so its claims need no fence.
pub(crate) fn owned_by(session: &str, node: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM session_owners o WHERE o.session = {session} AND o.node = {node} \
         AND o.expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
    )
}

/// Atomically moves up to `limit` due jobs of one session to `active` (high priority first,
/// then oldest), counting the attempt, and returns them in claim order.
pub async fn claim(
    conn: &mut Conn,
    session: &str,
    limit: i64,
    now: i64,
    lease: &Lease,
) -> sqlx::Result<Vec<JobRow>> {
    let sql = if conn.is_pg() {
        claim_sql_pg()
    } else {
        claim_sql()
    };
    let mut rows: Vec<JobRow> = on!(&mut *conn, |c| sqlx::query_as(sql)
        .bind(now)
        .bind(None::<String>)
        .bind(lease.token)
        .bind(session)
        .bind(limit)
        .bind(&*lease.node)
        .fetch_all(&mut *c)
        .await)?;
    rows.sort_by_key(|r| (r.priority, r.seq));
    Ok(rows)
}

/// How a claimed job ended this attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Sent; the driver's receipt as JSON.
    Completed {
        receipt: Option<String>,
    },
    Retry {
        run_at: i64,
        code: String,
        message: String,
    },
    Failed {
        code: String,
        message: String,
    },
}

impl Outcome {
    /// The state the job is in once this outcome is recorded.
    pub fn state(&self) -> super::JobState {
        match self {
            Outcome::Completed { .. } => super::JobState::Completed,
            Outcome::Retry { .. } => super::JobState::Waiting,
            Outcome::Failed { .. } => super::JobState::Failed,
        }
    }
}

/// One claimed job's outcome, to record if its lease still holds.
#[derive(Debug, Clone)]
pub struct Finished {
    pub seq: i64,
    pub lease: i64,
    pub outcome: Outcome,
}

/// A job that was `active` more than this many times when the process died fails as a crash loop.
pub const MAX_RESCUES: i64 = 3;

/// At start-up, the `active` jobs of a process that died: all of them with SQLite (one node),
/// those under this node's name with PostgreSQL (an earlier run of a node with a configured
/// `node_id`). They go back to `waiting`, keeping their attempts. Returns (recovered, failed
/// as crash loops).
pub async fn recover_active(
    conn: &mut Conn,
    now: i64,
    node: Option<&str>,
) -> sqlx::Result<(u64, u64)> {
    let recovered = on!(&mut *conn, |c| sqlx::query(
        "UPDATE jobs SET status = 'waiting', lease = NULL, rescues = rescues + 1, run_at = $1, \
         updated_at = $1 WHERE status = 'active' AND ($2 IS NULL OR node = $2)",
    )
    .bind(now)
    .bind(node)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok((recovered, fail_crash_loops(conn, now).await?.len() as u64))
}

/// Puts back to `waiting` the active jobs of dead nodes: nodes without a heartbeat unexpired
/// at wall-clock time `alive_at` in `nodes` (killed, frozen, cut off). Their attempts stay,
/// and the crash-loop rule applies as after a restart. `now` is the queue's time, for the
/// jobs. Returns the sessions of the jobs put back and of those then failed as crash loops,
/// one entry per job.
pub async fn rescue_orphans(
    conn: &mut Conn,
    now: i64,
    alive_at: i64,
) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    let rescued: Vec<String> = on!(&mut *conn, |c| sqlx::query_scalar(
        "UPDATE jobs SET status = 'waiting', lease = NULL, rescues = rescues + 1, run_at = $1, \
         updated_at = $1 WHERE status = 'active' \
         AND (node IS NULL OR node NOT IN (SELECT id FROM nodes WHERE expires_at > $2)) \
         RETURNING session",
    )
    .bind(now)
    .bind(alive_at)
    .fetch_all(&mut *c)
    .await)?;
    let looped = if rescued.is_empty() {
        vec![]
    } else {
        fail_crash_loops(conn, now).await?
    };
    Ok((rescued, looped))
}

/// Fails the jobs put back more than [`MAX_RESCUES`] times (sending them keeps killing
/// nodes); their sessions, one entry per job.
async fn fail_crash_loops(conn: &mut Conn, now: i64) -> sqlx::Result<Vec<String>> {
    on!(&mut *conn, |c| {
        sqlx::query_scalar(
        "UPDATE jobs SET status = 'failed', finished_at = $1, updated_at = $1, error_code = 'crash-loop', \
         error_message = 'the gateway stopped while sending this job ' || rescues || ' times' \
         WHERE status = 'waiting' AND rescues > $2 RETURNING session",
    )
    .bind(now)
    .bind(MAX_RESCUES)
    .fetch_all(&mut *c).await
    })
}

#[cfg(test)]
mod tests {
    use super::super::outcomes::finish_many;
    use super::super::{JobState, insert_many, test_db};
    use super::*;
    use test_db::job;

    #[tokio::test]
    async fn a_retry_goes_back_to_waiting_until_its_time_and_a_crash_loop_fails() {
        let mut c = test_db::open().await;
        insert_many(&mut c, &[job(1)]).await.unwrap();
        let seq = claim(&mut c, "default", 1, 2000, &test_db::lease(1))
            .await
            .unwrap()[0]
            .seq;
        let retry = Finished {
            seq,
            lease: 1,
            outcome: Outcome::Retry {
                run_at: 9000,
                code: "timeout".into(),
                message: "no tick".into(),
            },
        };
        assert_eq!(
            finish_many(&mut c, &[retry], 3000).await.unwrap(),
            vec![true]
        );
        let r = test_db::get(&mut c, "job_1").await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.run_at, r.finished_at),
            (JobState::Waiting, 9000, None)
        );
        assert!(
            claim(&mut c, "default", 1, 8999, &test_db::lease(2))
                .await
                .unwrap()
                .is_empty(),
            "not due yet"
        );
        for lease in 2..=5 {
            assert_eq!(
                claim(&mut c, "default", 1, 9000, &test_db::lease(lease))
                    .await
                    .unwrap()
                    .len(),
                1
            );
            recover_active(&mut c, 9000, None).await.unwrap();
        }
        let r = test_db::get(&mut c, "job_1").await.unwrap().unwrap();
        assert_eq!(r.status, JobState::Failed);
        assert_eq!(r.error_code.as_deref(), Some("crash-loop"));
    }
}
