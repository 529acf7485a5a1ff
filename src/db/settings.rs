//! Run-time settings (`queue/config`) that must survive a restart.

use crate::db::{Conn, Pool, on, on_pool};

pub async fn get(pool: &Pool, key: &str) -> sqlx::Result<Option<String>> {
    on_pool!(pool, |p| sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = $1"
    )
    .bind(key)
    .fetch_optional(p)
    .await)
}

pub async fn set(conn: &mut Conn, key: &str, value: &str, now: i64) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(value)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
