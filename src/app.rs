//! The state every handler shares: cheap to clone, built once in `run`.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use crate::auth::Keys;
use crate::auth::throttle::Throttle;
use crate::db::Db;
use crate::plugins::PluginHooks;
use crate::queue::Queue;

pub struct App {
    pub db: Db,
    pub keys: Keys,
    pub throttle: Throttle,
    pub queue: Arc<Queue>,
    /// The WhatsApp accounts, each with its driver and queue lane.
    pub sessions: Arc<crate::sessions::Sessions>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The plugin host, when gateway.toml names plugins.
    pub plugins: Option<Arc<PluginHooks>>,
    pub templates: BTreeMap<String, String>,
    /// Files to send: `[media]`'s rules and the guarded URL fetcher.
    pub media: Arc<crate::media::Media>,
    pub max_body_bytes: usize,
    /// Longest a request may take (the event stream is exempt).
    pub request_timeout: std::time::Duration,
    /// One permit per `GET /api/events` client.
    pub event_streams: Arc<tokio::sync::Semaphore>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
