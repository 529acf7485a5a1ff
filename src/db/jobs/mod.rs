//! The `jobs` table: a job's row and state, and the reads behind the queue API. By use:
//! `enqueue` (storing accepted jobs), `lifecycle` (claim, recovery) and `outcomes` (what became
//! of a claimed job, each a compare-and-set on the claim's lease, so a job recovered by a
//! restart is never overwritten by a stale worker), `admin` (requeue, cancel, clear, prune).

mod acks;
mod admin;
mod enqueue;
mod lifecycle;
mod outcomes;

use crate::db::{Pool, on_pool};

pub use acks::raise_ack;
pub use admin::{Admin, AdminOutcome, Removed, admin, clear, fail_session, prune};
pub use enqueue::{MAX_INSERT_ROWS, NewJob, insert_many};
pub(crate) use lifecycle::owned_by;
pub use lifecycle::{Finished, Lease, MAX_RESCUES, Outcome, claim, recover_active, rescue_orphans};
pub use outcomes::{finish_and_claim, finish_many};

/// Where a job is in its life; stored as its lowercase name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Waiting,
    Active,
    Completed,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 4] = [
        JobState::Waiting,
        JobState::Active,
        JobState::Completed,
        JobState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row of `jobs`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub seq: i64,
    pub id: String,
    /// The WhatsApp account ("session") that sends it.
    pub session: String,
    pub message_id: String,
    pub number: String,
    pub chat_id: String,
    pub message: String,
    pub template: Option<String>,
    pub priority: i64,
    pub status: JobState,
    pub attempts: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub run_at: i64,
    pub lease: Option<i64>,
    pub rescues: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// The driver's receipt (JSON), once completed.
    pub receipt: Option<String>,
    /// The pacing rule that holds this waiting job back until `run_at`.
    pub paced: Option<String>,
    /// Once completed: `sent`, `delivered` or `read`.
    pub ack: Option<String>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    /// A file to send (`message` is then its caption), and what it goes as.
    pub media_id: Option<String>,
    pub media_as: Option<String>,
    /// Sent even to a number on the session's opt-out list.
    pub ignore_opt_out: bool,
    /// The gateway node whose claim it is (or last was).
    pub node: Option<String>,
}

pub(crate) const COLS: &str = "seq, id, session, message_id, number, chat_id, message, template, priority, status, \
    attempts, error_code, error_message, run_at, lease, rescues, created_at, updated_at, finished_at, \
    receipt, paced, ack, delivered_at, read_at, media_id, media_as, ignore_opt_out, node";

pub async fn get(pool: &Pool, id: &str) -> sqlx::Result<Option<JobRow>> {
    on_pool!(pool, |p| sqlx::query_as(&format!(
        "SELECT {COLS} FROM jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// Newest first; `before` is the `seq` cursor of the previous page.
pub async fn list(
    pool: &Pool,
    status: Option<JobState>,
    session: Option<&str>,
    limit: i64,
    before: Option<i64>,
) -> sqlx::Result<Vec<JobRow>> {
    on_pool!(pool, |p| sqlx::query_as(&format!(
        "SELECT {COLS} FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR seq < $2) \
         AND ($4 IS NULL OR session = $4) ORDER BY seq DESC LIMIT $3"
    ))
    .bind(status)
    .bind(before)
    .bind(limit)
    .bind(session)
    .fetch_all(p)
    .await)
}

/// Failed jobs and jobs waiting for a retry, newest first.
pub async fn retry_queue(pool: &Pool, limit: i64) -> sqlx::Result<Vec<JobRow>> {
    on_pool!(pool, |p| sqlx::query_as(&format!(
        "SELECT {COLS} FROM jobs WHERE status = 'failed' OR (status = 'waiting' AND attempts > 0) \
         ORDER BY seq DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(p)
    .await)
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct Counts {
    pub waiting: i64,
    pub active: i64,
    pub completed: i64,
    pub failed: i64,
}

impl Counts {
    /// The count of one state.
    pub fn get(&self, state: JobState) -> i64 {
        match state {
            JobState::Waiting => self.waiting,
            JobState::Active => self.active,
            JobState::Completed => self.completed,
            JobState::Failed => self.failed,
        }
    }
}

impl Counts {
    /// The sum of several counts (every session's, say).
    pub fn total<'a>(all: impl IntoIterator<Item = &'a Counts>) -> Counts {
        let mut total = Counts::default();
        for c in all {
            for s in JobState::ALL {
                total.add(s, c.get(s));
            }
        }
        total
    }

    /// Adds `n` jobs in `state`.
    pub fn add(&mut self, state: JobState, n: i64) {
        match state {
            JobState::Waiting => self.waiting += n,
            JobState::Active => self.active += n,
            JobState::Completed => self.completed += n,
            JobState::Failed => self.failed += n,
        }
    }
}

/// Jobs by session and state.
pub async fn counts_by_session(
    pool: &Pool,
) -> sqlx::Result<std::collections::BTreeMap<String, Counts>> {
    let rows: Vec<(String, JobState, i64)> = on_pool!(pool, |p| sqlx::query_as(
        "SELECT session, status, COUNT(*) FROM jobs GROUP BY session, status"
    )
    .fetch_all(p)
    .await)?;
    let mut by = std::collections::BTreeMap::<String, Counts>::new();
    for (session, status, n) in rows {
        by.entry(session).or_default().add(status, n);
    }
    Ok(by)
}

/// When the session's next waiting job becomes due, if any.
pub async fn next_run_at(pool: &Pool, session: &str) -> sqlx::Result<Option<i64>> {
    on_pool!(pool, |p| sqlx::query_scalar(
        "SELECT MIN(run_at) FROM jobs WHERE session = $1 AND status = 'waiting'"
    )
    .bind(session)
    .fetch_one(p)
    .await)
}

/// When the oldest kept job was created (ms), if there is one.
pub async fn oldest_created_at(pool: &Pool) -> sqlx::Result<Option<i64>> {
    on_pool!(pool, |p| sqlx::query_scalar(
        "SELECT created_at FROM jobs ORDER BY seq LIMIT 1"
    )
    .fetch_optional(p)
    .await)
}

#[cfg(test)]
pub(crate) mod test_db {
    //! A fresh in-memory database with the real migrations, for the unit tests of this module.
    use sqlx::{Connection, SqliteConnection};

    use crate::db::{Conn, on};

    /// Job `n` of session `default`, normal priority, accepted at 1000.
    pub fn job(n: u32) -> super::NewJob {
        super::NewJob {
            id: format!("job_{n}"),
            session: "default".into(),
            message_id: format!("msg_{n}"),
            number: "6281234567890".into(),
            chat_id: "6281234567890@c.us".into(),
            message: format!("text {n}"),
            template: None,
            priority: 1,
            media: None,
            ignore_opt_out: false,
            now: 1000,
        }
    }

    /// A claim by node `test` with a known token.
    pub fn lease(token: i64) -> super::Lease {
        super::Lease {
            node: "test".into(),
            token,
        }
    }

    pub async fn open() -> Conn {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        crate::db::MIGRATOR.run_direct(&mut c).await.unwrap();
        Conn::Lite(c)
    }

    /// A job by id, read on the test's connection.
    pub async fn get(conn: &mut Conn, id: &str) -> sqlx::Result<Option<super::JobRow>> {
        let sql = format!("SELECT {} FROM jobs WHERE id = $1", super::COLS);
        on!(conn, |c| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(c)
            .await)
    }
}
