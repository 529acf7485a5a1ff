//! The single writer: a task that owns the write connection and commits operations in groups.
//!
//! On PostgreSQL the connection can be lost (a restart, a failover, a network cut). After a
//! failed batch the writer pings it; a dead one is replaced before the next batch, and while
//! no new one can be had, each operation fails at once as [`DbError::Unavailable`] (a 503 for
//! the API) instead of waiting: nothing is half-written, and the caller decides.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use super::{Conn, DbError};

/// How much an operation needs to be on disk before its caller hears back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Committed with an fsync (`synchronous=FULL`): survives a power cut.
    Durable,
    /// Committed without an fsync: survives a crashed process, may be lost in a power cut, and
    /// is made durable by the next durable commit.
    Relaxed,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Finish = Box<dyn FnOnce(Result<(), DbError>) + Send>;
/// Runs in the writer task after an op's result is committed.
type AfterCommit<T> = Box<dyn FnOnce(&T) + Send>;
/// What an op returns once it has run: whether its statements succeeded, and how to answer.
type Ran = (bool, Finish);
/// Runs the op on the connection, or (`None`: no connection) answers it unavailable.
type OpFn = Box<dyn for<'c> FnOnce(Option<&'c mut Conn>) -> BoxFuture<'c, Ran> + Send>;
/// Opens a new write connection after the old one was lost.
pub type Reopen = Box<dyn Fn() -> BoxFuture<'static, anyhow::Result<Conn>> + Send + Sync>;

struct Op {
    durability: Durability,
    /// Each statement the op runs is a whole change on its own (nothing in it must commit
    /// together), so alone in a batch it needs no BEGIN/COMMIT.
    autocommit: bool,
    /// The op must run outside any transaction (a WAL checkpoint, an incremental vacuum).
    standalone: bool,
    run: OpFn,
}

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
}

/// Most operations in one transaction.
const MAX_BATCH: usize = 512;

impl Writer {
    /// Starts the writer task. It ends once every `Writer` handle is dropped and the queue is empty.
    pub fn spawn(conn: Conn) -> (Writer, tokio::task::JoinHandle<()>) {
        Self::spawn_with(conn, None)
    }

    /// Like [`spawn`](Self::spawn); `reopen` replaces a connection found dead.
    pub fn spawn_with(conn: Conn, reopen: Option<Reopen>) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let handle = tokio::spawn(run(conn, reopen, rx));
        (Writer { tx }, handle)
    }

    /// Runs `f` inside the next group transaction and returns its result once that
    /// transaction has committed. A statement error fails only this operation.
    pub fn exec<T, F>(&self, durability: Durability, f: F) -> BoxFuture<'static, Result<T, DbError>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + 'static,
    {
        self.exec_with(durability, false, f)
    }

    /// Runs `f` on its own, outside any transaction, between group commits: for maintenance
    /// (a WAL checkpoint, an incremental vacuum) that SQLite refuses inside a transaction.
    pub fn exec_standalone<T, F>(&self, f: F) -> BoxFuture<'static, Result<T, DbError>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + 'static,
    {
        self.submit(Durability::Relaxed, true, true, f, None)
    }

    /// Like [`exec`](Self::exec), and `after_commit` runs in the writer task once the result is
    /// committed, before any later write runs: what it publishes is ordered before anything a
    /// later write (a claim of the same row, say) can cause.
    pub fn exec_then<T, F>(
        &self,
        durability: Durability,
        f: F,
        after_commit: impl FnOnce(&T) + Send + 'static,
    ) -> BoxFuture<'static, Result<T, DbError>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + 'static,
    {
        self.submit(durability, false, false, f, Some(Box::new(after_commit)))
    }

    /// Like [`exec`](Self::exec); `autocommit` says each statement the op runs is a whole
    /// change on its own (a claim; an outcome batch and the claim that follows it), so when it
    /// is alone in its batch it runs without BEGIN/COMMIT, each statement committing by itself,
    /// which saves two round trips to SQLite's thread on the hot path.
    pub fn exec_with<T, F>(
        &self,
        durability: Durability,
        autocommit: bool,
        f: F,
    ) -> BoxFuture<'static, Result<T, DbError>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + 'static,
    {
        self.submit(durability, autocommit, false, f, None)
    }

    fn submit<T, F>(
        &self,
        durability: Durability,
        autocommit: bool,
        standalone: bool,
        f: F,
        after_commit: Option<AfterCommit<T>>,
    ) -> BoxFuture<'static, Result<T, DbError>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: OpFn = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Some(conn) => f(conn).await.map_err(DbError::from),
                    None => Err(DbError::Unavailable(
                        "no connection to the database; retrying".into(),
                    )),
                };
                let ok = result.is_ok();
                let finish = Box::new(move |commit: Result<(), DbError>| {
                    let outcome = commit.and(result);
                    if let (Ok(value), Some(after)) = (&outcome, after_commit) {
                        after(value);
                    }
                    let _ = tx.send(outcome);
                }) as Finish;
                (ok, finish)
            })
        });
        let sender = self.tx.clone();
        // Boxed: the closure's higher-ranked type stays out of callers' futures.
        Box::pin(async move {
            sender
                .send(Op {
                    durability,
                    autocommit,
                    standalone,
                    run,
                })
                .await
                .map_err(|_| DbError::WriterGone)?;
            rx.await.map_err(|_| DbError::WriterGone)?
        })
    }
}

/// The write connection, and how to get a new one.
struct Link {
    conn: Conn,
    reopen: Option<Reopen>,
    /// The connection failed a ping: replace it before using it again.
    dead: bool,
    /// `synchronous` / `synchronous_commit` as last set (a new connection opens durable).
    durable: bool,
}

impl Link {
    /// True once the connection is alive (reopened if it was dead); false while it cannot be.
    async fn ready(&mut self) -> bool {
        if self.dead {
            let Some(reopen) = self.reopen.as_ref() else {
                return false;
            };
            match tokio::time::timeout(LINK_TIMEOUT, reopen()).await {
                Ok(Ok(conn)) => {
                    tracing::info!("🗄️ The database connection is back");
                    self.conn = conn;
                    self.dead = false;
                    self.durable = true;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %format!("{e:#}"), "cannot reconnect to the database yet");
                    return false;
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// After a failure: is the connection still there? A lost one is replaced later.
    async fn check(&mut self) {
        if self.dead || self.reopen.is_none() {
            return;
        }
        let alive = matches!(
            tokio::time::timeout(LINK_TIMEOUT, self.conn.ping()).await,
            Ok(Ok(()))
        );
        if !alive {
            tracing::error!(
                "🗄️ Lost the database connection; sends are refused (503) until it is back"
            );
            self.dead = true;
        }
    }
}

/// How long a ping or a reconnection may take.
const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn run(conn: Conn, reopen: Option<Reopen>, mut rx: mpsc::Receiver<Op>) {
    let mut link = Link {
        conn,
        reopen,
        dead: false,
        durable: true,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut standalone = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Maintenance runs after this batch's commit, each op on its own.
        let mut i = 0;
        while i < batch.len() {
            if batch[i].standalone {
                standalone.push(batch.remove(i));
            } else {
                i += 1;
            }
        }
        if !link.ready().await {
            // No connection: every op is answered unavailable, none is run.
            for op in batch.drain(..).chain(standalone.drain(..)) {
                let (_, finish) = (op.run)(None).await;
                finish(Ok(()));
            }
            continue;
        }
        let mut failed = false;
        if !batch.is_empty() {
            let durable = batch.iter().any(|op| op.durability == Durability::Durable);
            if durable != link.durable {
                let sql = link.conn.durability_sql(durable);
                if let Err(e) = link.conn.execute(sql).await {
                    tracing::error!(error = %e, "cannot set synchronous mode");
                    failed = true;
                } else {
                    link.durable = durable;
                }
            }
        }
        let conn = &mut link.conn;
        if batch.len() == 1 && batch[0].autocommit {
            // Each statement is its own transaction.
            let op = batch.pop().expect("one op");
            let (ok, finish) = (op.run)(Some(conn)).await;
            failed |= !ok;
            finish(Ok(()));
        } else if !batch.is_empty() {
            let (commit, finishes) = commit_batch(conn, &mut batch).await;
            failed |= commit.is_err();
            for finish in finishes {
                finish(commit.clone());
            }
        }
        for op in standalone.drain(..) {
            let (ok, finish) = (op.run)(Some(&mut link.conn)).await;
            failed |= !ok;
            finish(Ok(()));
        }
        if failed {
            link.check().await;
        }
    }
    let mut conn = link.conn;
    if !conn.is_pg()
        && let Err(e) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await
    {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
    let _ = conn.close().await;
}

async fn commit_batch(conn: &mut Conn, batch: &mut Vec<Op>) -> (Result<(), DbError>, Vec<Finish>) {
    let mut finishes = Vec::with_capacity(batch.len());
    if let Err(e) = conn.execute(conn.begin_sql()).await {
        // Nothing runs; each caller hears why.
        tracing::error!(error = %e, operations = batch.len(), "cannot begin a transaction");
        for op in batch.drain(..) {
            finishes.push((op.run)(None).await.1);
        }
        return (Err(DbError::commit(e)), finishes);
    }
    // On PostgreSQL a failed statement aborts the whole transaction, so each op runs inside
    // a savepoint and a failed one is rolled back alone, as SQLite does by itself.
    let pg = conn.is_pg();
    for op in batch.drain(..) {
        if pg && let Err(e) = conn.execute("SAVEPOINT op").await {
            tracing::error!(error = %e, "cannot set a savepoint");
        }
        let (ok, finish) = (op.run)(Some(&mut *conn)).await;
        if pg {
            let end = if ok {
                "RELEASE SAVEPOINT op"
            } else {
                "ROLLBACK TO SAVEPOINT op"
            };
            if let Err(e) = conn.execute(end).await {
                tracing::error!(error = %e, "cannot end a savepoint");
            }
        }
        finishes.push(finish);
    }
    match conn.execute("COMMIT").await {
        Ok(_) => (Ok(()), finishes),
        Err(e) => {
            tracing::error!(error = %e, operations = finishes.len(), "group commit failed; rolling back");
            let _ = conn.execute("ROLLBACK").await;
            (Err(DbError::commit(e)), finishes)
        }
    }
}
