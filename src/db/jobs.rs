//! The `jobs` table: enqueue, claim, finish, and the queries behind the queue API.
//!
//! Every transition out of `active` is a compare-and-set on the lease the claim handed out, so a
//! job recovered by a restart can never be overwritten by a stale worker.

use std::collections::HashMap;

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
    /// The driver's receipt (JSON), once completed.
    pub receipt: Option<String>,
}

const COLS: &str = "seq, id, message_id, number, chat_id, message, template, priority, status, \
    attempts, error_code, error_message, run_at, lease, rescues, created_at, updated_at, finished_at, \
    receipt";

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

impl NewJob {
    /// The row as `insert_many` stored it.
    fn stored(&self, seq: i64) -> JobRow {
        JobRow {
            seq,
            id: self.id.clone(),
            message_id: self.message_id.clone(),
            number: self.number.clone(),
            chat_id: self.chat_id.clone(),
            message: self.message.clone(),
            template: self.template.clone(),
            priority: self.priority,
            status: "waiting".into(),
            attempts: 0,
            error_code: None,
            error_message: None,
            run_at: self.now,
            lease: None,
            rescues: 0,
            created_at: self.now,
            updated_at: self.now,
            finished_at: None,
            receipt: None,
        }
    }
}

/// Most rows in one INSERT statement (8 parameters each, far below SQLite's limit).
pub const MAX_INSERT_ROWS: usize = 256;

/// Inserts many jobs in one statement. For each input, in order: the stored row and whether
/// this input created it (a `message_id` seen before, or earlier in the same batch, did not).
pub async fn insert_many(
    conn: &mut SqliteConnection,
    batch: &[NewJob],
) -> sqlx::Result<Vec<(JobRow, bool)>> {
    let mut out = Vec::with_capacity(batch.len());
    for chunk in batch.chunks(MAX_INSERT_ROWS) {
        let placeholders =
            vec!["(?, ?, ?, ?, ?, ?, ?, 'waiting', 0, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO jobs (id, message_id, number, chat_id, message, template, priority, status, \
             attempts, run_at, created_at, updated_at) VALUES {placeholders} \
             ON CONFLICT(message_id) DO NOTHING RETURNING seq, message_id"
        );
        // Only the new rows' seq comes back: the rest of each row is what was just written.
        let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
        for j in chunk {
            q = q
                .bind(&j.id)
                .bind(&j.message_id)
                .bind(&j.number)
                .bind(&j.chat_id)
                .bind(&j.message)
                .bind(&j.template)
                .bind(j.priority)
                .bind(j.now)
                .bind(j.now)
                .bind(j.now);
        }
        let mut created: HashMap<String, i64> = q
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|(seq, m)| (m, seq))
            .collect();
        let mut existing: HashMap<String, JobRow> = HashMap::new();
        let missing: Vec<&str> = chunk
            .iter()
            .filter(|j| !created.contains_key(&j.message_id))
            .map(|j| j.message_id.as_str())
            .collect();
        if !missing.is_empty() {
            let sql = format!(
                "SELECT {COLS} FROM jobs WHERE message_id IN ({})",
                vec!["?"; missing.len()].join(", ")
            );
            let mut q = sqlx::query_as::<_, JobRow>(&sql);
            for m in &missing {
                q = q.bind(*m);
            }
            existing.extend(
                q.fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(|r| (r.message_id.clone(), r)),
            );
        }
        for j in chunk {
            if let Some(seq) = created.remove(&j.message_id) {
                let row = j.stored(seq);
                existing.insert(j.message_id.clone(), row.clone());
                out.push((row, true));
            } else {
                let row = existing
                    .get(&j.message_id)
                    .cloned()
                    .ok_or(sqlx::Error::RowNotFound)?;
                out.push((row, false));
            }
        }
    }
    Ok(out)
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
         WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_claim \
                       WHERE status = 'waiting' AND run_at <= ?2 ORDER BY priority, seq LIMIT ?3) \
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

/// One claimed job's outcome, to record if its lease still holds.
#[derive(Debug, Clone)]
pub struct Finished {
    pub seq: i64,
    pub lease: i64,
    pub outcome: Outcome,
}

/// True when `finish_many` on this batch runs a single statement.
pub fn all_completed(batch: &[Finished]) -> bool {
    batch
        .iter()
        .all(|f| matches!(f.outcome, Outcome::Completed { .. }))
}

/// Records outcomes: all completions in one statement, others one by one. For each input, in
/// order, whether its lease still held (a job recovered by a restart is not overwritten).
pub async fn finish_many(
    conn: &mut SqliteConnection,
    batch: &[Finished],
    now: i64,
) -> sqlx::Result<Vec<bool>> {
    let completed: Vec<&Finished> = batch
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::Completed { .. }))
        .collect();
    let mut done = std::collections::HashSet::new();
    if !completed.is_empty() {
        // `seq IN (...)` finds rows by primary key; the CASEs are the per-row receipt and
        // lease check.
        let seqs = vec!["?"; completed.len()].join(", ");
        let cases = " WHEN ? THEN ?".repeat(completed.len());
        let sql = format!(
            "UPDATE jobs SET status = 'completed', lease = NULL, updated_at = ?, finished_at = ?, \
             receipt = CASE seq{cases} END \
             WHERE seq IN ({seqs}) AND status = 'active' AND lease = CASE seq{cases} END RETURNING seq"
        );
        // Anonymous parameters only: sqlx numbers `?` apart from `?N`, so they must not be mixed.
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(now).bind(now);
        for f in &completed {
            let receipt = match &f.outcome {
                Outcome::Completed { receipt } => receipt.as_deref(),
                _ => None,
            };
            q = q.bind(f.seq).bind(receipt);
        }
        for f in &completed {
            q = q.bind(f.seq);
        }
        for f in &completed {
            q = q.bind(f.seq).bind(f.lease);
        }
        done.extend(q.fetch_all(&mut *conn).await?);
    }
    let mut out = Vec::with_capacity(batch.len());
    for f in batch {
        let ok = match &f.outcome {
            Outcome::Completed { .. } => done.contains(&f.seq),
            Outcome::Retry {
                run_at,
                code,
                message,
            } => retry_later(conn, f.seq, f.lease, now, *run_at, code, message).await?,
            Outcome::Failed { code, message } => {
                fail(conn, f.seq, f.lease, now, code, message).await?
            }
        };
        out.push(ok);
    }
    Ok(out)
}

/// `active` → `waiting` until `run_at`, recording the error, if the lease still holds.
async fn retry_later(
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
async fn fail(
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

#[derive(Debug, Default, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
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

/// Deletes jobs in the given states (never `active`); returns how many, per state.
pub async fn clear(conn: &mut SqliteConnection, states: &[&str]) -> sqlx::Result<Vec<u64>> {
    let mut out = Vec::with_capacity(states.len());
    for state in states {
        out.push(
            sqlx::query("DELETE FROM jobs WHERE status = ?1 AND status != 'active'")
                .bind(state)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        );
    }
    Ok(out)
}

/// Deletes up to `limit` jobs in `status` that finished before `before` (ms), oldest first;
/// returns how many.
pub async fn prune(
    conn: &mut SqliteConnection,
    status: &str,
    before: i64,
    limit: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_finished
           WHERE status = ?1 AND finished_at IS NOT NULL AND finished_at < ?2
           ORDER BY finished_at LIMIT ?3)",
    )
    .bind(status)
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected())
}

/// When the oldest kept job was created (ms), if there is one.
pub async fn oldest_created_at(pool: &SqlitePool) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT created_at FROM jobs ORDER BY seq LIMIT 1")
        .fetch_optional(pool)
        .await
}
