//! What the `user`, `session` and `migrate` commands do, shared with start-up (the
//! env-created admin).

use anyhow::Context;

use crate::auth::password;
use crate::config::{Config, DriverKind};
use crate::db::sessions::{self as session_rows, SessionRow};
use crate::db::{self, Durability, Writer, users};

fn normalise_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim().to_string();
    anyhow::ensure!(
        email.len() <= 254
            && email.contains('@')
            && !email.starts_with('@')
            && !email.ends_with('@'),
        "{email:?} is not an email address"
    );
    Ok(email)
}

/// Creates a user through the app's writer; fails when the email is taken.
pub async fn create_user(writer: &Writer, email: &str, password: String) -> anyhow::Result<i64> {
    let email = normalise_email(email)?;
    password::check_strength(&password).map_err(anyhow::Error::msg)?;
    let hash = password::hash(password).await?;
    let e = email.clone();
    let id = writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move { users::insert(c, &e, &hash, crate::time::now_ms()).await })
        })
        .await?;
    id.with_context(|| format!("a user {email} exists already"))
}

/// Opens the configured database with its own writer, for the CLI commands.
pub async fn open(config: &Config) -> anyhow::Result<(Writer, tokio::task::JoinHandle<()>)> {
    let conn = db::open_writer_connection(&db::Store::of(config)).await?;
    Ok(Writer::spawn(conn))
}

pub async fn add_user(config: &Config, email: &str, password: String) -> anyhow::Result<()> {
    let (writer, task) = open(config).await?;
    create_user(&writer, email, password).await?;
    drop(writer);
    let _ = task.await;
    Ok(())
}

pub async fn list_users(config: &Config) -> anyhow::Result<Vec<(String, String)>> {
    let (writer, task) = open(config).await?;
    let list = writer
        .exec(Durability::Relaxed, |c| {
            Box::pin(async move { users::list(c).await })
        })
        .await?;
    drop(writer);
    let _ = task.await;
    Ok(list
        .into_iter()
        .map(|u| (u.email, crate::time::rfc3339(u.created_at)))
        .collect())
}

pub async fn remove_user(config: &Config, email: &str) -> anyhow::Result<()> {
    let (writer, task) = open(config).await?;
    let e = email.trim().to_string();
    let removed = writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move { users::delete(c, &e).await })
        })
        .await?;
    drop(writer);
    let _ = task.await;
    anyhow::ensure!(removed, "no user {email}");
    Ok(())
}

/// Sets a new password and revokes the user's refresh tokens.
pub async fn set_password(config: &Config, email: &str, password: String) -> anyhow::Result<()> {
    password::check_strength(&password).map_err(anyhow::Error::msg)?;
    let hash = password::hash(password).await?;
    let (writer, task) = open(config).await?;
    let e = email.trim().to_string();
    let changed = writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move { users::set_password(c, &e, &hash, crate::time::now_ms()).await })
        })
        .await?;
    drop(writer);
    let _ = task.await;
    anyhow::ensure!(changed, "no user {email}");
    Ok(())
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let (writer, task) = open(config).await?;
    drop(writer);
    let _ = task.await;
    Ok(())
}

/// Every session as the database has it (with the state the running gateway last saw).
pub async fn list_sessions(config: &Config) -> anyhow::Result<Vec<SessionRow>> {
    let (writer, task) = open(config).await?;
    drop(writer);
    let _ = task.await;
    let pool = db::open_read_pool(&db::Store::of(config)).await?;
    Ok(session_rows::list(&pool).await?)
}

/// The session's QR code while its gateway waits for a scan, or why there is none.
pub async fn session_qr(config: &Config, name: &str) -> anyhow::Result<Result<String, String>> {
    let row = list_sessions(config)
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .with_context(|| format!("no session is named {name:?}"))?;
    Ok(row.qr.ok_or_else(|| {
        format!(
            "no QR code is waiting for a scan: session {name} is {}",
            row.state.as_deref().unwrap_or("stopped")
        )
    }))
}

/// Session changes while the gateway runs go through its API: it holds the drivers.
fn gateway_stopped(config: &Config) -> anyhow::Result<crate::backup::DataDirLock> {
    crate::backup::DataDirLock::acquire(&config.data_dir()).map_err(|e| {
        anyhow::anyhow!("{e:#}; while it runs, use POST or DELETE /api/sessions instead")
    })
}

/// Adds a session; the gateway starts it on its next start unless `started` is false.
pub async fn add_session(
    config: &Config,
    name: &str,
    driver: DriverKind,
    started: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        crate::config::valid_session_name(name),
        "the name {name:?} must match ^[a-z0-9][a-z0-9_-]{{0,31}}$"
    );
    let _lock = gateway_stopped(config)?;
    let (writer, task) = open(config).await?;
    let row = SessionRow::new(name, driver, started, crate::time::now_ms());
    let added = writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move { session_rows::insert(c, &row).await })
        })
        .await?;
    drop(writer);
    let _ = task.await;
    anyhow::ensure!(added, "a session named {name:?} exists");
    Ok(())
}

/// Removes a session as `DELETE /api/sessions/{name}` does: its unfinished jobs fail
/// (`session_deleted`), its row and its profile go. Returns how many jobs failed.
pub async fn remove_session(config: &Config, name: &str) -> anyhow::Result<usize> {
    let _lock = gateway_stopped(config)?;
    let (writer, task) = open(config).await?;
    let n = name.to_string();
    let (removed, failed) = writer
        .exec(Durability::Durable, move |c| {
            Box::pin(async move {
                let failed =
                    crate::db::jobs::fail_session(&mut *c, &n, crate::time::now_ms()).await?;
                let removed = session_rows::delete(c, &n).await?;
                Ok((removed, failed.len()))
            })
        })
        .await?;
    drop(writer);
    let _ = task.await;
    anyhow::ensure!(removed, "no session is named {name:?}");
    crate::sessions::driver::remove_session_dir(config, name)?;
    Ok(failed)
}
