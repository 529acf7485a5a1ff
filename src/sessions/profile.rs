//! Login snapshots, so that a session that moves to another node needs no new scan: the parts
//! of its browser profile that keep the login (IndexedDB and Local Storage, not caches) are
//! kept in `session_profiles`, gzipped, after the number links, every
//! [`SNAPSHOT_EVERY`] while it runs and when its browser closes on a clean stop or handover;
//! the node that takes the session over restores them before its browser starts. Only with
//! PostgreSQL: with SQLite one node keeps every profile on its own disk.
//!
//! A snapshot is written only under the lease it was taken under, so a node that lost the
//! session can never overwrite the new owner's login with its stale one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Session, Sessions};
use crate::db::{Backend, Conn, Durability, Pool, on, on_pool};

/// The parts of a Chromium profile that hold WhatsApp Web's login.
const LOGIN_PARTS: [&str; 2] = ["Default/IndexedDB", "Default/Local Storage"];

/// How often a running session's login is snapshotted again.
pub(super) const SNAPSHOT_EVERY: Duration = Duration::from_secs(600);

/// The largest snapshot kept (gzipped); a bigger login is not moved, and the next node shows
/// a QR code.
const MAX_SNAPSHOT: usize = 64 << 20;

/// The login parts of `profile` as a gzipped tar.
fn pack(profile: &Path) -> anyhow::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for part in LOGIN_PARTS {
        let dir = profile.join(part);
        if dir.is_dir() {
            crate::backup::profiles::append_profile(&mut tar, &dir, Path::new(part))?;
        }
    }
    Ok(tar.into_inner()?.finish()?)
}

/// Replaces the login parts of `profile` with those in `data`; Chromium's locks (they name
/// the host that held the profile) go too.
fn unpack(profile: &Path, data: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(profile)?;
    for part in LOGIN_PARTS {
        let dir = profile.join(part);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    for lock in ["SingletonLock", "SingletonSocket", "SingletonCookie"] {
        let _ = std::fs::remove_file(profile.join(lock));
    }
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut raw)?;
    let mut archive = tar::Archive::new(raw.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        // Only the login parts, never a path out of the profile.
        if !LOGIN_PARTS.iter().any(|p| path.starts_with(p))
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            continue;
        }
        entry.unpack_in(profile)?;
    }
    Ok(())
}

impl Sessions {
    fn profile_of(&self, s: &Session) -> PathBuf {
        self.config.browser_profile(&s.name)
    }

    /// Keeps the session's login for the next node (PostgreSQL only; nothing without a
    /// profile or past the size limit). Call while holding its lease.
    pub(super) async fn keep_profile(&self, s: &Session) {
        let Some((epoch, _)) = s.lane.owned() else {
            return;
        };
        if self.db.backend() != Backend::Postgres
            || s.driver() != crate::config::DriverKind::Webdriver
        {
            return;
        }
        let profile = self.profile_of(s);
        if !profile.join(LOGIN_PARTS[0]).is_dir() {
            return;
        }
        let data = match tokio::task::spawn_blocking(move || pack(&profile)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::warn!(session = %s.name, error = %e, "cannot snapshot the session's login");
                return;
            }
            Err(_) => return,
        };
        if data.len() > MAX_SNAPSHOT {
            tracing::warn!(session = %s.name, bytes = data.len(), "the session's login is over {} MiB: not kept in the database, so a move to another node needs a new scan", MAX_SNAPSHOT >> 20);
            return;
        }
        let (name, node, now, size) = (
            s.name.clone(),
            self.node.id().to_string(),
            crate::time::now_ms(),
            data.len(),
        );
        let stored = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { store(c, &name, &node, epoch, now, &data).await })
            })
            .await;
        match stored {
            Ok(true) => {
                s.snapshot_at
                    .store(now, std::sync::atomic::Ordering::Release);
                tracing::info!(session = %s.name, bytes = size, "💾 Session {}: login kept for the next node", s.name)
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(session = %s.name, error = %e, "cannot store the session's login snapshot")
            }
        }
    }

    /// Restores the login snapshot another node left of the session, before its browser
    /// starts here.
    pub(super) async fn restore_profile(&self, s: &Session) {
        if s.driver() != crate::config::DriverKind::Webdriver {
            return;
        }
        let found = match snapshot(&self.db.read, &s.name).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(session = %s.name, error = %e, "cannot read the session's login snapshot; its browser starts with the profile on this node");
                return;
            }
        };
        let Some((from, data)) = found else {
            return;
        };
        let profile = self.profile_of(s);
        // What this node left is no newer than its own profile.
        if from == **self.node.id() && profile.join(LOGIN_PARTS[0]).is_dir() {
            return;
        }
        match tokio::task::spawn_blocking(move || unpack(&profile, &data)).await {
            Ok(Ok(())) => {
                tracing::info!(session = %s.name, from = %from, "💾 Session {}: login restored from node {from}'s snapshot (no new scan)", s.name)
            }
            Ok(Err(e)) => {
                tracing::warn!(session = %s.name, error = %e, "cannot restore the session's login snapshot; it may need a new scan")
            }
            Err(_) => {}
        }
    }
}

/// The node that took `session`'s snapshot, and the snapshot.
async fn snapshot(pool: &Pool, session: &str) -> sqlx::Result<Option<(String, Vec<u8>)>> {
    on_pool!(pool, |p| sqlx::query_as(
        "SELECT node, data FROM session_profiles WHERE session = $1"
    )
    .bind(session)
    .fetch_optional(p)
    .await)
}

/// Forgets `session`'s snapshot (logged out or deleted: the next start shows a QR code).
pub(super) async fn forget(conn: &mut Conn, session: &str) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM session_profiles WHERE session = $1"
    )
    .bind(session)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Stores a snapshot of `session`'s login, if `node` still holds it under `epoch`.
async fn store(
    conn: &mut Conn,
    session: &str,
    node: &str,
    epoch: i64,
    now: i64,
    data: &[u8],
) -> sqlx::Result<bool> {
    let n = on!(&mut *conn, |c| sqlx::query(
        "INSERT INTO session_profiles (session, taken_at, node, size, data) \
         SELECT $1, $4, $2, $5, $6 WHERE EXISTS (SELECT 1 FROM session_owners \
             WHERE session = $1 AND node = $2 AND epoch = $3) \
         ON CONFLICT (session) DO UPDATE SET taken_at = excluded.taken_at, node = excluded.node, \
             size = excluded.size, data = excluded.data",
    )
    .bind(session)
    .bind(node)
    .bind(epoch)
    .bind(now)
    .bind(data.len() as i64)
    .bind(data)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
