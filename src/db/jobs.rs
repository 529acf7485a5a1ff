//! The `jobs` table: enqueue, claim, finish, and the queries behind the queue API.
//!
//! Every transition out of `active` is a compare-and-set on the lease the claim handed out, so a
//! job recovered by a restart can never be overwritten by a stale worker.

use sqlx::{SqliteConnection, SqlitePool};

/// A row of `jobs`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub seq: i64,
    pub id: String,
    pub message_id: String,
    pub number: String,
    pub chat_id: String,
    pub message: String,
    pub template: Option<String>,
    pub priority: i64,
    pub status: String,
    pub attempts: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub run_at: i64,
    pub lease: Option<i64>,
    pub rescues: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const COLS: &str = "seq, id, message_id, number, chat_id, message, template, priority, status, \
    attempts, error_code, error_message, run_at, lease, rescues, created_at, updated_at, finished_at";

/// What the API accepted, ready to store.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub message_id: String,
    pub number: String,
    pub chat_id: String,
    pub message: String,
    pub template: Option<String>,
    pub priority: i64,
    pub now: i64,
}

/// Inserts a job unless one with the same `message_id` exists; returns the stored row and
/// whether it was created now.
pub async fn insert(conn: &mut SqliteConnection, job: &NewJob) -> sqlx::Result<(JobRow, bool)> {
    let inserted: Option<JobRow> = sqlx::query_as(&format!(
        "INSERT INTO jobs (id, message_id, number, chat_id, message, template, priority, status, \
         attempts, run_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'waiting', 0, ?8, ?8, ?8) \
         ON CONFLICT(message_id) DO NOTHING RETURNING {COLS}"
    ))
    .bind(&job.id)
    .bind(&job.message_id)
    .bind(&job.number)
    .bind(&job.chat_id)
    .bind(&job.message)
    .bind(&job.template)
    .bind(job.priority)
    .bind(job.now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        return Ok((row, true));
    }
    let existing: JobRow =
        sqlx::query_as(&format!("SELECT {COLS} FROM jobs WHERE message_id = ?1"))
            .bind(&job.message_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok((existing, false))
}

/// Atomically moves up to `limit` due jobs to `active` (high priority first, then oldest),
/// counting the attempt, and returns them in claim order.
pub async fn claim(
    conn: &mut SqliteConnection,
    limit: i64,
    now: i64,
    lease: i64,
) -> sqlx::Result<Vec<JobRow>> {
    let mut rows: Vec<JobRow> = sqlx::query_as(&format!(
        "UPDATE jobs SET status = 'active', attempts = attempts + 1, lease = ?1, updated_at = ?2 \
         WHERE seq IN (SELECT seq FROM jobs WHERE status = 'waiting' AND run_at <= ?2 \
                       ORDER BY priority, seq LIMIT ?3) \
         RETURNING {COLS}"
    ))
    .bind(lease)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.sort_by_key(|r| (r.priority, r.seq));
    Ok(rows)
}

/// `active` → `completed`, if the lease still holds.
pub async fn complete(
    conn: &mut SqliteConnection,
    seq: i64,
    lease: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'completed', lease = NULL, updated_at = ?3, finished_at = ?3 \
         WHERE seq = ?1 AND status = 'active' AND lease = ?2",
    )
    .bind(seq)
    .bind(lease)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `active` → `waiting` until `run_at`, recording the error, if the lease still holds.
pub async fn retry_later(
    conn: &mut SqliteConnection,
    seq: i64,
    lease: i64,
    now: i64,
    run_at: i64,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'waiting', lease = NULL, updated_at = ?3, run_at = ?4, \
         error_code = ?5, error_message = ?6 \
         WHERE seq = ?1 AND status = 'active' AND lease = ?2",
    )
    .bind(seq)
    .bind(lease)
    .bind(now)
    .bind(run_at)
    .bind(code)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `active` → `failed`, if the lease still holds.
pub async fn fail(
    conn: &mut SqliteConnection,
    seq: i64,
    lease: i64,
    now: i64,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'failed', lease = NULL, updated_at = ?3, finished_at = ?3, \
         error_code = ?4, error_message = ?5 \
         WHERE seq = ?1 AND status = 'active' AND lease = ?2",
    )
    .bind(seq)
    .bind(lease)
    .bind(now)
    .bind(code)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A job that was `active` more than this many times when the process died fails as a crash loop.
pub const MAX_RESCUES: i64 = 3;

/// At start-up, every `active` job belonged to a process that died: put it back to `waiting`,
/// keeping its attempts. Returns (recovered, failed as crash loops).
pub async fn recover_active(conn: &mut SqliteConnection, now: i64) -> sqlx::Result<(u64, u64)> {
    let recovered = sqlx::query(
        "UPDATE jobs SET status = 'waiting', lease = NULL, rescues = rescues + 1, run_at = ?1, \
         updated_at = ?1 WHERE status = 'active'",
    )
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let looped = sqlx::query(
        "UPDATE jobs SET status = 'failed', finished_at = ?1, updated_at = ?1, error_code = 'crash-loop', \
         error_message = 'the gateway stopped while sending this job ' || rescues || ' times' \
         WHERE status = 'waiting' AND rescues > ?2",
    )
    .bind(now)
    .bind(MAX_RESCUES)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((recovered, looped))
}

pub async fn get(pool: &SqlitePool, id: &str) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(&format!("SELECT {COLS} FROM jobs WHERE id = ?1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Newest first; `before` is the `seq` cursor of the previous page.
pub async fn list(
    pool: &SqlitePool,
    status: Option<&str>,
    limit: i64,
    before: Option<i64>,
) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLS} FROM jobs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR seq < ?2) \
         ORDER BY seq DESC LIMIT ?3"
    ))
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Failed jobs and jobs waiting for a retry, newest first.
pub async fn retry_queue(pool: &SqlitePool, limit: i64) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLS} FROM jobs WHERE status = 'failed' OR (status = 'waiting' AND attempts > 0) \
         ORDER BY seq DESC LIMIT ?1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Counts {
    pub waiting: i64,
    pub active: i64,
    pub completed: i64,
    pub failed: i64,
}

pub async fn counts(pool: &SqlitePool) -> sqlx::Result<Counts> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            .fetch_all(pool)
            .await?;
    let mut c = Counts::default();
    for (status, n) in rows {
        match status.as_str() {
            "waiting" => c.waiting = n,
            "active" => c.active = n,
            "completed" => c.completed = n,
            "failed" => c.failed = n,
            _ => {}
        }
    }
    Ok(c)
}

/// When the next waiting job becomes due, if any.
pub async fn next_run_at(pool: &SqlitePool) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE status = 'waiting'")
        .fetch_one(pool)
        .await
}

/// A failed job goes back to `waiting` with a fresh set of attempts. `Ok(None)`: no such job;
/// `Err(status)`: the job is not failed.
pub async fn requeue_failed(
    conn: &mut SqliteConnection,
    id: &str,
    now: i64,
) -> sqlx::Result<Result<Option<JobRow>, String>> {
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "UPDATE jobs SET status = 'waiting', attempts = 0, rescues = 0, run_at = ?2, updated_at = ?2, \
         finished_at = NULL WHERE id = ?1 AND status = 'failed' RETURNING {COLS}"
    ))
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) => Ok(Ok(Some(r))),
        None => current_status(conn, id)
            .await
            .map(|s| s.map_or(Ok(None), Err)),
    }
}

/// A waiting job ends `failed` with code `cancelled`, so every accepted job still has an end.
pub async fn cancel_waiting(
    conn: &mut SqliteConnection,
    id: &str,
    now: i64,
) -> sqlx::Result<Result<Option<JobRow>, String>> {
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "UPDATE jobs SET status = 'failed', error_code = 'cancelled', \
         error_message = 'cancelled through the API', updated_at = ?2, finished_at = ?2 \
         WHERE id = ?1 AND status = 'waiting' RETURNING {COLS}"
    ))
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) => Ok(Ok(Some(r))),
        None => current_status(conn, id)
            .await
            .map(|s| s.map_or(Ok(None), Err)),
    }
}

async fn current_status(conn: &mut SqliteConnection, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT status FROM jobs WHERE id = ?1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Deletes jobs in the given states (never `active`; the caller checks).
pub async fn clear(conn: &mut SqliteConnection, statuses: &[String]) -> sqlx::Result<u64> {
    let mut total = 0;
    for status in statuses {
        total += sqlx::query("DELETE FROM jobs WHERE status = ?1 AND status != 'active'")
            .bind(status)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(total)
}
