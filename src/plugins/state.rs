//! What a plugin sees during one call (the store's data): an empty WASI context (no files,
//! environment, arguments or network), its captured output, its limits and its own settings;
//! and what the gateway knows of each loaded plugin (its facts and call figures).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings;
use crate::config::PluginHook;

/// What a loaded plugin is and how it has done.
pub struct PluginInfo {
    pub name: String,
    pub hook: PluginHook,
    pub path: PathBuf,
    pub sha256: String,
    pub(super) config: BTreeMap<String, String>,
    pub(super) time: Duration,
    pub(super) memory: usize,
    calls: AtomicU64,
    failures: AtomicU64,
    total_nanos: AtomicU64,
}

impl PluginInfo {
    pub(super) fn new(
        cfg: &crate::config::PluginConfig,
        path: PathBuf,
        sha256: String,
    ) -> PluginInfo {
        PluginInfo {
            name: cfg.name.clone(),
            hook: cfg.hook,
            path,
            sha256,
            config: cfg.config.clone(),
            time: cfg.limits.time.0,
            memory: cfg.limits.memory.0,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            total_nanos: AtomicU64::new(0),
        }
    }

    pub(super) fn count_call(&self, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.total_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(super) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// Wall time of all calls, in seconds.
    pub fn total_seconds(&self) -> f64 {
        self.total_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
    /// Mean wall time of a call (instantiate + run), in microseconds.
    pub fn mean_micros(&self) -> f64 {
        let calls = self.calls().max(1);
        self.total_nanos.load(Ordering::Relaxed) as f64 / calls as f64 / 1000.0
    }
}

/// The per-call store data.
pub(super) struct State {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) info: Arc<PluginInfo>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::Host for State {
    fn log(&mut self, level: bindings::Level, message: String) {
        let plugin = self.info.name.as_str();
        match level {
            bindings::Level::Trace => tracing::trace!(plugin, "🧩 {message}"),
            bindings::Level::Debug => tracing::debug!(plugin, "🧩 {message}"),
            bindings::Level::Info => tracing::info!(plugin, "🧩 {message}"),
            bindings::Level::Warn => tracing::warn!(plugin, "🧩 {message}"),
            bindings::Level::Error => tracing::error!(plugin, "🧩 {message}"),
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.info.config.get(&key).cloned()
    }
}

impl bindings::all::wa_gateway::plugin::types::Host for State {}
