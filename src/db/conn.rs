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

impl Backend {
    /// As the API shows it: `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
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

/// `sql` as `backend` takes it: SQLite's planner hints (`INDEXED BY name`, which pin the
/// plans the tests check) are dropped for PostgreSQL, which picks its indexes itself.
pub fn dialect(sql: &str, backend: Backend) -> std::borrow::Cow<'_, str> {
    const HINT: &str = " INDEXED BY ";
    if backend == Backend::Sqlite || !sql.contains(HINT) {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(HINT) {
        out.push_str(&rest[..at]);
        let after = &rest[at + HINT.len()..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out.into()
}

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

    /// `sql` in this backend's dialect (see [`dialect`]).
    pub fn sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        dialect(sql, self.backend())
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

    /// `sql` in this backend's dialect (see [`dialect`]).
    pub fn sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        dialect(sql, self.backend())
    }

    pub async fn ping(&self) -> sqlx::Result<()> {
        on_pool!(self, |p| p.acquire().await?.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, dialect};

    #[test]
    fn planner_hints_are_sqlite_only() {
        let sql = "SELECT a FROM jobs INDEXED BY jobs_claim WHERE x IN \
                   (SELECT seq FROM media m INDEXED BY media_sha256) LIMIT 1";
        assert_eq!(dialect(sql, Backend::Sqlite), sql);
        assert_eq!(
            dialect(sql, Backend::Postgres),
            "SELECT a FROM jobs WHERE x IN (SELECT seq FROM media m) LIMIT 1"
        );
        assert_eq!(dialect("SELECT 1", Backend::Postgres), "SELECT 1");
    }
}
