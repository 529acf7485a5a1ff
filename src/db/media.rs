//! The `media` and `media_blobs` tables: a file's bytes once per sha256, each upload's name and
//! type beside them, and the pruning of files no job needs any more.

use crate::db::{Conn, Pool, on, on_pool};

/// A stored file, without its bytes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaRow {
    pub id: String,
    pub sha256: String,
    pub bytes: i64,
    pub mime_type: String,
    pub filename: String,
    pub created_at: i64,
}

/// Stores an upload: the bytes unless a blob with this sha256 is there already, and the media
/// row unless this id is (then only its `used_at` moves). True when the row is new.
pub async fn insert(c: &mut Conn, row: &MediaRow, data: &[u8], now: i64) -> sqlx::Result<bool> {
    on!(&mut *c, |c| sqlx::query(
        "INSERT INTO media_blobs (sha256, bytes, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&row.sha256)
    .bind(row.bytes)
    .bind(data)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let existed: bool = on!(&mut *c, |c| sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM media WHERE id = $1)"
    )
    .bind(&row.id)
    .fetch_one(&mut *c)
    .await)?;
    if existed {
        touch(c, &row.id, now).await?;
        return Ok(false);
    }
    on!(&mut *c, |c| sqlx::query(
        "INSERT INTO media (id, sha256, mime_type, filename, created_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&row.id)
    .bind(&row.sha256)
    .bind(&row.mime_type)
    .bind(&row.filename)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(true)
}

pub async fn get(pool: &Pool, id: &str) -> sqlx::Result<Option<MediaRow>> {
    on_pool!(pool, |p| sqlx::query_as(
        "SELECT m.id, m.sha256, b.bytes, m.mime_type, m.filename, m.created_at \
         FROM media m JOIN media_blobs b ON b.sha256 = m.sha256 WHERE m.id = $1",
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// A stored file's bytes.
pub async fn data(pool: &Pool, sha256: &str) -> sqlx::Result<Option<Vec<u8>>> {
    on_pool!(pool, |p| sqlx::query_scalar(
        "SELECT data FROM media_blobs WHERE sha256 = $1"
    )
    .bind(sha256)
    .fetch_optional(p)
    .await)
}

/// Marks media as needed now (a job was queued with it), so pruning counts from here.
pub async fn touch(c: &mut Conn, id: &str, now: i64) -> sqlx::Result<()> {
    let sql = if c.is_pg() {
        "UPDATE media SET used_at = GREATEST(used_at, $2) WHERE id = $1"
    } else {
        "UPDATE media SET used_at = max(used_at, $2) WHERE id = $1"
    };
    on!(&mut *c, |c| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
    .map(|_| ())
}

/// Deletes media unused since `before` that no job refers to, then blobs no media refers to;
/// at most `limit` media per call. Returns (media, blobs) deleted.
pub async fn prune(c: &mut Conn, before: i64, limit: i64) -> sqlx::Result<(u64, u64)> {
    let sql = c.sql(
        "DELETE FROM media WHERE id IN (SELECT id FROM media m WHERE m.used_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM jobs j INDEXED BY jobs_media WHERE j.media_id = m.id) \
         LIMIT $2)",
    );
    let media = on!(&mut *c, |c| sqlx::query(&sql)
        .bind(before)
        .bind(limit)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    let blobs = if media > 0 {
        let sql = c.sql(
            "DELETE FROM media_blobs WHERE NOT EXISTS \
             (SELECT 1 FROM media m INDEXED BY media_sha256 WHERE m.sha256 = media_blobs.sha256)",
        );
        on!(&mut *c, |c| sqlx::query(&sql)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?
    } else {
        0
    };
    Ok((media, blobs))
}
