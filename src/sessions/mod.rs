//! Sessions: the WhatsApp accounts one gateway serves. Each has its own driver (browser,
//! profile, QR, state machine, keep-alive and restart back-off) and its own queue lane, so
//! one account's trouble never holds another's messages.
//!
//! The registry owns the lifecycle: created, started, stopped, restarted, logged out and
//! deleted at run time; stored in the database so that a restart brings back the sessions
//! that were running. `default` is `[whatsapp]`; `[[sessions]]` may declare more.

pub(crate) mod driver;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ByteSize, Config, DriverKind, SessionConfig};
use crate::db::sessions::{self as rows, SessionRow};
use crate::db::{Db, DbError, Durability};
use crate::events::{Event, Events};
use crate::queue::{DefaultConcurrency, Lane, Queue};
use crate::whatsapp::{MessageSender, Seen, SessionState, WhatsAppStatus};

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

pub use view::{SessionView, SessionsQueue};

/// The session every old route acts on.
pub const DEFAULT: &str = "default";

/// Why a session operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session is named {0:?}")]
    NotFound(String),
    #[error("a session named {0:?} exists")]
    Exists(String),
    #[error(
        "{running} browser session(s) run already, the most this gateway allows (whatsapp.max_browsers = {max})"
    )]
    Capacity { running: u32, max: u32 },
    #[error("{0}")]
    Invalid(String),
    #[error("the session {0:?} is not running; start it first")]
    Stopped(String),
    /// The driver could not do it (`code`: its stable code).
    #[error("{code}: {message}")]
    Driver { code: String, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Io(String),
}

impl From<sqlx::Error> for SessionError {
    fn from(e: sqlx::Error) -> Self {
        SessionError::Db(e.into())
    }
}

/// A new session, as `POST /api/sessions` or `session add` describe it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub name: String,
    pub driver: DriverKind,
    pub start: bool,
    pub settings: SessionChange,
}

/// A change to a session's settings; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct SessionChange {
    pub concurrency: Option<u32>,
    pub paused: Option<bool>,
    pub browser_args: Option<Vec<String>>,
    pub memory_limit: Option<ByteSize>,
}

impl SessionChange {
    /// Applies the change to a row; true when the browser must start again to take it.
    fn apply(&self, row: &mut SessionRow) -> bool {
        if let Some(c) = self.concurrency {
            row.concurrency = Some(c as i64);
        }
        if let Some(p) = self.paused {
            row.paused = p;
        }
        let mut relaunch = false;
        if let Some(a) = &self.browser_args {
            let json = serde_json::to_string(a).ok();
            relaunch |= json != row.browser_args;
            row.browser_args = json;
        }
        if let Some(m) = self.memory_limit {
            relaunch |= Some(m.0 as i64) != row.memory_limit;
            row.memory_limit = Some(m.0 as i64);
        }
        relaunch
    }
}

/// A running driver.
struct Running {
    sender: Arc<dyn MessageSender>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// One session: its stored row, its lane, and its driver while it runs.
pub struct Session {
    name: String,
    row: Mutex<SessionRow>,
    lane: Arc<Lane>,
    running: Mutex<Option<Running>>,
    /// The state shown while no driver runs (`stopped`, or `logged_out` after a logout).
    idle: Mutex<(SessionState, String, i64)>,
}

impl Session {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn driver(&self) -> DriverKind {
        self.row.lock().expect("row lock").driver
    }

    pub fn row(&self) -> SessionRow {
        self.row.lock().expect("row lock").clone()
    }

    /// The running driver, if any.
    pub fn sender(&self) -> Option<Arc<dyn MessageSender>> {
        self.running
            .lock()
            .expect("running lock")
            .as_ref()
            .map(|r| r.sender.clone())
    }

    pub fn lane(&self) -> &Arc<Lane> {
        &self.lane
    }

    /// The driver's status, or why there is none.
    pub fn status(&self) -> WhatsAppStatus {
        match self.sender() {
            Some(s) => s.status(),
            None => {
                let (state, detail, since) = self.idle.lock().expect("idle lock").clone();
                WhatsAppStatus {
                    state,
                    detail,
                    driver: self.driver().as_str(),
                    since: crate::time::rfc3339(since),
                }
            }
        }
    }

    /// The account's own number, once known.
    pub fn me(&self) -> Option<String> {
        self.sender()
            .and_then(|s| s.me())
            .or_else(|| self.row.lock().expect("row lock").me.clone())
    }

    fn set_idle(&self, state: SessionState, detail: &str) {
        *self.idle.lock().expect("idle lock") = (state, detail.to_string(), crate::time::now_ms());
    }

    fn is_browser(&self) -> bool {
        self.driver() == DriverKind::Webdriver && self.sender().is_some()
    }

    fn configure_lane(&self) {
        let row = self.row();
        let default = match row.driver {
            DriverKind::Webdriver => DefaultConcurrency::One,
            DriverKind::Sandbox => DefaultConcurrency::Queue,
        };
        self.lane
            .configure(row.concurrency.map(|c| c as u32), default, row.paused);
    }
}

pub struct Sessions {
    db: Db,
    queue: Arc<Queue>,
    events: Events,
    config: Arc<Config>,
    max_browsers: u32,
    map: RwLock<BTreeMap<String, Arc<Session>>>,
    /// One lifecycle change at a time, so that the browser count is exact.
    ops: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// One browser per this much available memory, when `max_browsers` is not set.
const MEMORY_PER_BROWSER: u64 = 600 << 20;

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
        });
        driver::adopt_legacy_profile(&sessions.config);
        sessions.declare().await?;
        let rows = rows::list(&sessions.db.read).await?;
        for row in rows {
            let started = row.started;
            let name = row.name.clone();
            let s = sessions.register(row);
            if started {
                let _op = sessions.ops.lock().await;
                if let Err(e) = sessions.launch(&s) {
                    tracing::error!(session = %name, "🚫 Session {name} not started: {e}");
                    s.set_idle(SessionState::Failed, &e.to_string());
                }
            }
        }
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
        }
        .apply(&mut row);
        row
    }

    fn register(&self, row: SessionRow) -> Arc<Session> {
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
            idle: Mutex::new((
                SessionState::Stopped,
                "stopped".into(),
                crate::time::now_ms(),
            )),
        });
        s.configure_lane();
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
    fn browsers(&self) -> u32 {
        self.list().iter().filter(|s| s.is_browser()).count() as u32
    }

    /// Starts the session's driver; refused past `max_browsers`. Call under `ops`.
    fn launch(&self, s: &Arc<Session>) -> Result<(), SessionError> {
        if s.sender().is_some() {
            return Ok(());
        }
        let row = s.row();
        if row.driver == DriverKind::Webdriver {
            let running = self.browsers();
            if running >= self.max_browsers {
                return Err(SessionError::Capacity {
                    running,
                    max: self.max_browsers,
                });
            }
        }
        let stop = self.shutdown.child_token();
        let tasks = TaskTracker::new();
        let sender = driver::start(&self.config, &row, stop.clone(), &tasks)
            .map_err(|e| SessionError::Io(format!("{e:#}")))?;
        tasks.close();
        let waiter = tasks.clone();
        self.tracker.spawn(async move { waiter.wait().await });
        self.events
            .watch_driver(&s.name, sender.clone(), stop.child_token());
        self.mirror(&s.name, sender.clone(), stop.child_token());
        *s.running.lock().expect("running lock") = Some(Running {
            sender: sender.clone(),
            stop,
            tasks,
        });
        s.lane.set_sender(Some(sender));
        Ok(())
    }

    /// Keeps the session's row showing what its driver shows (state, QR, account), for the
    /// CLI: the latest of each change is written, in order.
    fn mirror(&self, name: &str, sender: Arc<dyn MessageSender>, stop: CancellationToken) {
        let (tx, mut rx) = tokio::sync::watch::channel(None::<Seen>);
        tokio::spawn(crate::whatsapp::watch(sender, stop, move |now, _| {
            let _ = tx.send(Some(now.clone()));
        }));
        let (db, name) = (self.db.clone(), name.to_string());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(seen) = rx.borrow_and_update().clone() else {
                    continue;
                };
                let _ = write_seen(&db, &name, seen).await;
            }
        });
    }

    /// Stops the session's driver (its sends in flight end `session-closed` and are retried
    /// once it runs again) and waits for its browser to close. Call under `ops`.
    async fn halt(&self, s: &Session, state: SessionState, detail: &str) {
        let running = s.running.lock().expect("running lock").take();
        s.set_idle(state, detail);
        let Some(r) = running else {
            return;
        };
        s.lane.set_sender(None);
        if let Some(me) = r.sender.me() {
            s.row.lock().expect("row lock").me = Some(me);
        }
        r.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(15), r.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(session = %s.name, "the browser of session {} did not close in 15s; killing it", s.name);
            r.sender.kill();
        }
        self.events
            .publish(Events::whatsapp_now(&s.name, s.status()));
    }

    /// Stores the session's row as it is in memory, and its state for the CLI.
    async fn store(&self, s: &Session) -> Result<(), SessionError> {
        self.store_row(s).await?;
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
    async fn store_row(&self, s: &Session) -> Result<(), SessionError> {
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

    /// Creates a session and, unless told not to, starts it.
    pub async fn create(&self, new: NewSession) -> Result<Arc<Session>, SessionError> {
        if !crate::config::valid_session_name(&new.name) {
            return Err(SessionError::Invalid(format!(
                "the name {:?} must match ^[a-z0-9][a-z0-9_-]{{0,31}}$",
                new.name
            )));
        }
        let _op = self.ops.lock().await;
        if self.get(&new.name).is_ok() {
            return Err(SessionError::Exists(new.name));
        }
        if new.start && new.driver == DriverKind::Webdriver {
            let running = self.browsers();
            if running >= self.max_browsers {
                return Err(SessionError::Capacity {
                    running,
                    max: self.max_browsers,
                });
            }
        }
        let now = crate::time::now_ms();
        let mut row = SessionRow::new(&new.name, new.driver, new.start, now);
        new.settings.apply(&mut row);
        let stored = row.clone();
        let inserted = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { rows::insert(c, &stored).await })
            })
            .await?;
        if !inserted {
            return Err(SessionError::Exists(new.name));
        }
        let s = self.register(row);
        tracing::info!(session = %s.name, driver = new.driver.as_str(), "📱 Session {} created", s.name);
        if new.start {
            self.launch(&s)?;
        }
        Ok(s)
    }

    /// Changes settings at run time; a browser setting restarts that browser only.
    pub async fn update(
        &self,
        name: &str,
        change: SessionChange,
    ) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        let relaunch = {
            let mut row = s.row.lock().expect("row lock");
            change.apply(&mut row) && row.driver == DriverKind::Webdriver
        };
        self.store(&s).await?;
        s.configure_lane();
        if relaunch && s.sender().is_some() {
            tracing::info!(
                session = name,
                "♻️ Session {name}: browser settings changed; starting its browser again"
            );
            self.halt(&s, SessionState::Restarting, "browser settings changed")
                .await;
            self.launch(&s)?;
        }
        Ok(s)
    }

    /// Starts a stopped session (and keeps it started across restarts).
    pub async fn start(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        self.launch(&s)?;
        s.row.lock().expect("row lock").started = true;
        self.store(&s).await?;
        Ok(s)
    }

    /// Stops a session (and keeps it stopped across restarts); its jobs wait.
    pub async fn stop(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        self.halt(&s, SessionState::Stopped, "stopped through the API")
            .await;
        s.row.lock().expect("row lock").started = false;
        self.store(&s).await?;
        tracing::info!(session = name, "⏹️ Session {name} stopped");
        Ok(s)
    }

    /// Restarts the session's browser with the same profile (no new scan); starts a stopped
    /// session.
    pub async fn restart(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let s = self.get(name)?;
        match s.sender() {
            Some(sender) if sender.restart("restart requested through the API") => Ok(s),
            Some(_) => {
                let _op = self.ops.lock().await;
                self.halt(&s, SessionState::Restarting, "restart requested")
                    .await;
                self.launch(&s)?;
                Ok(s)
            }
            None => self.start(name).await,
        }
    }

    /// Unlinks the device: the driver stops, the profile is deleted (the next start shows a
    /// new QR), and the session stays stopped in `logged_out`.
    pub async fn logout(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        self.halt(
            &s,
            SessionState::LoggedOut,
            "logged out through the API; start it to link again",
        )
        .await;
        driver::remove_profile(&self.config, name).map_err(|e| SessionError::Io(e.to_string()))?;
        {
            let mut row = s.row.lock().expect("row lock");
            row.started = false;
            row.me = None;
        }
        self.store(&s).await?;
        self.events
            .publish(Events::whatsapp_now(&s.name, s.status()));
        tracing::info!(
            session = name,
            "🚪 Session {name} logged out; its profile is deleted"
        );
        Ok(s)
    }

    /// Deletes a session: stops it, fails its waiting jobs (`session_deleted`), deletes its
    /// row and its profile.
    pub async fn delete(&self, name: &str) -> Result<u64, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        // No new job can name it from here on.
        self.map.write().expect("sessions lock").remove(name);
        self.halt(&s, SessionState::Stopped, "deleted").await;
        self.queue.close_lane(name).await;
        let failed = self.queue.fail_session(name).await?;
        let n = name.to_string();
        self.db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { rows::delete(c, &n).await })
            })
            .await?;
        driver::remove_session_dir(&self.config, name)
            .map_err(|e| SessionError::Io(e.to_string()))?;
        tracing::info!(session = name, failed, "🗑️ Session {name} deleted");
        Ok(failed)
    }

    /// Asks the session's WhatsApp Web for a pairing code for `phone`.
    pub async fn pairing_code(&self, name: &str, phone: &str) -> Result<String, SessionError> {
        let s = self.get(name)?;
        let sender = s
            .sender()
            .ok_or_else(|| SessionError::Stopped(name.to_string()))?;
        sender
            .pairing_code(phone)
            .await
            .map_err(|e| SessionError::Driver {
                code: e.code,
                message: e.message,
            })
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
