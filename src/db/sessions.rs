//! The `sessions` table: each WhatsApp account the gateway serves, with its desired state
//! (started or stopped) and the settings that override gateway.toml's.

use crate::db::{Conn, Pool, on, on_pool};

use crate::config::DriverKind;

/// A row of `sessions`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub name: String,
    pub driver: DriverKind,
    /// Desired state: started again after a restart.
    pub started: bool,
    pub paused: bool,
    pub concurrency: Option<i64>,
    /// JSON array of extra browser flags.
    pub browser_args: Option<String>,
    pub memory_limit: Option<i64>,
    /// The account's own number, once known.
    pub me: Option<String>,
    /// The last state the running gateway saw (for the CLI).
    pub state: Option<String>,
    pub detail: Option<String>,
    /// The QR code awaiting a scan, while there is one.
    pub qr: Option<String>,
    /// Its own pacing rules (JSON of `PacingOverrides`), over `[pacing]`.
    pub pacing: Option<String>,
    /// When its number was linked (the warm-up counts days from it).
    pub linked_at: Option<i64>,
    /// Resting after a sign of trouble, until then, for that reason.
    pub cooldown_until: Option<i64>,
    pub cooldown_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SessionRow {
    /// A new session with the file's defaults for every setting.
    pub fn new(name: &str, driver: DriverKind, started: bool, now: i64) -> SessionRow {
        SessionRow {
            name: name.to_string(),
            driver,
            started,
            paused: false,
            concurrency: None,
            browser_args: None,
            memory_limit: None,
            me: None,
            state: None,
            detail: None,
            qr: None,
            pacing: None,
            linked_at: None,
            cooldown_until: None,
            cooldown_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The extra browser flags.
    pub fn browser_args(&self) -> Vec<String> {
        self.browser_args
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default()
    }
}

const COLS: &str = "name, driver, started, paused, concurrency, browser_args, memory_limit, me, \
    state, detail, qr, pacing, linked_at, cooldown_until, cooldown_reason, created_at, updated_at";

pub async fn list(pool: &Pool) -> sqlx::Result<Vec<SessionRow>> {
    on_pool!(pool, |p| sqlx::query_as(&format!(
        "SELECT {COLS} FROM sessions ORDER BY name"
    ))
    .fetch_all(p)
    .await)
}

pub async fn get(conn: &mut Conn, name: &str) -> sqlx::Result<Option<SessionRow>> {
    on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLS} FROM sessions WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(c)
    .await)
}

/// Inserts a session; false when one of that name exists.
pub async fn insert(conn: &mut Conn, row: &SessionRow) -> sqlx::Result<bool> {
    let r = on!(&mut *conn, |c| sqlx::query(
        "INSERT INTO sessions (name, driver, started, paused, concurrency, browser_args, \
         memory_limit, me, created_at, updated_at, pacing) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT(name) DO NOTHING",
    )
    .bind(&row.name)
    .bind(row.driver)
    .bind(row.started)
    .bind(row.paused)
    .bind(row.concurrency)
    .bind(&row.browser_args)
    .bind(row.memory_limit)
    .bind(&row.me)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(&row.pacing)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Writes every setting of an existing session; false when it is gone.
pub async fn update(conn: &mut Conn, row: &SessionRow) -> sqlx::Result<bool> {
    let r = on!(&mut *conn, |c| sqlx::query(
        "UPDATE sessions SET started = $2, paused = $3, concurrency = $4, browser_args = $5, \
         memory_limit = $6, me = $7, updated_at = $8, pacing = $9 WHERE name = $1",
    )
    .bind(&row.name)
    .bind(row.started)
    .bind(row.paused)
    .bind(row.concurrency)
    .bind(&row.browser_args)
    .bind(row.memory_limit)
    .bind(&row.me)
    .bind(row.updated_at)
    .bind(&row.pacing)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Changes the driver of a session (the default one follows `[whatsapp] driver`).
pub async fn set_driver(conn: &mut Conn, name: &str, driver: DriverKind) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "UPDATE sessions SET driver = $2 WHERE name = $1"
    )
    .bind(name)
    .bind(driver)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete(conn: &mut Conn, name: &str) -> sqlx::Result<bool> {
    let r = on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM sessions WHERE name = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// What the running gateway sees of a session, for the CLI.
pub async fn mirror(
    conn: &mut Conn,
    name: &str,
    state: &str,
    detail: &str,
    qr: Option<&str>,
    me: Option<&str>,
) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "UPDATE sessions SET state = $2, detail = $3, qr = $4, me = COALESCE($5, me) \
         WHERE name = $1",
    )
    .bind(name)
    .bind(state)
    .bind(detail)
    .bind(qr)
    .bind(me)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
