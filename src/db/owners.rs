//! The `session_owners` table: which node runs each session's driver, under a lease with an
//! epoch. Taking a session (free, released or expired) adds one to its epoch; renewing needs
//! the same node and epoch and an unexpired row, so a node that froze past its lease can never
//! renew its way back: it finds the session gone and closes that browser. Every statement is a
//! short autocommit write, as in [`super::cluster`].

use crate::db::{Conn, Pool, on, on_pool};

/// A row of `session_owners`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OwnerRow {
    pub session: String,
    /// None: released by a clean stop.
    pub node: Option<String>,
    pub epoch: i64,
    pub expires_at: i64,
}

impl OwnerRow {
    /// The node that runs the session at `now`, if its lease holds.
    pub fn owner_at(&self, now: i64) -> Option<&str> {
        self.node.as_deref().filter(|_| self.expires_at > now)
    }
}

/// Takes `session` for `node` until `expires_at` if nobody holds it at `now` (or `node` held it
/// in an earlier run): its new epoch, or None when another node holds it.
pub async fn take(
    conn: &mut Conn,
    session: &str,
    node: &str,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<Option<i64>> {
    on!(&mut *conn, |c| sqlx::query_scalar(
        "INSERT INTO session_owners (session, node, epoch, expires_at) VALUES ($1, $2, 1, $4) \
         ON CONFLICT (session) DO UPDATE SET node = excluded.node, \
         epoch = session_owners.epoch + 1, expires_at = excluded.expires_at \
         WHERE session_owners.node IS NULL OR session_owners.expires_at <= $3 \
            OR session_owners.node = excluded.node \
         RETURNING epoch",
    )
    .bind(session)
    .bind(node)
    .bind(now)
    .bind(expires_at)
    .fetch_optional(&mut *c)
    .await)
}

/// Renews `node`'s lease of `session` under `epoch` until `expires_at`; false when it lapsed
/// or another node took the session since.
pub async fn renew(
    conn: &mut Conn,
    session: &str,
    node: &str,
    epoch: i64,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<bool> {
    let n = on!(&mut *conn, |c| sqlx::query(
        "UPDATE session_owners SET expires_at = $5 \
         WHERE session = $1 AND node = $2 AND epoch = $3 AND expires_at > $4",
    )
    .bind(session)
    .bind(node)
    .bind(epoch)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Gives `session` up (a clean stop, a stopped session, a share handed to another node): the
/// next node takes it at once. Nothing happens when `epoch` is no longer `node`'s.
pub async fn release(conn: &mut Conn, session: &str, node: &str, epoch: i64) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "UPDATE session_owners SET node = NULL, expires_at = 0 \
         WHERE session = $1 AND node = $2 AND epoch = $3",
    )
    .bind(session)
    .bind(node)
    .bind(epoch)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Forgets a deleted session's owner.
pub async fn forget(conn: &mut Conn, session: &str) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM session_owners WHERE session = $1"
    )
    .bind(session)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Every session's owner row.
pub async fn list(pool: &Pool) -> sqlx::Result<Vec<OwnerRow>> {
    on_pool!(pool, |p| sqlx::query_as(
        "SELECT session, node, epoch, expires_at FROM session_owners ORDER BY session"
    )
    .fetch_all(p)
    .await)
}

/// The nodes alive at `now`, by id.
pub async fn alive_nodes(pool: &Pool, now: i64) -> sqlx::Result<Vec<String>> {
    on_pool!(pool, |p| sqlx::query_scalar(
        "SELECT id FROM nodes WHERE expires_at > $1 ORDER BY id"
    )
    .bind(now)
    .fetch_all(p)
    .await)
}

/// A command a node left for the node that runs `session`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommandRow {
    pub id: i64,
    pub session: String,
    pub command: String,
    pub arg: Option<String>,
}

/// Leaves `command` for the node that runs `session`; its id.
pub async fn post_command(
    conn: &mut Conn,
    session: &str,
    command: &str,
    arg: Option<&str>,
    now: i64,
) -> sqlx::Result<i64> {
    on!(&mut *conn, |c| sqlx::query_scalar(
        "INSERT INTO session_commands (session, command, arg, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(session)
    .bind(command)
    .bind(arg)
    .bind(now)
    .fetch_one(&mut *c)
    .await)
}

/// Commands not answered yet, oldest first.
pub async fn open_commands(pool: &Pool) -> sqlx::Result<Vec<CommandRow>> {
    on_pool!(pool, |p| sqlx::query_as(
        "SELECT id, session, command, arg FROM session_commands WHERE done_at IS NULL ORDER BY id"
    )
    .fetch_all(p)
    .await)
}

/// What became of a command: its result, or its error's code and message.
pub type Answer = Result<String, (String, String)>;

/// Answers command `id`.
pub async fn answer(conn: &mut Conn, id: i64, now: i64, answer: &Answer) -> sqlx::Result<()> {
    let (result, code, error) = match answer {
        Ok(r) => (Some(r.as_str()), None, None),
        Err((c, m)) => (None, Some(c.as_str()), Some(m.as_str())),
    };
    on!(&mut *conn, |c| sqlx::query(
        "UPDATE session_commands SET done_at = $2, result = $3, error_code = $4, error = $5 \
         WHERE id = $1 AND done_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .bind(result)
    .bind(code)
    .bind(error)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// The answer to command `id`, once there is one.
pub async fn answer_of(pool: &Pool, id: i64) -> sqlx::Result<Option<Answer>> {
    type Row = (Option<i64>, Option<String>, Option<String>, Option<String>);
    let row: Option<Row> = on_pool!(pool, |p| sqlx::query_as(
        "SELECT done_at, result, error_code, error FROM session_commands WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(p)
    .await)?;
    Ok(match row {
        Some((Some(_), result, code, error)) => Some(match code {
            Some(code) => Err((code, error.unwrap_or_default())),
            None => Ok(result.unwrap_or_default()),
        }),
        _ => None,
    })
}

/// Deletes command `id` (answered and read, or given up on), and answered ones older than
/// `before` that nobody read.
pub async fn forget_command(conn: &mut Conn, id: i64, before: i64) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM session_commands WHERE id = $1 OR created_at < $2"
    )
    .bind(id)
    .bind(before)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::jobs::test_db;

    #[tokio::test]
    async fn a_session_has_one_owner_and_each_takeover_raises_its_epoch() {
        let mut c = test_db::open().await;
        assert_eq!(take(&mut c, "s", "a", 1000, 16_000).await.unwrap(), Some(1));
        // b cannot take it while a's lease holds, nor renew it.
        assert_eq!(take(&mut c, "s", "b", 2000, 17_000).await.unwrap(), None);
        assert!(!renew(&mut c, "s", "b", 1, 2000, 17_000).await.unwrap());
        assert!(renew(&mut c, "s", "a", 1, 5000, 20_000).await.unwrap());
        // a's lease lapses: b takes it under epoch 2, and a (thawed) can no longer renew.
        assert_eq!(
            take(&mut c, "s", "b", 20_000, 35_000).await.unwrap(),
            Some(2)
        );
        assert!(!renew(&mut c, "s", "a", 1, 20_001, 36_000).await.unwrap());
        // A release by a stale epoch changes nothing; b's own hands it over at once.
        release(&mut c, "s", "a", 1).await.unwrap();
        assert_eq!(take(&mut c, "s", "a", 21_000, 36_000).await.unwrap(), None);
        release(&mut c, "s", "b", 2).await.unwrap();
        assert_eq!(
            take(&mut c, "s", "a", 21_000, 36_000).await.unwrap(),
            Some(3)
        );
        // A node that restarts with its own id takes its session back at once, fencing its
        // earlier run's epoch.
        assert_eq!(
            take(&mut c, "s", "a", 22_000, 37_000).await.unwrap(),
            Some(4)
        );
        assert!(!renew(&mut c, "s", "a", 3, 22_001, 37_000).await.unwrap());
        let row = list_conn(&mut c).await;
        assert_eq!(row[0].owner_at(22_001), Some("a"));
        assert_eq!(row[0].owner_at(37_000), None);
    }

    async fn list_conn(c: &mut Conn) -> Vec<OwnerRow> {
        on!(c, |c| sqlx::query_as(
            "SELECT session, node, epoch, expires_at FROM session_owners"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap()
    }
}
