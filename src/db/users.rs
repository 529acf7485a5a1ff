//! Users and their refresh tokens.

use sqlx::{SqliteConnection, SqlitePool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
}

pub async fn count(pool: &SqlitePool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

pub async fn by_email(pool: &SqlitePool, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as("SELECT id, email, password_hash, created_at FROM users WHERE email = ?1")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn list(conn: &mut SqliteConnection) -> sqlx::Result<Vec<User>> {
    sqlx::query_as("SELECT id, email, password_hash, created_at FROM users ORDER BY id")
        .fetch_all(conn)
        .await
}

/// Inserts a user; `Ok(None)` when the email is taken.
pub async fn insert(
    conn: &mut SqliteConnection,
    email: &str,
    hash: &str,
    now: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT(email) DO NOTHING RETURNING id",
    )
    .bind(email)
    .bind(hash)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Sets a new password and signs the user out everywhere. Returns false when no such user.
pub async fn set_password(
    conn: &mut SqliteConnection,
    email: &str,
    hash: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE email = ?1 RETURNING id",
    )
    .bind(email)
    .bind(hash)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => {
            revoke_all(conn, id, now).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

pub async fn delete(conn: &mut SqliteConnection, email: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM users WHERE email = ?1")
        .bind(email)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
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
    conn: &mut SqliteConnection,
    token_hash: &str,
    user_id: i64,
    family: &str,
    expires_at: i64,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family, expires_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(family)
    .bind(expires_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_refresh(
    conn: &mut SqliteConnection,
    token_hash: &str,
) -> sqlx::Result<Option<RefreshRow>> {
    sqlx::query_as(
        "SELECT user_id, family, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// Marks a token spent, only if it was not spent already (the compare-and-set of rotation).
pub async fn spend_refresh(
    conn: &mut SqliteConnection,
    token_hash: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn revoke_family(
    conn: &mut SqliteConnection,
    family: &str,
    now: i64,
) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family = ?1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

pub async fn revoke_all(conn: &mut SqliteConnection, user_id: i64, now: i64) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Expired rows are of no further use.
    sqlx::query("DELETE FROM refresh_tokens WHERE user_id = ?1 AND expires_at < ?2")
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}
