//! The `nodes` and `leaders` tables: which gateway nodes are alive on this database, and which
//! one holds each role that must run once (retention, webhook deliveries). Every statement is a
//! short autocommit write, so a node that freezes holds no lock anyone waits on.

use serde::Serialize;

use crate::db::{Conn, Pool, on, on_pool};

/// A row of `nodes`.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct NodeRow {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub expires_at: i64,
}

/// Registers node `id` (or renews it), alive until `expires_at`.
pub async fn join(conn: &mut Conn, node: &NodeRow) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "INSERT INTO nodes (id, address, version, started_at, heartbeat_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET address = excluded.address, version = excluded.version, \
         heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at",
    )
    .bind(&node.id)
    .bind(&node.address)
    .bind(&node.version)
    .bind(node.started_at)
    .bind(node.heartbeat_at)
    .bind(node.expires_at)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Renews node `id` until `expires_at`; false when its row is gone or already expired (another
/// node may have taken its work: it must rejoin, not carry on).
pub async fn heartbeat(conn: &mut Conn, id: &str, now: i64, expires_at: i64) -> sqlx::Result<bool> {
    let n = on!(&mut *conn, |c| sqlx::query(
        "UPDATE nodes SET heartbeat_at = $2, expires_at = $3 WHERE id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A clean stop: the node's row and roles go at once, so the others take over without waiting.
pub async fn leave(conn: &mut Conn, id: &str) -> sqlx::Result<()> {
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM leaders WHERE node = $1"
    )
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM nodes WHERE id = $1"
    )
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Forgets nodes dead for longer than `before` allows (they stay listed a while for operators).
pub async fn forget_dead(conn: &mut Conn, before: i64) -> sqlx::Result<u64> {
    on!(&mut *conn, |c| sqlx::query(
        "DELETE FROM nodes WHERE expires_at < $1"
    )
    .bind(before)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

/// Takes or renews `role` for `node` until `expires_at`, if nobody else holds it unexpired.
/// True when `node` holds it now.
pub async fn lead(
    conn: &mut Conn,
    role: &str,
    node: &str,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<bool> {
    let holder: Option<String> = on!(&mut *conn, |c| sqlx::query_scalar(
        "INSERT INTO leaders (role, node, expires_at) VALUES ($1, $2, $4) \
         ON CONFLICT (role) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at \
         WHERE leaders.node = excluded.node OR leaders.expires_at <= $3 \
         RETURNING node",
    )
    .bind(role)
    .bind(node)
    .bind(now)
    .bind(expires_at)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(holder.as_deref() == Some(node))
}

/// A node as listed: its row, the roles it holds and its jobs being sent.
#[derive(Debug, Clone)]
pub struct NodeListed {
    pub row: NodeRow,
    pub roles: Vec<String>,
    pub active_jobs: i64,
}

/// The secret `name` all nodes share: `candidate` if no node stored one before, else theirs.
pub async fn shared_secret(conn: &mut Conn, name: &str, candidate: &str) -> sqlx::Result<String> {
    on!(&mut *conn, |c| sqlx::query(
        "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(candidate)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    on!(&mut *conn, |c| sqlx::query_scalar(
        "SELECT value FROM shared_secrets WHERE name = $1"
    )
    .bind(name)
    .fetch_one(&mut *c)
    .await)
}

/// Every node on the database, oldest first.
pub async fn list(pool: &Pool) -> sqlx::Result<Vec<NodeListed>> {
    let nodes: Vec<NodeRow> = on_pool!(pool, |p| sqlx::query_as(
        "SELECT id, address, version, started_at, heartbeat_at, expires_at FROM nodes \
         ORDER BY started_at, id",
    )
    .fetch_all(p)
    .await)?;
    let roles: Vec<(String, String)> = on_pool!(pool, |p| sqlx::query_as(
        "SELECT node, role FROM leaders ORDER BY role"
    )
    .fetch_all(p)
    .await)?;
    let active: Vec<(String, i64)> = on_pool!(pool, |p| {
        sqlx::query_as(
        "SELECT node, COUNT(*) FROM jobs WHERE status = 'active' AND node IS NOT NULL GROUP BY node",
    )
    .fetch_all(p)
    .await
    })?;
    Ok(nodes
        .into_iter()
        .map(|row| NodeListed {
            roles: roles
                .iter()
                .filter(|(node, _)| *node == row.id)
                .map(|(_, r)| r.clone())
                .collect(),
            active_jobs: active
                .iter()
                .find(|(node, _)| *node == row.id)
                .map_or(0, |(_, n)| *n),
            row,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::jobs::{Lease, claim, insert_many, rescue_orphans, test_db};

    fn node(id: &str, now: i64) -> NodeRow {
        NodeRow {
            id: id.into(),
            address: "127.0.0.1:1".into(),
            version: "test".into(),
            started_at: now,
            heartbeat_at: now,
            expires_at: now + 15_000,
        }
    }

    #[tokio::test]
    async fn a_role_has_one_holder_until_its_lease_lapses() {
        let mut c = test_db::open().await;
        assert!(
            lead(&mut c, "maintenance", "a", 1000, 16_000)
                .await
                .unwrap()
        );
        assert!(
            !lead(&mut c, "maintenance", "b", 2000, 17_000)
                .await
                .unwrap()
        );
        assert!(
            lead(&mut c, "maintenance", "a", 5000, 20_000)
                .await
                .unwrap()
        );
        assert!(
            !lead(&mut c, "maintenance", "b", 19_999, 35_000)
                .await
                .unwrap()
        );
        assert!(
            lead(&mut c, "maintenance", "b", 20_000, 35_000)
                .await
                .unwrap()
        );
        assert!(
            !lead(&mut c, "maintenance", "a", 21_000, 36_000)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_jobs_of_a_dead_node_go_back_to_waiting_and_a_live_nodes_stay() {
        let mut c = test_db::open().await;
        join(&mut c, &node("a", 1000)).await.unwrap();
        join(&mut c, &node("b", 1000)).await.unwrap();
        insert_many(&mut c, &[test_db::job(1), test_db::job(2)])
            .await
            .unwrap();
        let (a, b): (std::sync::Arc<str>, std::sync::Arc<str>) = ("a".into(), "b".into());
        assert_eq!(
            claim(&mut c, "default", 1, 1000, &Lease::new(&a))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            claim(&mut c, "default", 1, 1000, &Lease::new(&b))
                .await
                .unwrap()
                .len(),
            1
        );
        // b renews; a does not. Before a's lease lapses nothing moves; after, only a's job.
        assert!(heartbeat(&mut c, "b", 10_000, 25_000).await.unwrap());
        assert_eq!(
            rescue_orphans(&mut c, 15_999, 15_999).await.unwrap(),
            (vec![], vec![])
        );
        let (rescued, looped) = rescue_orphans(&mut c, 16_000, 16_000).await.unwrap();
        assert_eq!((rescued, looped), (vec!["default".to_string()], vec![]));
        let ja = test_db::get(&mut c, "job_1").await.unwrap().unwrap();
        let jb = test_db::get(&mut c, "job_2").await.unwrap().unwrap();
        assert_eq!((ja.status.as_str(), ja.rescues), ("waiting", 1));
        assert_eq!(
            (jb.status.as_str(), jb.node.as_deref()),
            ("active", Some("b"))
        );
        // A node past its lease cannot renew: it must rejoin.
        assert!(!heartbeat(&mut c, "a", 16_000, 31_000).await.unwrap());
        leave(&mut c, "b").await.unwrap();
        assert_eq!(
            rescue_orphans(&mut c, 16_001, 16_001)
                .await
                .unwrap()
                .0
                .len(),
            1
        );
    }
}
