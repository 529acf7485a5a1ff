//! What pacing reads and writes: each session's sends of the last days (`sent_log`), the
//! numbers it has exchanged messages with (`contacts`), both written by the `jobs_sent` trigger
//! as jobs complete; a job held back by a rule, and a session's cooldown.

use crate::db::{Conn, Pool, on, on_pool};

use super::jobs::{COLS, JobRow};

/// How long sends are kept in `sent_log`: the widest window (a day), with room.
pub const KEEP_SENT_MS: i64 = 2 * 86_400_000;

/// One send of a session's history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SentRow {
    pub at: i64,
    pub chat_id: String,
    pub first_contact: bool,
}

/// A session's sends since `since`, oldest first: at most the `limit` latest.
pub async fn history(
    pool: &Pool,
    session: &str,
    since: i64,
    limit: i64,
) -> sqlx::Result<Vec<SentRow>> {
    let mut rows: Vec<SentRow> = on_pool!(pool, |p| sqlx::query_as(
        "SELECT at, chat_id, first_contact FROM sent_log WHERE session = $1 AND at >= $2 \
         ORDER BY at DESC LIMIT $3",
    )
    .bind(session)
    .bind(since)
    .bind(limit)
    .fetch_all(p)
    .await)?;
    rows.reverse();
    Ok(rows)
}

/// True when the session has exchanged messages with this chat.
pub async fn is_contact(pool: &Pool, session: &str, chat_id: &str) -> sqlx::Result<bool> {
    on_pool!(pool, |p| sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE session = $1 AND chat_id = $2)"
    )
    .bind(session)
    .bind(chat_id)
    .fetch_one(p)
    .await)
}

/// The session's next due job, in claim order (high priority first, then oldest).
pub async fn next_due(pool: &Pool, session: &str, now: i64) -> sqlx::Result<Option<JobRow>> {
    let sql = format!(
        "SELECT {COLS} FROM jobs INDEXED BY jobs_claim \
         WHERE session = $1 AND status = 'waiting' AND run_at <= $2 ORDER BY priority, seq LIMIT 1"
    );
    let sql = pool.sql(&sql);
    on_pool!(pool, |p| sqlx::query_as(&sql)
        .bind(session)
        .bind(now)
        .fetch_optional(p)
        .await)
}

/// Claims one job by its seq, if it is still waiting (as `jobs::claim` does for many).
pub async fn claim_one(
    conn: &mut Conn,
    seq: i64,
    now: i64,
    lease: &crate::db::jobs::Lease,
) -> sqlx::Result<Option<JobRow>> {
    // On PostgreSQL only while this node owns the job's session, as `jobs::claim`.
    let fence = match conn.is_pg() {
        true => format!(" AND {}", crate::db::jobs::owned_by("jobs.session", "$4")),
        false => String::new(),
    };
    on!(&mut *conn, |c| {
        sqlx::query_as(&format!(
        "UPDATE jobs SET status = 'active', attempts = attempts + 1, lease = $2, node = $4, updated_at = $3, \
         paced = NULL WHERE seq = $1 AND status = 'waiting'{fence} RETURNING {COLS}"
    ))
    .bind(seq)
    .bind(lease.token)
    .bind(now)
    .bind(&*lease.node)
    .fetch_optional(&mut *c)
    .await
    })
}

/// Holds a waiting job back until `until` because of `rule`, spending no attempt.
pub async fn defer(conn: &mut Conn, seq: i64, until: i64, rule: &str) -> sqlx::Result<bool> {
    let r = on!(&mut *conn, |c| sqlx::query(
        "UPDATE jobs SET run_at = $2, paced = $3 WHERE seq = $1 AND status = 'waiting'",
    )
    .bind(seq)
    .bind(until)
    .bind(rule)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Starts (or ends, with `None`) a session's cooldown.
pub async fn set_cooldown(
    conn: &mut Conn,
    session: &str,
    cooldown: Option<(i64, &str)>,
) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "UPDATE sessions SET cooldown_until = $2, cooldown_reason = $3 WHERE name = $1"
    )
    .bind(session)
    .bind(cooldown.map(|c| c.0))
    .bind(cooldown.map(|c| c.1))
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// When the session's number was linked: the first connection sets it, later ones keep it
/// (`None` forgets it, after a logout). Returns the value in force.
pub async fn set_linked(
    conn: &mut Conn,
    session: &str,
    at: Option<i64>,
) -> sqlx::Result<Option<i64>> {
    let q = match at {
        Some(_) => {
            "UPDATE sessions SET linked_at = COALESCE(linked_at, $2) WHERE name = $1 RETURNING linked_at"
        }
        None => "UPDATE sessions SET linked_at = $2 WHERE name = $1 RETURNING linked_at",
    };
    Ok(on!(&mut *conn, |c| sqlx::query_scalar::<_, Option<i64>>(q)
        .bind(session)
        .bind(at)
        .fetch_optional(&mut *c)
        .await)?
    .flatten())
}

/// Deletes sends older than `before`; how many.
pub async fn prune_sent(conn: &mut Conn, before: i64) -> sqlx::Result<u64> {
    Ok(on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM sent_log WHERE at < $1"
    )
    .bind(before)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?)
}

/// A deleted session's history and contacts.
pub async fn forget_session(conn: &mut Conn, session: &str) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM sent_log WHERE session = $1"
    )
    .bind(session)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM contacts WHERE session = $1"
    )
    .bind(session)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records that the session has exchanged a message with the chat (no-op when it had).
pub async fn add_contact(
    conn: &mut Conn,
    session: &str,
    chat_id: &str,
    now: i64,
) -> sqlx::Result<()> {
    on!(conn, |c| {
        sqlx::query(
        "INSERT INTO contacts (session, chat_id, first_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(session)
    .bind(chat_id)
    .bind(now)
    .execute(c)
    .await
    .map(drop)
    })
}
