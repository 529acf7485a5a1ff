//! The wasmtime engine every plugin shares: policy in one place (epoch interruption, the
//! pooling allocator, async WASI bindings), the epoch ticker, and loading a file into a
//! pre-linked component for one hook.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::hooks::{Hook, Slot};
use super::state::{PluginInfo, State};
use super::{PluginError, bindings};
use crate::config::PluginConfig;

/// Epoch ticks per second: a plugin's time limit is counted in these.
pub(super) const TICK: Duration = Duration::from_millis(1);

/// Instances the pool holds at once: calls run on the callers' threads (the runtime's workers,
/// the CLI), one instance each, and reloads and checks need a few more.
const POOL_INSTANCES: u32 = 128;
/// Bytes of a plugin's linear memory reset in place after a call rather than handed back to
/// the kernel, when the kernel can say which pages the call touched (Linux 6.7+ PAGEMAP_SCAN).
/// A Rust guest's stack, data and small heap fit; giving the pages back and faulting them in
/// again was most of the cost of a call.
const KEEP_RESIDENT: usize = 2 << 20;

/// The largest `memory` limit a plugin may have (the pool reserves this much per memory slot).
pub const MAX_PLUGIN_MEMORY: usize = 256 << 20;

/// The wasmtime engine and linker, shared by every plugin, with the epoch ticker.
pub struct PluginHost {
    pub(super) engine: Engine,
    linker: Linker<State>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl PluginHost {
    pub fn new() -> anyhow::Result<Arc<PluginHost>> {
        // With PAGEMAP_SCAN only the pages a call dirtied are reset; without it a reset would
        // memset all of KEEP_RESIDENT, so pages go back to the kernel instead.
        let engine = engine(true).or_else(|_| engine(false))?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::all::GatewayPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticker_engine.increment_epoch();
                }
            })?;
        Ok(Arc::new(PluginHost {
            engine,
            linker,
            stop_ticker,
        }))
    }

    /// Loads and checks one plugin file for hook `H`: present, matching its pin, a component,
    /// and serving the hook.
    pub(super) fn load<H: Hook>(
        &self,
        cfg: &PluginConfig,
        path: &Path,
    ) -> Result<Slot<H>, PluginError> {
        let (info, pre) = self.link(cfg, path)?;
        let pre = H::pre(pre).map_err(|e| PluginError::WrongWorld {
            plugin: cfg.name.clone(),
            path: path.to_path_buf(),
            hook: H::HOOK,
            reason: format!("{e:#}"),
        })?;
        Ok(Slot { info, pre })
    }

    /// The file as a component linked against what the gateway offers.
    fn link(
        &self,
        cfg: &PluginConfig,
        path: &Path,
    ) -> Result<(Arc<PluginInfo>, InstancePre<State>), PluginError> {
        let (plugin, file) = (cfg.name.clone(), path.to_path_buf());
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            plugin: plugin.clone(),
            path: file.clone(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(pin) = &cfg.sha256
            && !pin.eq_ignore_ascii_case(&sha256)
        {
            return Err(PluginError::PinMismatch {
                plugin,
                path: file,
                found: sha256,
                pinned: pin.clone(),
            });
        }
        let component = super::compile::component(&self.engine, &bytes).map_err(|reason| {
            PluginError::NotAComponent {
                plugin: plugin.clone(),
                path: file.clone(),
                reason,
            }
        })?;
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| PluginError::MissingImports {
                    plugin,
                    path: file.clone(),
                    reason: format!("{e:#}"),
                })?;
        Ok((Arc::new(PluginInfo::new(cfg, file, sha256)), pre))
    }
}

/// The engine: epoch deadlines, and instances from a pool of pre-reserved slots (mapping and
/// unmapping linear memory for every fresh instance cost ~150 µs a call).
fn engine(pagemap: bool) -> anyhow::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(8 * POOL_INSTANCES)
        .total_memories(2 * POOL_INSTANCES)
        .total_tables(8 * POOL_INSTANCES)
        .total_stacks(POOL_INSTANCES)
        .max_memory_size(MAX_PLUGIN_MEMORY);
    if pagemap {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
    }
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config.memory_reservation(MAX_PLUGIN_MEMORY as u64);
    Ok(Engine::new(&config)?)
}
