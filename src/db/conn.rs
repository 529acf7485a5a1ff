//! The seam between the gateway and its two databases: SQLite (embedded, the default) and
//! PostgreSQL (several nodes on one database). Not sqlx's `Any` driver: its types are too
//! narrow (no timestamps) and it cannot `SKIP LOCKED` or `LISTEN`. Instead every query is
//! written once against sqlx's generic API and [`on!`](crate::db::on) type-checks it once per
//! backend; where the two dialects differ, the code asks [`Conn::backend`] and picks its SQL.

use sqlx::{Connection, PgConnection, PgPool, SqliteConnection, SqlitePool};

/// Which database a connection or pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection of either backend (the writer's, or one opened by a command).
pub enum Conn {
    Lite(SqliteConnection),
    Pg(PgConnection),
}

/// A pool of either backend, for reads.
#[derive(Debug, Clone)]
pub enum Pool {
    Lite(SqlitePool),
    Pg(PgPool),
}

/// Runs `$body` with `$c` bound to the backend's own connection (`&mut SqliteConnection` or
/// `&mut PgConnection`): the same sqlx code, compiled for each backend.
macro_rules! on {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Lite($c) => $body,
            $crate::db::Conn::Pg($c) => $body,
        }
    };
}

/// Like [`on!`] for a [`Pool`]: `$p` is `&SqlitePool` or `&PgPool`.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Lite($p) => $body,
            $crate::db::Pool::Pg($p) => $body,
        }
    };
}

pub(crate) use {on, on_pool};

impl Conn {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Lite(_) => Backend::Sqlite,
            Conn::Pg(_) => Backend::Postgres,
        }
    }

    pub fn is_pg(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    /// Runs one statement that takes no parameters and returns nothing (BEGIN, COMMIT, a
    /// setting).
    pub async fn execute(&mut self, sql: &str) -> sqlx::Result<()> {
        on!(self, |c| sqlx::query(sql).execute(&mut *c).await.map(drop))
    }

    /// Starts the writer's group transaction (SQLite: take the write lock at once).
    pub fn begin_sql(&self) -> &'static str {
        match self {
            Conn::Lite(_) => "BEGIN IMMEDIATE",
            Conn::Pg(_) => "BEGIN",
        }
    }

    /// Sets whether the commits that follow wait for their fsync: SQLite `synchronous`
    /// FULL/NORMAL, PostgreSQL `synchronous_commit` on/off. Either way a relaxed commit
    /// survives a crashed gateway and is made durable by the next durable one.
    pub fn durability_sql(&self, durable: bool) -> &'static str {
        match (self, durable) {
            (Conn::Lite(_), true) => "PRAGMA synchronous = FULL",
            (Conn::Lite(_), false) => "PRAGMA synchronous = NORMAL",
            (Conn::Pg(_), true) => "SET synchronous_commit = on",
            (Conn::Pg(_), false) => "SET synchronous_commit = off",
        }
    }

    pub async fn ping(&mut self) -> sqlx::Result<()> {
        on!(self, |c| c.ping().await)
    }

    pub async fn close(self) -> sqlx::Result<()> {
        on!(self, |c| c.close().await)
    }
}

impl Pool {
    pub fn backend(&self) -> Backend {
        match self {
            Pool::Lite(_) => Backend::Sqlite,
            Pool::Pg(_) => Backend::Postgres,
        }
    }

    pub fn is_pg(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    pub async fn ping(&self) -> sqlx::Result<()> {
        on_pool!(self, |p| p.acquire().await?.ping().await)
    }
}
