//! The `inbound` table (messages sessions received, each once) and `opt_outs` (numbers that
//! asked a session to stop).

use crate::db::{Conn, Pool, on, on_pool};

/// A received message as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundRow {
    pub seq: i64,
    pub session: String,
    /// WhatsApp's id for it (its bubble's `data-id`).
    pub message_id: String,
    pub chat_id: String,
    pub from_number: String,
    pub text: String,
    pub media_type: Option<String>,
    pub at: i64,
}

/// Stores a received message unless this session has it already; the stored row when new.
pub async fn insert(
    c: &mut Conn,
    session: &str,
    m: &crate::whatsapp::Incoming,
    at: i64,
) -> sqlx::Result<Option<InboundRow>> {
    on!(&mut *c, |c| sqlx::query_as(
        "INSERT INTO inbound (session, message_id, chat_id, from_number, text, media_type, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session, message_id) DO NOTHING \
         RETURNING seq, session, message_id, chat_id, from_number, text, media_type, at",
    )
    .bind(session)
    .bind(&m.message_id)
    .bind(&m.chat_id)
    .bind(&m.from)
    .bind(&m.text)
    .bind(&m.media_type)
    .bind(at)
    .fetch_optional(&mut *c)
    .await)
}

/// A session's received messages at or after `since` (ms), oldest first.
pub async fn list(
    pool: &Pool,
    session: &str,
    since: i64,
    limit: i64,
) -> sqlx::Result<Vec<InboundRow>> {
    on_pool!(pool, |p| sqlx::query_as(
        "SELECT seq, session, message_id, chat_id, from_number, text, media_type, at \
         FROM inbound WHERE session = $1 AND at >= $2 ORDER BY at, seq LIMIT $3",
    )
    .bind(session)
    .bind(since)
    .bind(limit)
    .fetch_all(p)
    .await)
}

/// Deletes up to `limit` messages received before `before`; how many.
pub async fn prune(c: &mut Conn, before: i64, limit: i64) -> sqlx::Result<u64> {
    on!(&mut *c, |c| sqlx::query(
        "DELETE FROM inbound WHERE seq IN (SELECT seq FROM inbound WHERE at < $1 LIMIT $2)"
    )
    .bind(before)
    .bind(limit)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

/// A number that opted out of a session's messages.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OptOutRow {
    pub session: String,
    pub number: String,
    pub reason: String,
    pub created_at: i64,
}

/// Adds an opt-out (keeping the first reason and time); true when it is new.
pub async fn opt_out(
    c: &mut Conn,
    session: &str,
    number: &str,
    reason: &str,
    now: i64,
) -> sqlx::Result<bool> {
    on!(&mut *c, |c| sqlx::query(
        "INSERT INTO opt_outs (session, number, reason, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(session)
    .bind(number)
    .bind(reason)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .map(|r| r > 0)
}

/// Removes an opt-out; true when there was one.
pub async fn opt_in(c: &mut Conn, session: &str, number: &str) -> sqlx::Result<bool> {
    on!(&mut *c, |c| sqlx::query(
        "DELETE FROM opt_outs WHERE session = $1 AND number = $2"
    )
    .bind(session)
    .bind(number)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .map(|r| r > 0)
}

/// The opt-outs of one session, or of all (`None`), by session then number.
pub async fn opt_outs(pool: &Pool, session: Option<&str>) -> sqlx::Result<Vec<OptOutRow>> {
    on_pool!(pool, |p| sqlx::query_as(
        "SELECT session, number, reason, created_at FROM opt_outs \
         WHERE $1 IS NULL OR session = $1 ORDER BY session, number",
    )
    .bind(session)
    .fetch_all(p)
    .await)
}
