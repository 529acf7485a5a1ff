//! Users and their refresh tokens.

use crate::db::{Conn, Pool, on, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
}

pub async fn count(pool: &Pool) -> sqlx::Result<i64> {
    on_pool!(pool, |p| sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(p)
        .await)
}

pub async fn by_email(pool: &Pool, email: &str) -> sqlx::Result<Option<User>> {
    on_pool!(pool, |p| sqlx::query_as(
        "SELECT id, email, password_hash, created_at FROM users WHERE email = $1"
    )
    .bind(email)
    .fetch_optional(p)
    .await)
}

pub async fn list(conn: &mut Conn) -> sqlx::Result<Vec<User>> {
    on!(&mut *conn, |c| sqlx::query_as(
        "SELECT id, email, password_hash, created_at FROM users ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
}

pub async fn email_of(conn: &mut Conn, id: i64) -> sqlx::Result<Option<String>> {
    on!(conn, |c| sqlx::query_scalar(
        "SELECT email FROM users WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await)
}

/// Inserts a user; `Ok(None)` when the email is taken.
pub async fn insert(
    conn: &mut Conn,
    email: &str,
    hash: &str,
    now: i64,
) -> sqlx::Result<Option<i64>> {
    on!(&mut *conn, |c| sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT(email) DO NOTHING RETURNING id",
    )
    .bind(email)
    .bind(hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)
}

/// Sets a new password and signs the user out everywhere. Returns false when no such user.
pub async fn set_password(
    conn: &mut Conn,
    email: &str,
    hash: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let id: Option<i64> = on!(&mut *conn, |c| sqlx::query_scalar(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE email = $1 RETURNING id",
    )
    .bind(email)
    .bind(hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?;
    match id {
        Some(id) => {
            revoke_all(conn, id, now).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

pub async fn delete(conn: &mut Conn, email: &str) -> sqlx::Result<bool> {
    let r = on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM users WHERE email = $1"
    )
    .bind(email)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub user_id: i64,
    pub family: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub async fn insert_refresh(
    conn: &mut Conn,
    token_hash: &str,
    user_id: i64,
    family: &str,
    expires_at: i64,
    now: i64,
) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(family)
    .bind(expires_at)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn find_refresh(conn: &mut Conn, token_hash: &str) -> sqlx::Result<Option<RefreshRow>> {
    on!(&mut *conn, |c| {
        sqlx::query_as(
        "SELECT user_id, family, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *c).await
    })
}

/// Marks a token spent, only if it was not spent already (the compare-and-set of rotation).
pub async fn spend_refresh(conn: &mut Conn, token_hash: &str, now: i64) -> sqlx::Result<bool> {
    let r = on!(&mut *conn, |c| {
        sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(&mut *c).await.map(|r| r.rows_affected())
    })?;
    Ok(r == 1)
}

pub async fn revoke_family(conn: &mut Conn, family: &str, now: i64) -> sqlx::Result<u64> {
    let r = on!(&mut *conn, |c| sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r)
}

pub async fn revoke_all(conn: &mut Conn, user_id: i64, now: i64) -> sqlx::Result<u64> {
    let r = on!(&mut *conn, |c| sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    // Expired rows are of no further use.
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at < $2"
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r)
}
