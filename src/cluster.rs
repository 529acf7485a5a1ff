//! This gateway node among the nodes that share one database. A node is alive while its row in
//! `nodes` is unexpired; it renews it every third of its lease ([`Node::renew`]), and when it
//! cannot, it stops starting sends before the lease can lapse, since another node may then take
//! its jobs. One node at a time holds the `maintenance` role (retention, dead-node cleanup,
//! webhook deliveries, which go out in order from one sender per receiver).
//!
//! Node liveness is judged by wall clocks (the system's, never a test's manual queue clock):
//! nodes' clocks must agree to well within a lease, as NTP keeps them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::db::{self, Db, DbError, Durability, cluster::NodeRow};

/// The role that runs the once-per-cluster work.
pub const MAINTENANCE: &str = "maintenance";

/// Dead nodes stay listed this long (ms) after their lease lapsed, for operators to see.
const KEEP_DEAD_MS: i64 = 3_600_000;

#[derive(Debug)]
pub struct Node {
    id: Arc<str>,
    lease: Duration,
    address: String,
    started_at: i64,
    /// When the row was last renewed (system ms); 0: never.
    renewed_at: AtomicI64,
    leader: AtomicBool,
    /// Wakes the leader-only work when the role is won.
    led: tokio::sync::Notify,
}

impl Node {
    pub fn new(id: String, lease: Duration, address: String) -> Arc<Node> {
        Arc::new(Node {
            id: id.into(),
            lease,
            address,
            started_at: crate::time::now_ms(),
            renewed_at: AtomicI64::new(0),
            leader: AtomicBool::new(false),
            led: tokio::sync::Notify::new(),
        })
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How often the node renews: a third of its lease.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// True while this node may start a send: it renewed within two thirds of its lease, so
    /// no other node can have taken its jobs yet, with a third of the lease to spare.
    pub fn holds_lease(&self) -> bool {
        self.holds_lease_at(crate::time::now_ms())
    }

    fn holds_lease_at(&self, now: i64) -> bool {
        self.fresh_at(self.renewed_at.load(Ordering::Acquire), now)
    }

    /// True while a lease of this node's renewed at `renewed` (system ms) may still be used: for
    /// two thirds of the lease, so that it stops a third of a lease before another node may
    /// take over. The same rule for the node's own row and for each session it owns.
    pub fn fresh(&self, renewed: i64) -> bool {
        self.fresh_at(renewed, crate::time::now_ms())
    }

    fn fresh_at(&self, renewed: i64, now: i64) -> bool {
        renewed > 0 && now < renewed + (self.lease.as_millis() as i64) * 2 / 3
    }

    /// True while this node holds the `maintenance` role.
    pub fn leads(&self) -> bool {
        self.leader.load(Ordering::Acquire) && self.holds_lease()
    }

    /// Waits until this node may hold the role (or `every` passes).
    pub async fn until_leading(&self, every: Duration) {
        if !self.leads() {
            tokio::select! {
                _ = self.led.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Registers or renews this node's row and tries for the `maintenance` role; dead nodes
    /// long gone are forgotten by the leader. A node whose row had lapsed rejoins (its jobs may
    /// have been taken, and the outcomes' lease check keeps them safe).
    pub async fn renew(&self, db: &Db) -> Result<(), DbError> {
        let now = crate::time::now_ms();
        let expires = now + self.lease.as_millis() as i64;
        let row = NodeRow {
            id: self.id.to_string(),
            address: self.address.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            heartbeat_at: now,
            expires_at: expires,
        };
        let id = self.id.clone();
        let joined = self.renewed_at.load(Ordering::Acquire) > 0;
        let result = db
            .writer
            .exec(Durability::Relaxed, move |c| {
                Box::pin(async move {
                    if !(joined && db::cluster::heartbeat(c, &id, now, expires).await?) {
                        if joined {
                            tracing::warn!(node = %id, "🫀 this node's lease had lapsed; rejoining");
                        }
                        db::cluster::join(c, &row).await?;
                    }
                    let leads = db::cluster::lead(c, MAINTENANCE, &id, now, expires).await?;
                    if leads {
                        db::cluster::forget_dead(c, now - KEEP_DEAD_MS).await?;
                    }
                    Ok(leads)
                })
            })
            .await;
        match result {
            Ok(leads) => {
                self.renewed_at.store(now, Ordering::Release);
                let was = self.leader.swap(leads, Ordering::AcqRel);
                if leads && !was {
                    tracing::info!(node = %self.id, "👑 this node now runs the cluster's maintenance");
                    self.led.notify_waiters();
                }
                Ok(())
            }
            Err(e) => {
                if !self.holds_lease() {
                    self.leader.store(false, Ordering::Release);
                }
                Err(e)
            }
        }
    }

    /// A clean stop: the row and roles go, so other nodes take over at once.
    pub async fn leave(&self, db: &Db) -> Result<(), DbError> {
        self.renewed_at.store(0, Ordering::Release);
        self.leader.store(false, Ordering::Release);
        let id = self.id.clone();
        db.writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { db::cluster::leave(c, &id).await })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_stops_starting_sends_a_third_of_a_lease_before_it_lapses() {
        let node = Node::new("n".into(), Duration::from_secs(15), "x".into());
        assert!(!node.holds_lease_at(1_000), "never renewed");
        node.renewed_at.store(1_000, Ordering::Release);
        assert!(node.holds_lease_at(1_000));
        assert!(node.holds_lease_at(10_999));
        assert!(!node.holds_lease_at(11_000));
    }
}
