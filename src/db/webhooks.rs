//! The `webhook_deliveries` table: one row per event a webhook wants, kept until delivered or
//! given up, so a restart loses none.

use crate::db::{Conn, Pool, on, on_pool};

/// A row of `webhook_deliveries`.
#[derive(Debug, sqlx::FromRow)]
pub struct Delivery {
    pub id: String,
    pub url: String,
    pub event: String,
    pub job_id: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub body: String,
}

const COLS: &str = "id, url, event, job_id, status, attempts, next_attempt_at, last_error, \
    created_at, delivered_at, body";

/// A new pending delivery of `body` (event `event`) to `url`.
pub async fn insert(
    conn: &mut Conn,
    id: &str,
    url: &str,
    event: &str,
    job_id: Option<&str>,
    body: &str,
    now: i64,
) -> sqlx::Result<()> {
    on!(conn, |c| {
        sqlx::query(
        "INSERT INTO webhook_deliveries (id, url, event, job_id, body, status, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)",
    )
    .bind(id)
    .bind(url)
    .bind(event)
    .bind(job_id)
    .bind(body)
    .bind(now)
    .execute(c)
    .await
    .map(drop)
    })
}

/// The oldest delivery still pending for `url`.
pub async fn oldest_pending(pool: &Pool, url: &str) -> sqlx::Result<Option<Delivery>> {
    let index = if pool.is_pg() {
        ""
    } else {
        "INDEXED BY webhook_pending"
    };
    let sql = format!(
        "SELECT {COLS} FROM webhook_deliveries {index}
         WHERE url = $1 AND status = 'pending' ORDER BY seq LIMIT 1"
    );
    on_pool!(pool, |p| sqlx::query_as(&sql)
        .bind(url)
        .fetch_optional(p)
        .await)
}

/// What became of an attempt: `status` is `delivered`, `failed` or `pending` (again at
/// `next_at`).
pub async fn record_attempt(
    conn: &mut Conn,
    id: &str,
    status: &str,
    attempts: i64,
    next_at: i64,
    error: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    on!(conn, |c| sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4,
           last_error = $5, delivered_at = CASE WHEN $2 = 'delivered' THEN $6 END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(attempts)
    .bind(next_at)
    .bind(error)
    .bind(now)
    .execute(c)
    .await
    .map(drop))
}

/// Recent deliveries, newest first.
pub async fn recent(pool: &Pool, status: Option<&str>, limit: i64) -> sqlx::Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT {COLS} FROM webhook_deliveries WHERE ($1 IS NULL OR status = $1)
         ORDER BY seq DESC LIMIT $2"
    );
    on_pool!(pool, |p| sqlx::query_as(&sql)
        .bind(status)
        .bind(limit)
        .fetch_all(p)
        .await)
}
