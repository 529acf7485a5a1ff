//! Sessions: the WhatsApp accounts one gateway serves. Each has its own driver (browser,
//! profile, QR, state machine, keep-alive and restart back-off) and its own queue lane, so
//! one account's trouble never holds another's messages.
//!
//! The registry owns the lifecycle: created, started, stopped, restarted, logged out and
//! deleted at run time; stored in the database so that a restart brings back the sessions
//! that were running. `default` is `[whatsapp]`; `[[sessions]]` may declare more.

pub(crate) mod driver;
mod feeds;
mod lifecycle;
mod ownership;
mod profile;
mod registry;
mod remote;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ByteSize, Config, DriverKind, PacingConfig, PacingOverrides};
use crate::db::sessions::SessionRow;
use crate::db::{Db, DbError};
use crate::events::Events;
use crate::queue::{DefaultConcurrency, Lane, Queue};
use crate::whatsapp::{MessageSender, SessionState, WhatsAppStatus};

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
    /// The session runs but cannot answer now (not connected, restarting, too slow).
    #[error("{code}: {message}")]
    NotReady { code: String, message: String },
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

/// Whether a number is on WhatsApp, as a session's driver answered.
#[derive(Debug, Clone, Copy)]
pub struct NumberCheck {
    pub exists: bool,
    /// When the driver was asked (ms).
    pub checked_at: i64,
    /// The answer came from the cache (`number_check_ttl`).
    pub cached: bool,
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
    /// Its own pacing rules, replacing the ones it had (`{}`: `[pacing]` alone).
    pub pacing: Option<PacingOverrides>,
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
        if let Some(own) = &self.pacing {
            row.pacing = (*own != PacingOverrides::default())
                .then(|| serde_json::to_string(own).ok())
                .flatten();
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
    /// Number checks: number → (on WhatsApp, when asked, ms).
    checks: Mutex<std::collections::HashMap<String, (bool, i64)>>,
    /// The node that runs it, when that is another node: its state, QR code and account are
    /// then the ones that node wrote into the row.
    elsewhere: Mutex<Option<String>>,
    /// When its login was last snapshotted in this run (system ms; 0: not yet).
    snapshot_at: std::sync::atomic::AtomicI64,
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

    /// The node that runs the session: this one, another, or none.
    pub fn node(&self, queue: &Queue) -> Option<String> {
        match self.lane.owned() {
            Some(_) => Some(queue.node().id().to_string()),
            None => self.elsewhere(),
        }
    }

    /// The node that runs the session, when another node does.
    pub fn elsewhere(&self) -> Option<String> {
        self.elsewhere.lock().expect("elsewhere lock").clone()
    }

    /// The driver's status, or why there is none (as its owner wrote it, when another node
    /// runs it).
    pub fn status(&self) -> WhatsAppStatus {
        match self.sender() {
            Some(s) => s.status(),
            None if self.elsewhere().is_some() => {
                let row = self.row();
                WhatsAppStatus {
                    state: row
                        .state
                        .as_deref()
                        .and_then(SessionState::parse)
                        .unwrap_or(SessionState::Starting),
                    detail: row.detail.unwrap_or_default(),
                    driver: row.driver.as_str(),
                    since: crate::time::rfc3339(row.updated_at),
                }
            }
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

    /// The QR code awaiting a scan, from the driver or (run elsewhere) from the row.
    pub fn qr(&self) -> Option<String> {
        match self.sender() {
            Some(s) => s.qr(),
            None if self.elsewhere().is_some() => self.row().qr,
            None => None,
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

    /// The session's own pacing rules.
    pub fn pacing(&self) -> PacingOverrides {
        self.row
            .lock()
            .expect("row lock")
            .pacing
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    fn configure_lane(&self, pacing: &PacingConfig) {
        let row = self.row();
        let default = match row.driver {
            DriverKind::Webdriver => DefaultConcurrency::One,
            DriverKind::Sandbox => DefaultConcurrency::Queue,
        };
        self.lane
            .configure(row.concurrency.map(|c| c as u32), default, row.paused);
        // Checked when set; a stored value the file no longer allows falls back to the file.
        let resolved = pacing.resolve(&self.pacing()).or_else(|e| {
            tracing::warn!(session = %self.name, "session {}: its pacing rules no longer hold ({e}); [pacing] applies", self.name);
            pacing.resolve(&PacingOverrides::default())
        });
        self.lane.set_pacing(resolved.ok().filter(|p| p.enabled));
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
    /// This node: the sessions it runs are the ones it holds a lease of.
    node: Arc<crate::cluster::Node>,
    /// Wakes the ownership loop (a session was started, stopped or changed).
    rebalance: tokio::sync::Notify,
    /// Started sessions no node runs, since when (system ms).
    free_since: Mutex<std::collections::HashMap<String, i64>>,
}

/// One browser per this much available memory, when `max_browsers` is not set.
const MEMORY_PER_BROWSER: u64 = 600 << 20;
