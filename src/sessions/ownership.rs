//! Which node runs each session. A node runs a session's driver only while it holds that
//! session's lease (`session_owners`, [`crate::db::owners`]), renewed every third of
//! `[cluster] lease`; it takes free or expired sessions up to its share of the started ones
//! (and `max_browsers`), hands one back when it holds more than its share (a node joined), and
//! releases all of them on a clean stop so the others take over at once.
//!
//! Never two browsers on one number: the lane sends only while its lease is fresh (two thirds
//! of the lease, [`crate::cluster::Node::fresh`]), and a node that cannot renew in time, or
//! finds a higher epoch (it froze and another node took over), closes that browser before the
//! lease can lapse. On PostgreSQL every claim is fenced by the owner row as well.
//!
//! Every node also keeps its list of sessions in step with the table: sessions created,
//! changed, stopped or deleted through another node show here within a round.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Session, SessionError, Sessions};
use crate::config::DriverKind;
use crate::db::owners::{self, OwnerRow};
use crate::db::sessions::{self as rows, SessionRow};
use crate::db::{Backend, Durability};
use crate::whatsapp::SessionState;

impl Sessions {
    /// Renews this node's session leases and keeps its share of the sessions, every third of
    /// the lease (sooner when woken), until `stop`.
    pub async fn keep_owned(self: Arc<Self>, stop: CancellationToken) {
        let every = self.node.renew_every();
        loop {
            self.renew_owned().await;
            self.rebalance().await;
            self.keep_profiles().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.rebalance.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Snapshots the login of each connected session this node runs, once it linked and then
    /// every [`super::profile::SNAPSHOT_EVERY`].
    async fn keep_profiles(&self) {
        if self.db.backend() != Backend::Postgres {
            return;
        }
        let now = crate::time::now_ms();
        let every = super::profile::SNAPSHOT_EVERY.as_millis() as i64;
        for (s, _) in self.owned() {
            let last = s.snapshot_at.load(std::sync::atomic::Ordering::Acquire);
            if s.lane.is_ready() && now - last >= every {
                self.keep_profile(&s).await;
            }
        }
    }

    /// Asks the ownership loop for a round now.
    pub(super) fn wake_owner_loop(&self) {
        self.rebalance.notify_one();
    }

    /// The sessions this node holds a lease of, with their epochs.
    fn owned(&self) -> Vec<(Arc<Session>, i64)> {
        self.list()
            .into_iter()
            .filter_map(|s| s.lane.owned().map(|(epoch, _)| (s, epoch)))
            .collect()
    }

    /// Renews every lease this node holds, in one write. A lease that another node took is
    /// given up at once; one that could not be renewed in time (the database is out of reach)
    /// closes its browser before it can lapse.
    async fn renew_owned(&self) {
        let owned = self.owned();
        if owned.is_empty() {
            return;
        }
        let now = crate::time::now_ms();
        let expires = now + self.node.lease().as_millis() as i64;
        let node = self.node.id().to_string();
        let ask: Vec<(String, i64)> = owned.iter().map(|(s, e)| (s.name.clone(), *e)).collect();
        let renewal = self.db.writer.exec(Durability::Relaxed, move |c| {
            Box::pin(async move {
                let mut held = Vec::with_capacity(ask.len());
                for (session, epoch) in &ask {
                    held.push(owners::renew(c, session, &node, *epoch, now, expires).await?);
                }
                Ok(held)
            })
        });
        match tokio::time::timeout(self.node.renew_every(), renewal).await {
            Ok(Ok(held)) => {
                for ((s, epoch), held) in owned.iter().zip(held) {
                    if held {
                        let stale = !self.queue.may_send(&s.lane);
                        s.lane.renewed(*epoch, now, stale);
                    } else {
                        tracing::warn!(session = %s.name, epoch, "⚔️ Session {}: another node took it over; closing its browser here", s.name);
                        self.lose(s, "another gateway node runs this session now");
                    }
                }
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the database did not answer in time".into(),
                };
                tracing::error!(error = %why, "🫀 cannot renew this node's session leases");
                for (s, _) in &owned {
                    if !s.lane.owned().is_some_and(|(_, at)| self.node.fresh(at)) {
                        tracing::warn!(session = %s.name, "⏹️ Session {}: its lease could not be renewed; closing its browser before another node may take it", s.name);
                        self.lose(s, "this node could not renew the session's lease");
                    }
                }
            }
        }
    }

    /// This node no longer runs `s`: nothing more is claimed or sent for it, and its browser
    /// closes now; the rest of the stop (waiting for the browser, the state) follows.
    fn lose(&self, s: &Arc<Session>, why: &str) {
        s.lane.set_owned(None);
        if let Some(closing) = self.begin_halt(s, SessionState::Stopped, why) {
            self.tracker.spawn(closing);
        }
    }

    /// One round under `ops`: the sessions table read again, sessions that stopped or moved
    /// let go, and free ones taken up to this node's share.
    pub(super) async fn rebalance(&self) {
        if !self.node.holds_lease() {
            return;
        }
        let _op = self.ops.lock().await;
        if let Err(e) = self.rebalance_locked().await {
            tracing::warn!(error = %e, "cannot look at the sessions' owners; trying again");
        }
    }

    async fn rebalance_locked(&self) -> Result<(), SessionError> {
        let now = crate::time::now_ms();
        let table = rows::list(&self.db.read).await?;
        let owner_rows = owners::list(&self.db.read).await?;
        let alive = owners::alive_nodes(&self.db.read, now).await?;
        self.sync(table).await;
        let me = self.node.id().to_string();
        let owner_of =
            |name: &str| -> Option<&OwnerRow> { owner_rows.iter().find(|o| o.session == name) };
        let mut mine = 0usize;
        let mut started = 0usize;
        for s in self.list() {
            let row = s.row();
            started += row.started as usize;
            let elsewhere = owner_of(&s.name)
                .and_then(|o| o.owner_at(now))
                .filter(|n| *n != me && s.lane.owned().is_none())
                .map(str::to_string);
            *s.elsewhere.lock().expect("elsewhere lock") = elsewhere;
            if s.lane.owned().is_some() {
                if row.started {
                    mine += 1;
                } else {
                    // Stopped through another node.
                    self.halt(&s, SessionState::Stopped, "stopped through the API")
                        .await;
                    self.give_up(&s).await;
                    tracing::info!(session = %s.name, "⏹️ Session {} stopped", s.name);
                }
            }
        }
        let nodes = alive.len().max(1);
        let share = started.div_ceil(nodes);
        // The least any other live node runs: sessions go to the least loaded nodes first.
        let least = alive
            .iter()
            .filter(|n| **n != me)
            .map(|n| {
                owner_rows
                    .iter()
                    .filter(|o| o.owner_at(now) == Some(n.as_str()))
                    .count()
            })
            .min();
        // A node joined (or lost its sessions): hand one over to it, a round at a time.
        let mut handed = None;
        if least.is_some_and(|l| mine >= l + 2)
            && let Some(s) = self
                .list()
                .into_iter()
                .rev()
                .find(|s| s.lane.owned().is_some())
        {
            tracing::info!(session = %s.name, "🤝 Session {}: handed over to a less busy node (this node runs {mine})", s.name);
            self.halt(&s, SessionState::Stopped, "handed over to another node")
                .await;
            self.keep_profile(&s).await;
            self.give_up(&s).await;
            mine -= 1;
            handed = Some(s.name.clone());
        }
        let patience = self.node.lease().as_millis() as i64;
        let mut free_since = self.free_since.lock().expect("free lock").clone();
        free_since.retain(|name, _| owner_of(name).is_none_or(|o| o.owner_at(now).is_none()));
        for s in self.list() {
            let row = s.row();
            let free = owner_of(&s.name).is_none_or(|o| o.owner_at(now).is_none_or(|n| n == me));
            if !row.started
                || s.lane.owned().is_some()
                || !free
                || handed.as_deref() == Some(&s.name)
            {
                continue;
            }
            let since = *free_since.entry(s.name.clone()).or_insert(now);
            // A busier node leaves it to the others, unless none took it within a lease (they
            // may have no room).
            let busier = least.is_some_and(|l| mine > l) && now - since < patience;
            if mine >= share || busier {
                continue;
            }
            match self.own_and_launch(&s).await {
                Ok(true) => {
                    mine += 1;
                    free_since.remove(&s.name);
                }
                Ok(false) => {}
                // Another node may have room.
                Err(SessionError::Capacity { .. }) if nodes > 1 => {}
                Err(e) => {
                    let detail = e.to_string();
                    let st = s.status();
                    if (st.state, st.detail.as_str()) != (SessionState::Failed, detail.as_str()) {
                        tracing::error!(session = %s.name, "🚫 Session {} not started: {e}", s.name);
                        s.set_idle(SessionState::Failed, &detail);
                    }
                }
            }
        }
        *self.free_since.lock().expect("free lock") = free_since;
        Ok(())
    }

    /// Takes the session's lease (unless this node holds it) and starts its driver: false when
    /// another node holds it. Refused past `max_browsers`. Call under `ops`.
    pub(super) async fn own_and_launch(&self, s: &Arc<Session>) -> Result<bool, SessionError> {
        if s.lane.owned().is_none() {
            if s.driver() == DriverKind::Webdriver && s.sender().is_none() {
                self.check_capacity()?;
            }
            let now = crate::time::now_ms();
            let expires = now + self.node.lease().as_millis() as i64;
            let (name, node) = (s.name.clone(), self.node.id().to_string());
            let epoch = self
                .db
                .writer
                .exec(Durability::Durable, move |c| {
                    Box::pin(async move { owners::take(c, &name, &node, now, expires).await })
                })
                .await?;
            let Some(epoch) = epoch else {
                return Ok(false);
            };
            tracing::info!(session = %s.name, epoch, "📱 Session {}: this node runs it (epoch {epoch})", s.name);
            *s.elsewhere.lock().expect("elsewhere lock") = None;
            s.lane.set_owned(Some((epoch, now)));
            if self.db.backend() == Backend::Postgres {
                self.restore_profile(s).await;
            }
        }
        self.launch(s)?;
        Ok(true)
    }

    /// Refused when this node runs `max_browsers` browsers already.
    pub(super) fn check_capacity(&self) -> Result<(), SessionError> {
        let running = self.browsers();
        if running >= self.max_browsers {
            return Err(SessionError::Capacity {
                running,
                max: self.max_browsers,
            });
        }
        Ok(())
    }

    /// Gives the session's lease back (its driver stopped): another node may take it at once.
    pub(super) async fn give_up(&self, s: &Session) {
        let Some((epoch, _)) = s.lane.owned() else {
            return;
        };
        s.lane.set_owned(None);
        let (name, node) = (s.name.clone(), self.node.id().to_string());
        let released = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { owners::release(c, &name, &node, epoch).await })
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(session = %s.name, error = %e, "cannot release the session's lease; the others wait for it to lapse");
        }
    }

    /// The last step of a clean stop, once the drivers have ended: each session's login is
    /// kept for the node that takes it next, and its lease released.
    pub async fn release_all(&self) {
        let _op = self.ops.lock().await;
        for (s, _) in self.owned() {
            self.halt(&s, SessionState::Stopped, "the gateway stopped")
                .await;
            self.keep_profile(&s).await;
            self.give_up(&s).await;
        }
    }

    /// Brings the in-memory sessions in step with the table: new ones registered, changed
    /// settings applied, deleted ones closed. Call under `ops`.
    async fn sync(&self, table: Vec<SessionRow>) {
        for s in self.list() {
            if !table.iter().any(|r| r.name == s.name) {
                tracing::info!(session = %s.name, "🗑️ Session {} was deleted through another node", s.name);
                self.map.write().expect("sessions lock").remove(&s.name);
                self.halt(&s, SessionState::Stopped, "deleted").await;
                s.lane.set_owned(None);
                self.queue.close_lane(&s.name).await;
            }
        }
        for row in table {
            let Ok(s) = self.get(&row.name) else {
                tracing::info!(session = %row.name, "📱 Session {} was created through another node", row.name);
                self.register(row);
                continue;
            };
            let relaunch = {
                let mut mine = s.row.lock().expect("row lock");
                if row.updated_at <= mine.updated_at {
                    // Only what its owner sees changed: keep it for the view.
                    if s.lane.owned().is_none() {
                        (mine.state, mine.detail, mine.qr) = (row.state, row.detail, row.qr);
                        mine.me = row.me.or(mine.me.take());
                    }
                    continue;
                }
                let relaunch =
                    row.browser_args != mine.browser_args || row.memory_limit != mine.memory_limit;
                *mine = row;
                relaunch
            };
            s.configure_lane(&self.config.pacing);
            if relaunch && s.sender().is_some() && s.driver() == DriverKind::Webdriver {
                tracing::info!(session = %s.name, "♻️ Session {}: browser settings changed; starting its browser again", s.name);
                self.halt(&s, SessionState::Restarting, "browser settings changed")
                    .await;
                if let Err(e) = self.launch(&s) {
                    s.set_idle(SessionState::Failed, &e.to_string());
                }
            }
        }
    }
}

/// How long a caller waits for the node that runs a session to act on a command.
pub(super) const REMOTE_WAIT: Duration = Duration::from_secs(35);
