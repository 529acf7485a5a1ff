//! Opening PostgreSQL: connection settings that keep a frozen node from stalling the others,
//! and the schema brought up to date (sqlx's migrator takes an advisory lock, so nodes that
//! start together migrate once).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

/// Connection options from the URL, with the gateway's session settings: a statement waits at
/// most 5 s for a row lock, and a transaction left idle (a node frozen mid-write) is ended
/// after 30 s so its locks go back to the others.
pub(super) fn options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url.expose_secret())
        .map_err(|e| {
            anyhow::anyhow!(
                "storage.database_url is not a PostgreSQL URL: {}",
                redact(&e.to_string())
            )
        })?
        .application_name("wa-gateway")
        .options([
            ("lock_timeout", "5s"),
            ("idle_in_transaction_session_timeout", "30s"),
        ])
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
}

/// Keeps a password out of an error text that may quote the URL.
fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(start), Some(at)) if at > start => format!("{}://…{}", &text[..start], &text[at..]),
        _ => text.to_string(),
    }
}

/// `host:port/database`, never the user or password.
pub(super) fn describe(url: &SecretString) -> String {
    match options(url) {
        Ok(o) => format!(
            "{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        ),
        Err(_) => "(unreadable URL)".into(),
    }
}

/// The schema version of a PostgreSQL database (0 for an empty one).
async fn schema_version(conn: &mut PgConnection) -> anyhow::Result<i64> {
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !has_table {
        return Ok(0);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    Ok(version.unwrap_or(0))
}

/// A new connection with the gateway's settings, for a writer whose connection was lost.
pub(super) async fn reconnect(url: &SecretString) -> anyhow::Result<PgConnection> {
    Ok(options(url)?.connect().await?)
}

/// Connects the writer and migrates; a database of a newer wa-gateway is refused untouched.
pub(super) async fn open_writer(url: &SecretString) -> anyhow::Result<PgConnection> {
    let mut conn = options(url)?
        .connect()
        .await
        .context("cannot connect to PostgreSQL (storage.database_url)")?;
    let version = schema_version(&mut conn).await?;
    super::newer_schema(version).context("refusing the PostgreSQL database")?;
    super::PG_MIGRATOR
        .run_direct(&mut conn)
        .await
        .context("cannot migrate the PostgreSQL database")?;
    conn.ping().await?;
    Ok(conn)
}
