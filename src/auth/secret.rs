//! The JWT signing secret: from config or environment, else generated once: into the data
//! directory with owner-only permissions (SQLite), or into the database, so every node of a
//! cluster signs and checks tokens alike (PostgreSQL). There is no built-in default.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::RngCore;

pub const SECRET_FILE: &str = "jwt-secret";

pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_permissions(&path);
            let secret = text.trim();
            anyhow::ensure!(
                secret.len() >= 32,
                "{} holds a secret shorter than 32 bytes; delete it to generate a new one",
                path.display()
            );
            Ok(secret.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The secret with PostgreSQL: configured, else the one the first node generated and stored.
pub async fn load_or_create_shared(
    configured: Option<&str>,
    db: &crate::db::Db,
) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let candidate = generate();
    let secret = db
        .writer
        .exec(crate::db::Durability::Durable, move |c| {
            Box::pin(async move { crate::db::cluster::shared_secret(c, "jwt", &candidate).await })
        })
        .await
        .context("cannot read or store the shared JWT secret")?;
    Ok(secret.into_bytes())
}

fn generate() -> String {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn create(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let secret = generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new JWT secret (0600)");
    Ok(secret.into_bytes())
}

fn check_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the JWT secret file is readable by others; chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_with_0600_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(a.len() >= 32);
        let b = load_or_create(None, dir.path()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn configured_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = load_or_create(Some("x".repeat(40).as_str()), dir.path()).unwrap();
        assert_eq!(s, "x".repeat(40).into_bytes());
        assert!(!dir.path().join(SECRET_FILE).exists());
    }
}
