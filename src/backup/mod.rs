//! Online backup and safe restore of a data directory.
//!
//! A backup is one tar file: `manifest.json`, a consistent copy of the database taken with
//! `VACUUM INTO` while the gateway keeps serving, the generated JWT secret (so tokens stay
//! valid), and every session's browser profile when asked (so a restored gateway needs no new
//! QR; `profiles`). `lock` keeps one gateway per data directory.
//! A restore refuses a data directory a gateway is using (it holds `gateway.lock`), checks the
//! backup's integrity and schema first, and swaps files in with renames, keeping what it
//! replaced, so it never leaves a half-restored database behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sqlx::{ConnectOptions, Connection};

use crate::config::Config;
use crate::db;

mod lock;
pub(crate) mod profiles;

pub use lock::DataDirLock;
use profiles::{PROFILE_DIR, append_profile, dir_size, profile_in_archive, session_profiles};

const SECRET_FILE: &str = "jwt-secret";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    format: u32,
    gateway_version: String,
    schema_version: i64,
    created_at: String,
    database_bytes: u64,
    jwt_secret: bool,
    /// The default session's profile is in `browser-profile/`.
    browser_profile: bool,
    /// Every session whose profile is in the backup: `default` in `browser-profile/`, the
    /// others in `sessions/<name>/browser-profile/`. Absent in backups from before sessions.
    #[serde(default)]
    profiles: Vec<String>,
}

/// What a backup wrote.
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub database_bytes: u64,
    pub jobs: i64,
    pub users: i64,
    pub jwt_secret: bool,
    /// Bytes of the browser profiles, when included.
    pub browser_profile: Option<u64>,
    /// The sessions whose profiles are included.
    pub profiles: Vec<String>,
}

async fn open_file_db(path: &Path, read_only: bool) -> anyhow::Result<sqlx::SqliteConnection> {
    let url = format!("sqlite://{}", path.display());
    let opts: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
    Ok(opts
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await?)
}

/// How many jobs and users a database holds, for the reports.
async fn jobs_and_users(conn: &mut sqlx::SqliteConnection) -> anyhow::Result<(i64, i64)> {
    Ok(
        sqlx::query_as("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM users)")
            .fetch_one(conn)
            .await?,
    )
}

/// Backups are SQLite files: on PostgreSQL the database's own tools do the job, and a backup
/// of only part of the data would mislead.
fn on_sqlite(config: &Config, command: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.storage.database_url.is_none(),
        "`wa-gateway {command}` works on the SQLite database; this gateway keeps its data in \
         PostgreSQL (storage.database_url), so use PostgreSQL's tools: pg_dump / pg_restore, or \
         your provider's snapshots"
    );
    Ok(())
}

/// Writes a backup of the configured data directory to `to`, while a gateway may be running.
pub async fn backup(
    config: &Config,
    to: &Path,
    with_browser_profile: bool,
) -> anyhow::Result<BackupReport> {
    on_sqlite(config, "backup")?;
    let db_path = config.database_path();
    anyhow::ensure!(
        db_path.is_file(),
        "no database at {} (nothing to back up)",
        db_path.display()
    );
    let work = tempfile::Builder::new()
        .prefix(".wa-gateway-backup-")
        .tempdir_in(
            to.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .context("cannot create a work folder next to the backup file")?;
    let snapshot = work.path().join("gateway.db");
    let (schema_version, jobs, users) = {
        let mut conn = open_file_db(&db_path, true).await?;
        // A consistent copy of one read transaction, while writers go on (WAL).
        sqlx::query("VACUUM INTO $1")
            .bind(snapshot.to_string_lossy().to_string())
            .execute(&mut conn)
            .await
            .context("VACUUM INTO failed")?;
        conn.close().await?;
        let mut snap = open_file_db(&snapshot, true).await?;
        let version = db::check_schema(&mut snap).await?;
        let (jobs, users) = jobs_and_users(&mut snap).await?;
        snap.close().await?;
        (version, jobs, users)
    };
    let database_bytes = std::fs::metadata(&snapshot)?.len();
    let data_dir = config.data_dir();
    let secret = data_dir.join(SECRET_FILE);
    let has_secret = secret.is_file();
    let profiles = if with_browser_profile {
        session_profiles(config)
    } else {
        Vec::new()
    };
    if with_browser_profile && profiles.is_empty() {
        bail!(
            "--with-browser-profile: no session has a browser profile (looked at {} and {})",
            config.browser_profile(crate::sessions::DEFAULT).display(),
            config.data_dir().join("sessions").display()
        );
    }
    let with_profile = !profiles.is_empty();
    let manifest = Manifest {
        format: FORMAT,
        gateway_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version,
        created_at: crate::time::rfc3339(crate::time::now_ms()),
        database_bytes,
        jwt_secret: has_secret,
        browser_profile: profiles.iter().any(|(n, _)| n == crate::sessions::DEFAULT),
        profiles: profiles.iter().map(|(n, _)| n.clone()).collect(),
    };
    let partial = work.path().join("backup.tar");
    {
        let mut tar = tar::Builder::new(File::create(&partial)?);
        tar.follow_symlinks(false);
        let json = serde_json::to_vec_pretty(&manifest)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, "manifest.json", json.as_slice())?;
        tar.append_path_with_name(&snapshot, "gateway.db")?;
        if has_secret {
            tar.append_path_with_name(&secret, SECRET_FILE)?;
        }
        for (name, dir) in &profiles {
            append_profile(&mut tar, dir, &profile_in_archive(name))?;
        }
        tar.into_inner()?.sync_all()?;
    }
    std::fs::rename(&partial, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(BackupReport {
        path: to.to_path_buf(),
        bytes: std::fs::metadata(to)?.len(),
        database_bytes,
        jobs,
        users,
        jwt_secret: has_secret,
        browser_profile: with_profile.then(|| profiles.iter().map(|(_, d)| dir_size(d)).sum()),
        profiles: profiles.into_iter().map(|(n, _)| n).collect(),
    })
}

/// What a restore did.
pub struct RestoreReport {
    pub schema_version: i64,
    pub created_at: String,
    pub jobs: i64,
    pub users: i64,
    pub jwt_secret: bool,
    /// The sessions whose browser profiles were restored.
    pub profiles: Vec<String>,
    /// Where the files it replaced were moved.
    pub previous: Option<PathBuf>,
}

/// Restores a backup into the configured data directory. Refuses while a gateway uses it.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<RestoreReport> {
    on_sqlite(config, "restore")?;
    let data_dir = config.data_dir();
    let _lock = DataDirLock::acquire(&data_dir)?;
    let work = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(&data_dir)?;
    let file = File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    tar::Archive::new(file)
        .unpack(work.path())
        .with_context(|| {
            format!(
                "{} is not a wa-gateway backup (bad archive)",
                from.display()
            )
        })?;
    let manifest: Manifest = std::fs::read(work.path().join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .with_context(|| {
            format!(
                "{} is not a wa-gateway backup (no manifest)",
                from.display()
            )
        })?;
    anyhow::ensure!(
        manifest.format == FORMAT,
        "{} has backup format {}; this wa-gateway reads format {FORMAT}",
        from.display(),
        manifest.format
    );
    let new_db = work.path().join("gateway.db");
    let (jobs, users) = {
        let mut conn = open_file_db(&new_db, true)
            .await
            .with_context(|| format!("{}: the database in it does not open", from.display()))?;
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("{}: the database in it is corrupt", from.display()))?;
        anyhow::ensure!(
            check == "ok",
            "{}: the database in it is corrupt ({check})",
            from.display()
        );
        let version = db::check_schema(&mut conn)
            .await
            .with_context(|| format!("{}: refusing its database", from.display()))?;
        anyhow::ensure!(
            version == manifest.schema_version,
            "{}: its manifest says schema {}, its database has {version}",
            from.display(),
            manifest.schema_version
        );
        let (jobs, users) = jobs_and_users(&mut conn).await?;
        conn.close().await?;
        (jobs, users)
    };

    // Everything checked: move the current files aside, then the restored ones in.
    let db_path = config.database_path();
    let stamp = chrono_stamp();
    let previous = data_dir.join(format!("before-restore-{stamp}"));
    let mut moved_any = false;
    let mut set_aside = |path: &Path| -> anyhow::Result<()> {
        if path.exists() {
            std::fs::create_dir_all(&previous)?;
            let name = path.file_name().context("a file name")?;
            std::fs::rename(path, previous.join(name))
                .with_context(|| format!("cannot move {} aside", path.display()))?;
            moved_any = true;
        }
        Ok(())
    };
    // The old WAL and shared memory must not meet the new database.
    set_aside(&db::sidecar(&db_path, db::Sidecar::Wal))?;
    set_aside(&db::sidecar(&db_path, db::Sidecar::Shm))?;
    set_aside(&db_path)?;
    let secret_in = work.path().join(SECRET_FILE);
    if manifest.jwt_secret && secret_in.is_file() {
        set_aside(&data_dir.join(SECRET_FILE))?;
    }
    // Each session's profile in the backup, and where it goes.
    let mut names = manifest.profiles.clone();
    if names.is_empty() && manifest.browser_profile {
        names.push(crate::sessions::DEFAULT.to_string());
    }
    let profiles: Vec<(String, PathBuf, PathBuf)> = names
        .into_iter()
        .filter(|n| crate::config::valid_session_name(n))
        .map(|n| {
            let from = work.path().join(profile_in_archive(&n));
            let to = config.browser_profile(&n);
            (n, from, to)
        })
        .filter(|(_, from, _)| from.is_dir())
        .collect();
    for (name, _, to) in &profiles {
        if to.exists() {
            std::fs::create_dir_all(&previous)?;
            let aside = previous.join(format!("{name}-{PROFILE_DIR}"));
            std::fs::rename(to, &aside)
                .with_context(|| format!("cannot move {} aside", to.display()))?;
            moved_any = true;
        }
    }
    if let Some(dir) = db_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::rename(&new_db, &db_path)
        .with_context(|| format!("cannot move the restored database to {}", db_path.display()))?;
    if manifest.jwt_secret && secret_in.is_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let secret = data_dir.join(SECRET_FILE);
        std::fs::rename(&secret_in, &secret)?;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    }
    for (_, from, to) in &profiles {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move the restored profile to {}", to.display()))?;
    }
    Ok(RestoreReport {
        schema_version: manifest.schema_version,
        created_at: manifest.created_at,
        jobs,
        users,
        jwt_secret: manifest.jwt_secret,
        profiles: profiles.into_iter().map(|(n, _, _)| n).collect(),
        previous: moved_any.then_some(previous),
    })
}

fn chrono_stamp() -> String {
    crate::time::rfc3339(crate::time::now_ms())
        .replace([':', '.'], "-")
        .trim_end_matches('Z')
        .to_string()
}

/// Sizes in words: `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
