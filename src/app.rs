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
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The plugin host, when gateway.toml names plugins.
    pub plugins: Option<Arc<PluginHooks>>,
    pub templates: BTreeMap<String, String>,
    pub max_body_bytes: usize,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
