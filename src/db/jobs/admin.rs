//! What an operator does to jobs through the API: re-queue a failed job, cancel a waiting one,
//! clear finished ones; and the retention pruner's deletes.

use crate::db::{Conn, on};

use super::{COLS, JobRow, JobState};

/// An operator's transition of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    /// `failed` → `waiting`, with a fresh set of attempts.
    Requeue,
    /// `waiting` → `failed` with code `cancelled`, so every accepted job still has an end.
    Cancel,
}

impl Admin {
    /// The state the job must be in.
    pub fn from(self) -> JobState {
        match self {
            Admin::Requeue => JobState::Failed,
            Admin::Cancel => JobState::Waiting,
        }
    }

    /// The state the job ends in.
    pub fn to(self) -> JobState {
        match self {
            Admin::Requeue => JobState::Waiting,
            Admin::Cancel => JobState::Failed,
        }
    }
}

/// How an operator's transition went.
#[derive(Debug)]
pub enum AdminOutcome {
    Done(Box<JobRow>),
    NotFound,
    /// The job is in this state, which the transition does not start from.
    WrongState(JobState),
}

pub async fn admin(
    conn: &mut Conn,
    id: &str,
    action: Admin,
    now: i64,
) -> sqlx::Result<AdminOutcome> {
    let set = match action {
        Admin::Requeue => {
            "status = 'waiting', attempts = 0, rescues = 0, run_at = $2, updated_at = $2, \
             finished_at = NULL"
        }
        Admin::Cancel => {
            "status = 'failed', error_code = 'cancelled', \
             error_message = 'cancelled through the API', updated_at = $2, finished_at = $2"
        }
    };
    let row: Option<JobRow> = on!(&mut *conn, |c| sqlx::query_as(&format!(
        "UPDATE jobs SET {set} WHERE id = $1 AND status = $3 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(now)
    .bind(action.from())
    .fetch_optional(&mut *c)
    .await)?;
    if let Some(row) = row {
        return Ok(AdminOutcome::Done(Box::new(row)));
    }
    let state: Option<JobState> = on!(&mut *conn, |c| sqlx::query_scalar(
        "SELECT status FROM jobs WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(state.map_or(AdminOutcome::NotFound, AdminOutcome::WrongState))
}

/// How many jobs a delete removed, per session.
pub type Removed = std::collections::BTreeMap<String, u64>;

/// Counts the sessions a `DELETE … RETURNING session` gave back.
fn tally(sessions: Vec<String>) -> Removed {
    let mut by = Removed::new();
    for s in sessions {
        *by.entry(s).or_default() += 1;
    }
    by
}

/// Deletes jobs in the given states (never `active`); returns how many, per state and session.
pub async fn clear(conn: &mut Conn, states: &[JobState]) -> sqlx::Result<Vec<Removed>> {
    let mut out = Vec::with_capacity(states.len());
    for state in states {
        if *state == JobState::Active {
            out.push(Removed::default());
            continue;
        }
        // The state as a literal, so the partial state index serves waiting and failed jobs.
        let sql = format!(
            "DELETE FROM jobs WHERE status = '{}' RETURNING session",
            state.as_str()
        );
        let gone = on!(&mut *conn, |c| sqlx::query_scalar(&sql)
            .fetch_all(&mut *c)
            .await)?;
        out.push(tally(gone));
    }
    Ok(out)
}

/// Every waiting job of a deleted session ends `failed` with `session_deleted`, so none waits
/// forever; returns the rows, for their events.
pub async fn fail_session(conn: &mut Conn, session: &str, now: i64) -> sqlx::Result<Vec<JobRow>> {
    on!(&mut *conn, |c| sqlx::query_as(&format!(
        "UPDATE jobs SET status = 'failed', error_code = 'session_deleted', \
         error_message = 'the session ' || $1 || ' was deleted', lease = NULL, updated_at = $2, \
         finished_at = $2 WHERE session = $1 AND status IN ('waiting', 'active') RETURNING {COLS}"
    ))
    .bind(session)
    .bind(now)
    .fetch_all(&mut *c)
    .await)
}

/// Deletes up to `limit` jobs in `status` that finished before `before` (ms), oldest first;
/// returns how many, per session.
pub async fn prune(
    conn: &mut Conn,
    status: JobState,
    before: i64,
    limit: i64,
) -> sqlx::Result<Removed> {
    let sql = conn.sql(
        "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_finished
           WHERE status = $1 AND finished_at IS NOT NULL AND finished_at < $2
           ORDER BY finished_at LIMIT $3) RETURNING session",
    );
    let gone = on!(&mut *conn, |c| sqlx::query_scalar(&sql)
        .bind(status)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?;
    Ok(tally(gone))
}

#[cfg(test)]
mod tests {
    use super::super::{NewJob, insert_many, test_db};
    use super::*;

    #[tokio::test]
    async fn operators_move_only_jobs_in_the_right_state() {
        let mut c = test_db::open().await;
        let job = NewJob {
            id: "job_1".into(),
            session: "default".into(),
            message_id: "msg_1".into(),
            number: "6281234567890".into(),
            chat_id: "6281234567890@c.us".into(),
            message: "hi".into(),
            template: None,
            priority: 1,
            media: None,
            ignore_opt_out: false,
            now: 1000,
        };
        insert_many(&mut c, &[job]).await.unwrap();
        let r = admin(&mut c, "job_1", Admin::Requeue, 2000).await.unwrap();
        assert!(
            matches!(r, AdminOutcome::WrongState(JobState::Waiting)),
            "{r:?}"
        );
        let r = admin(&mut c, "job_1", Admin::Cancel, 2000).await.unwrap();
        let AdminOutcome::Done(row) = r else {
            panic!("{r:?}")
        };
        assert_eq!(row.status, JobState::Failed);
        assert_eq!(row.error_code.as_deref(), Some("cancelled"));
        let r = admin(&mut c, "job_1", Admin::Requeue, 3000).await.unwrap();
        let AdminOutcome::Done(row) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            (row.status, row.attempts, row.finished_at),
            (JobState::Waiting, 0, None)
        );
        let r = admin(&mut c, "job_none", Admin::Cancel, 3000)
            .await
            .unwrap();
        assert!(matches!(r, AdminOutcome::NotFound));
    }
}
