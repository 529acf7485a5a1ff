//! What the `user` and `migrate` commands do, shared with start-up (the env-created admin).

use anyhow::Context;

use crate::auth::password;
use crate::config::Config;
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
    let conn = db::open_writer_connection(&config.database_path()).await?;
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
