//! Storage, on SQLite (embedded) or PostgreSQL (see [`conn`]): one writer connection that
//! group-commits, plus a pool for the API's reads.
//!
//! Every write goes through [`Writer`]: it takes all operations waiting in its channel, runs
//! them in one transaction and commits once. Durable operations (an accepted job, a token)
//! commit with an fsync (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`), so one
//! fsync covers the whole batch; queue bookkeeping (claims, results) commits without one, which
//! survives a crashed process.

pub mod cluster;
mod conn;
pub mod inbound;
pub mod jobs;
pub mod media;
pub mod notify;
pub mod owners;
pub mod pacing;
mod postgres;
pub mod sessions;
pub mod settings;
pub mod users;
pub mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqliteConnection};

pub use conn::{Backend, Conn, Pool};
pub(crate) use conn::{on, on_pool};
pub use writer::{BoxFuture, Durability, Writer};

/// The SQLite schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// The PostgreSQL schema: the same tables in PostgreSQL's types.
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Store {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (its URL may hold a password).
    Postgres(SecretString),
}

impl Store {
    /// The configured store: PostgreSQL when `storage.database_url` is set, else the SQLite file.
    pub fn of(config: &crate::config::Config) -> Store {
        match &config.storage.database_url {
            Some(url) => Store::Postgres(url.clone()),
            None => Store::Sqlite(config.database_path()),
        }
    }

    /// For messages: the file, or the PostgreSQL server and database without the credentials.
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(path) => format!("database {}", path.display()),
            Store::Postgres(url) => format!("PostgreSQL database {}", postgres::describe(url)),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(String),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the database writer has stopped")]
    WriterGone,
    /// The database cannot be reached now (a lost connection, a server restarting): nothing
    /// was written, and trying again later may succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// True for errors that mean the database cannot be reached, rather than a bad statement:
/// I/O, a closed or exhausted pool, a broken protocol stream, PostgreSQL's connection
/// exceptions (SQLSTATE class 08) and its shutdown states (57P01-57P03).
pub fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl DbError {
    /// A failed BEGIN or COMMIT.
    pub(crate) fn commit(e: sqlx::Error) -> DbError {
        if unreachable(&e) {
            DbError::Unavailable(e.to_string())
        } else {
            DbError::Commit(e.to_string())
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        if unreachable(&e) {
            DbError::Unavailable(e.to_string())
        } else {
            DbError::Sqlx(e.to_string())
        }
    }
}

fn options(path: &Path) -> anyhow::Result<SqliteConnectOptions> {
    let url = format!("sqlite://{}", path.display());
    Ok(SqliteConnectOptions::from_str(&url)
        .with_context(|| format!("bad database path {}", path.display()))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        .pragma("journal_size_limit", "67108864")
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// The newest schema version this binary knows (the same for both backends).
pub fn latest_schema() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn newer_schema(version: i64) -> anyhow::Result<i64> {
    let known = latest_schema();
    if version > known {
        anyhow::bail!(
            "it was written by a newer wa-gateway (schema version {version}; this binary knows up to {known}). Run the newer wa-gateway, or restore a backup made with this version"
        );
    }
    Ok(version)
}

/// The database's schema version (0 for a new one); an error when it is newer than this
/// binary knows, so a newer database is refused before anything touches it.
pub async fn check_schema(conn: &mut SqliteConnection) -> anyhow::Result<i64> {
    let has_table: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if has_table == 0 {
        return Ok(0);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    newer_schema(version.unwrap_or(0))
}

/// Opens the store's writer connection and brings its schema up to date. A database written
/// by a newer wa-gateway is refused, never modified.
pub async fn open_writer_connection(store: &Store) -> anyhow::Result<Conn> {
    match store {
        Store::Sqlite(path) => Ok(Conn::Lite(open_sqlite_writer(path).await?)),
        Store::Postgres(url) => Ok(Conn::Pg(postgres::open_writer(url).await?)),
    }
}

/// Opens (creating it if needed) the database file and brings its schema up to date.
async fn open_sqlite_writer(path: &Path) -> anyhow::Result<SqliteConnection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut conn = options(path)?
        .create_if_missing(true)
        // Pruned jobs' pages go back to the file system (see queue::retention).
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        // The writer touches the hot end of every index: 8 MiB of page cache (readers keep 2).
        .pragma("cache_size", "-8192")
        .connect()
        .await
        .with_context(|| format!("cannot open database {}", path.display()))?;
    check_schema(&mut conn)
        .await
        .with_context(|| format!("refusing database {}", path.display()))?;
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut conn)
        .await?;
    if mode != 2 {
        tracing::info!("converting the database to incremental vacuum (once)");
        sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
            .execute(&mut conn)
            .await?;
        sqlx::query("VACUUM").execute(&mut conn).await?;
    }
    MIGRATOR.run_direct(&mut conn).await.with_context(|| {
        format!(
            "cannot migrate database {} (was it written by a newer wa-gateway?)",
            path.display()
        )
    })?;
    Ok(conn)
}

/// A pool for API reads (on SQLite read-only; WAL lets them run beside the writer).
pub async fn open_read_pool(store: &Store) -> anyhow::Result<Pool> {
    match store {
        Store::Sqlite(path) => Ok(Pool::Lite(
            SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(1)
                .connect_with(options(path)?.read_only(true))
                .await
                .with_context(|| format!("cannot open database {} for reading", path.display()))?,
        )),
        Store::Postgres(url) => Ok(Pool::Pg(
            PgPoolOptions::new()
                // Eight for reads, one held by the LISTEN connection (see notify.rs).
                .max_connections(9)
                .min_connections(1)
                .connect_with(postgres::options(url)?)
                .await
                .context("cannot connect to PostgreSQL for reading")?,
        )),
    }
}

/// SQLite's files beside a database in WAL mode.
#[derive(Debug, Clone, Copy)]
pub enum Sidecar {
    /// `<db>-wal`: commits not yet checkpointed into the database file.
    Wal,
    /// `<db>-shm`: the WAL's shared-memory index.
    Shm,
}

/// The path of a database's sidecar file.
pub fn sidecar(db: &Path, which: Sidecar) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(match which {
        Sidecar::Wal => "-wal",
        Sidecar::Shm => "-shm",
    });
    PathBuf::from(p)
}

/// The storage the app uses: the writer for changes, the pool for reads.
#[derive(Clone)]
pub struct Db {
    pub writer: Writer,
    pub read: Pool,
    /// The SQLite file; `None` on PostgreSQL.
    pub path: Option<PathBuf>,
}

impl Db {
    pub async fn open(store: &Store) -> anyhow::Result<(Db, tokio::task::JoinHandle<()>)> {
        let conn = open_writer_connection(store).await?;
        let reopen: Option<writer::Reopen> = match store {
            Store::Sqlite(_) => None,
            Store::Postgres(url) => {
                let url = url.clone();
                Some(Box::new(move || {
                    let url = url.clone();
                    Box::pin(async move { Ok(Conn::Pg(postgres::reconnect(&url).await?)) })
                }))
            }
        };
        let (writer, handle) = Writer::spawn_with(conn, reopen);
        let read = open_read_pool(store).await?;
        let path = match store {
            Store::Sqlite(path) => Some(path.clone()),
            Store::Postgres(_) => None,
        };
        Ok((Db { writer, read, path }, handle))
    }

    pub fn backend(&self) -> Backend {
        self.read.backend()
    }

    /// Sizes of the database and of its write-ahead log, in bytes (PostgreSQL: the database's
    /// size, and no log of the gateway's own).
    pub async fn sizes(&self) -> (u64, u64) {
        match (&self.path, &self.read) {
            (Some(path), _) => {
                let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                (size(path), size(&sidecar(path, Sidecar::Wal)))
            }
            (None, Pool::Pg(p)) => {
                let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(p)
                    .await
                    .unwrap_or(0);
                (bytes.max(0) as u64, 0)
            }
            (None, Pool::Lite(_)) => (0, 0),
        }
    }

    /// True when both the read pool and the writer answer.
    pub async fn ping(&self) -> bool {
        let read = self.read.ping();
        let write = self.writer.exec(Durability::Relaxed, |c| {
            Box::pin(async move { c.ping().await })
        });
        matches!(tokio::join!(read, write), (Ok(()), Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::{DbError, unreachable};

    #[test]
    fn a_lost_database_is_unavailable_and_a_bad_statement_is_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(unreachable(&io));
        assert!(unreachable(&sqlx::Error::PoolTimedOut));
        assert!(matches!(DbError::from(io), DbError::Unavailable(_)));
        assert!(!unreachable(&sqlx::Error::RowNotFound));
        assert!(matches!(
            DbError::commit(sqlx::Error::RowNotFound),
            DbError::Commit(_)
        ));
    }
}
