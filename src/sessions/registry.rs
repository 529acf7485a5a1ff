//! The registry's own work: loading sessions at start-up, starting and stopping their drivers
//! (within `max_browsers`), and keeping each row in step with what its driver shows.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    DEFAULT, MEMORY_PER_BROWSER, Running, Session, SessionChange, SessionError, Sessions, driver,
};
use crate::config::{Config, DriverKind, SessionConfig};
use crate::db::sessions::{self as rows, SessionRow};
use crate::db::{Db, DbError, Durability};
use crate::events::{Event, Events};
use crate::queue::{DefaultConcurrency, Queue};
use crate::whatsapp::{MessageSender, Seen, SessionState};

/// Writes what a driver shows into its session's row.
async fn write_seen(db: &Db, name: &str, seen: Seen) -> Result<(), DbError> {
    let name = name.to_string();
    db.writer
        .exec(Durability::Relaxed, move |c| {
            Box::pin(async move {
                rows::mirror(
                    c,
                    &name,
                    seen.state.as_str(),
                    &seen.detail,
                    seen.qr.as_deref(),
                    seen.me.as_deref(),
                )
                .await
            })
        })
        .await
}

impl Sessions {
    /// Creates `default` and the declared sessions when missing, then starts every session
    /// whose desired state is started. Drivers end when `shutdown` is cancelled; their tasks
    /// are tracked by `tracker`.
    pub async fn load(
        config: Arc<Config>,
        db: Db,
        queue: Arc<Queue>,
        events: Events,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> anyhow::Result<Arc<Sessions>> {
        let max_browsers = config.whatsapp.max_browsers.unwrap_or_else(|| {
            crate::system::available_memory().map_or(1, |m| (m / MEMORY_PER_BROWSER).max(1) as u32)
        });
        let node = queue.node().clone();
        let sessions = Arc::new(Sessions {
            db,
            queue,
            events,
            config,
            max_browsers,
            map: RwLock::default(),
            ops: tokio::sync::Mutex::new(()),
            shutdown,
            tracker,
            node,
            rebalance: tokio::sync::Notify::new(),
            free_since: Mutex::default(),
        });
        driver::adopt_legacy_profile(&sessions.config);
        sessions.declare().await?;
        for row in rows::list(&sessions.db.read).await? {
            sessions.register(row);
        }
        // This node's share of the started sessions runs from here; the loop keeps it.
        sessions.rebalance().await;
        tracing::info!(
            sessions = sessions.list().len(),
            max_browsers,
            "📱 Sessions loaded"
        );
        Ok(sessions)
    }

    /// `default` from `[whatsapp]` and the `[[sessions]]` of the file, where missing. A first
    /// start creates `default`; once deleted, it is created again only on an empty table.
    async fn declare(&self) -> Result<(), SessionError> {
        let existing = rows::list(&self.db.read).await?;
        let now = crate::time::now_ms();
        // `[whatsapp] driver` is the default session's: switching it in the file (or with
        // GATEWAY__WHATSAPP__DRIVER) switches that session.
        let file_driver = self.config.whatsapp.driver;
        if let Some(d) = existing
            .iter()
            .find(|r| r.name == DEFAULT && r.driver != file_driver)
        {
            tracing::info!(
                from = d.driver.as_str(),
                to = file_driver.as_str(),
                "📱 The default session's driver follows [whatsapp] driver"
            );
            self.db
                .writer
                .exec(Durability::Durable, move |c| {
                    Box::pin(async move { rows::set_driver(c, DEFAULT, file_driver).await })
                })
                .await?;
        }
        let mut new_rows = Vec::new();
        if existing.is_empty() && !self.config.sessions.iter().any(|s| s.name == DEFAULT) {
            new_rows.push(SessionRow::new(
                DEFAULT,
                self.config.whatsapp.driver,
                true,
                now,
            ));
        }
        for d in &self.config.sessions {
            if existing.iter().any(|r| r.name == d.name) {
                continue;
            }
            new_rows.push(self.declared_row(d, now));
        }
        if new_rows.is_empty() {
            return Ok(());
        }
        self.db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    for r in &new_rows {
                        rows::insert(c, r).await?;
                        tracing::info!(session = %r.name, driver = r.driver.as_str(), "📱 Session {} created", r.name);
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    fn declared_row(&self, d: &SessionConfig, now: i64) -> SessionRow {
        let mut row = SessionRow::new(
            &d.name,
            d.driver.unwrap_or(self.config.whatsapp.driver),
            d.start,
            now,
        );
        SessionChange {
            concurrency: d.concurrency,
            paused: Some(d.paused),
            browser_args: (!d.browser_args.is_empty()).then(|| d.browser_args.clone()),
            memory_limit: d.memory_limit,
            pacing: None,
        }
        .apply(&mut row);
        row
    }

    pub(super) fn register(&self, row: SessionRow) -> Arc<Session> {
        let default = match row.driver {
            DriverKind::Webdriver => DefaultConcurrency::One,
            DriverKind::Sandbox => DefaultConcurrency::Queue,
        };
        let lane = self.queue.open_lane(&row.name, default);
        let s = Arc::new(Session {
            name: row.name.clone(),
            row: Mutex::new(row),
            lane,
            running: Mutex::new(None),
            checks: Mutex::default(),
            elsewhere: Mutex::new(None),
            snapshot_at: Default::default(),
            idle: Mutex::new((
                SessionState::Stopped,
                "stopped".into(),
                crate::time::now_ms(),
            )),
        });
        s.configure_lane(&self.config.pacing);
        let row = s.row();
        s.lane.set_linked(row.linked_at);
        s.lane
            .set_cooldown(row.cooldown_until.zip(row.cooldown_reason));
        self.map
            .write()
            .expect("sessions lock")
            .insert(s.name.clone(), s.clone());
        s
    }

    /// The driver of sessions created without naming one.
    pub fn default_driver(&self) -> DriverKind {
        self.config.whatsapp.driver
    }

    pub fn max_browsers(&self) -> u32 {
        self.max_browsers
    }

    pub fn list(&self) -> Vec<Arc<Session>> {
        self.map
            .read()
            .expect("sessions lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        self.map
            .read()
            .expect("sessions lock")
            .get(name)
            .cloned()
            .ok_or_else(|| SessionError::NotFound(name.to_string()))
    }

    /// Browsers running now.
    pub(super) fn browsers(&self) -> u32 {
        self.list().iter().filter(|s| s.is_browser()).count() as u32
    }

    /// Starts the session's driver; refused past `max_browsers`. Call under `ops`, holding the
    /// session's lease ([`Sessions::own_and_launch`]).
    pub(super) fn launch(&self, s: &Arc<Session>) -> Result<(), SessionError> {
        if s.sender().is_some() {
            return Ok(());
        }
        let row = s.row();
        if row.driver == DriverKind::Webdriver {
            self.check_capacity()?;
        }
        let stop = self.shutdown.child_token();
        let tasks = TaskTracker::new();
        s.snapshot_at.store(0, std::sync::atomic::Ordering::Release);
        let holds: crate::whatsapp::Holds = {
            let (queue, lane) = (self.queue.clone(), s.lane.clone());
            Arc::new(move || queue.may_send(&lane))
        };
        let sender = driver::start(&self.config, &row, stop.clone(), &tasks, holds)
            .map_err(|e| SessionError::Io(format!("{e:#}")))?;
        tasks.close();
        let waiter = tasks.clone();
        self.tracker.spawn(async move { waiter.wait().await });
        self.watch(s, sender.clone(), stop.child_token());
        *s.running.lock().expect("running lock") = Some(Running {
            sender: sender.clone(),
            stop,
            tasks,
        });
        s.lane.set_sender(Some(sender));
        Ok(())
    }

    /// One watcher per driver: each change of what it shows (state, QR, account) becomes its
    /// events, and the latest of them is written into the session's row, in order, for the CLI.
    /// The first connection marks when the number was linked (pacing's warm-up).
    fn watch(&self, s: &Session, sender: Arc<dyn MessageSender>, stop: CancellationToken) {
        self.keep_acks(s, sender.as_ref(), stop.clone());
        self.keep_incoming(s, sender.as_ref(), stop.clone());
        let (tx, mut rx) = tokio::sync::watch::channel(None::<Seen>);
        let (events, session) = (self.events.clone(), s.name.clone());
        tokio::spawn(crate::whatsapp::watch(sender, stop, move |seen, before| {
            events.driver_changed(&session, seen, before);
            let _ = tx.send(Some(seen.clone()));
        }));
        let (db, name, lane) = (self.db.clone(), s.name.clone(), s.lane.clone());
        let clock = self.queue.clock().clone();
        // A phone links a webdriver session's number; the sandbox has none to warm up.
        let row = s.row();
        let mut linked = row.linked_at.is_some() || row.driver != DriverKind::Webdriver;
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(seen) = rx.borrow_and_update().clone() else {
                    continue;
                };
                let connected = seen.state == SessionState::Connected;
                let _ = write_seen(&db, &name, seen).await;
                if connected && !linked {
                    let (n, at) = (name.clone(), clock.now_ms());
                    let stored = db
                        .writer
                        .exec(Durability::Durable, move |c| {
                            Box::pin(
                                async move { crate::db::pacing::set_linked(c, &n, Some(at)).await },
                            )
                        })
                        .await;
                    if let Ok(at) = stored {
                        lane.set_linked(at);
                        linked = true;
                    }
                }
            }
        });
    }

    /// Keeps the receipts the driver sees on the session's jobs, until `stop`.
    fn keep_acks(&self, s: &Session, sender: &dyn MessageSender, stop: CancellationToken) {
        let Some(rx) = sender.acks() else {
            return;
        };
        let (queue, name) = (self.queue.clone(), s.name.clone());
        let watch = self.config.whatsapp.receipt_watch.0;
        super::feeds::keep(rx, stop, s.name.clone(), "receipts", move |seen| {
            let (queue, name) = (queue.clone(), name.clone());
            async move {
                if let Err(e) = queue.record_acks(&name, seen, watch).await {
                    tracing::error!(session = %name, error = %e, "cannot keep receipts");
                }
            }
        });
    }

    /// Keeps what the session receives (stored once, announced, its sender a contact, answered
    /// by the on-message hook), until `stop`.
    fn keep_incoming(&self, s: &Session, sender: &dyn MessageSender, stop: CancellationToken) {
        let Some(rx) = sender.incoming() else {
            return;
        };
        let (queue, name) = (self.queue.clone(), s.name.clone());
        super::feeds::keep(rx, stop, s.name.clone(), "messages", move |batch| {
            let (queue, name) = (queue.clone(), name.clone());
            async move {
                match queue.record_incoming(&name, batch).await {
                    Ok(rows) => queue.answer_incoming(&rows).await,
                    Err(e) => {
                        tracing::error!(session = %name, error = %e, "cannot keep received messages")
                    }
                }
            }
        });
    }

    /// Stops the session's driver (its sends in flight end `session-closed` and are retried
    /// once it runs again) and waits for its browser to close. Call under `ops`.
    pub(super) async fn halt(&self, s: &Arc<Session>, state: SessionState, detail: &str) {
        if let Some(closing) = self.begin_halt(s, state, detail) {
            closing.await;
        }
    }

    /// The part of [`Sessions::halt`] that cannot wait: from here nothing is sent through the
    /// driver, and its browser is told to close. What it returns waits for the browser.
    pub(super) fn begin_halt(
        &self,
        s: &Arc<Session>,
        state: SessionState,
        detail: &str,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let running = s.running.lock().expect("running lock").take();
        s.set_idle(state, detail);
        let r = running?;
        s.lane.set_sender(None);
        if let Some(me) = r.sender.me() {
            s.row.lock().expect("row lock").me = Some(me);
        }
        r.stop.cancel();
        let (s, events) = (s.clone(), self.events.clone());
        Some(async move {
            if tokio::time::timeout(Duration::from_secs(15), r.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!(session = %s.name, "the browser of session {} did not close in 15s; killing it", s.name);
                r.sender.kill();
            }
            events.publish(Events::whatsapp_now(&s.name, s.status()));
        })
    }

    /// Stores the session's row as it is in memory, and its state for the CLI (unless another
    /// node runs it: that node writes its state).
    pub(super) async fn store(&self, s: &Session) -> Result<(), SessionError> {
        self.store_row(s).await?;
        if s.elsewhere().is_some() {
            self.wake_owner_of(s).await;
            return Ok(());
        }
        let st = s.status();
        let seen = Seen {
            state: st.state,
            detail: st.detail,
            qr: s.sender().and_then(|d| d.qr()),
            me: s.me(),
        };
        write_seen(&self.db, &s.name, seen).await?;
        Ok(())
    }

    /// Stores the session's row as it is in memory.
    pub(super) async fn store_row(&self, s: &Session) -> Result<(), SessionError> {
        let mut row = s.row();
        row.updated_at = crate::time::now_ms();
        let stored = row.clone();
        self.db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { rows::update(c, &stored).await })
            })
            .await?;
        *s.row.lock().expect("row lock") = row;
        Ok(())
    }

    /// Ends at once every browser still running: the last step of a shutdown whose sends
    /// outlived the grace period.
    pub fn kill(&self) {
        for s in self.list() {
            if let Some(sender) = s.sender() {
                sender.kill();
            }
        }
    }

    /// The first event of every new listener: each session's state.
    pub fn states_now(&self) -> Vec<Event> {
        self.list()
            .iter()
            .map(|s| Events::whatsapp_now(&s.name, s.status()))
            .collect()
    }
}
