//! A session as the API shows it.

use serde::Serialize;

use super::Session;
use crate::config::{DriverKind, PacingOverrides};
use crate::queue::{PacingView, Queue};
use crate::whatsapp::SessionState;

/// A session's jobs by state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionsQueue {
    pub waiting: i64,
    pub active: i64,
    pub completed: i64,
    pub failed: i64,
}

/// One session: its driver's state and its queue lane.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub name: String,
    pub driver: DriverKind,
    pub state: SessionState,
    /// What the driver says about its state, for people.
    pub detail: String,
    /// RFC 3339 time the state began.
    pub since: String,
    /// The account's own number (digits) once known.
    pub me: Option<String>,
    /// The gateway node that runs it (`[cluster] node_id`); null while no node does.
    pub node: Option<String>,
    /// Started again after a gateway restart.
    pub started: bool,
    pub paused: bool,
    /// Sends at once, as in force (its own setting, else the default for its driver).
    pub concurrency: u32,
    /// Extra browser flags of this session.
    pub browser_args: Vec<String>,
    /// Bytes; null: `[whatsapp.webdriver] memory_limit`.
    pub memory_limit: Option<u64>,
    pub queue: SessionsQueue,
    /// How its pacing stands: when the next send may go, what was sent, why it waits.
    pub pacing: PacingView,
    /// Its own pacing rules over `[pacing]` (empty: the file's alone).
    pub pacing_rules: PacingOverrides,
}

impl SessionView {
    /// The session, with its pacing as the queue sees it now.
    pub async fn of(s: &Session, queue: &Queue) -> SessionView {
        let pacing = queue.pacing_view(s.name()).await;
        let row = s.row();
        let status = s.status();
        let c = queue.counts_of(s.name());
        SessionView {
            name: row.name.clone(),
            driver: row.driver,
            state: status.state,
            detail: status.detail,
            since: status.since,
            me: s.me(),
            node: s.node(queue),
            started: row.started,
            paused: row.paused,
            concurrency: s.lane().concurrency(queue.settings().concurrency),
            browser_args: row.browser_args(),
            memory_limit: row.memory_limit.map(|m| m as u64),
            queue: SessionsQueue {
                waiting: c.waiting,
                active: c.active,
                completed: c.completed,
                failed: c.failed,
            },
            pacing,
            pacing_rules: s.pacing(),
        }
    }
}
