//! WASM plugins own the rules: the four hooks run as sandboxed components named in
//! gateway.toml, so a deployment changes its rules by swapping a `.wasm` file.
//!
//! Every call gets a fresh store instantiated from a pre-linked component (nothing leaks between
//! calls), an epoch deadline (CPU time) and a memory limit. Calls run on the caller's thread: the
//! bindings are async so WASI never has to block on the tokio runtime, and the call's future is
//! polled to its end in place (a thread hand-off cost more than the call itself). A plugin that fails at a request-time
//! hook gives a clear error; at a worker-time hook the built-in rule decides. Either way the
//! failure is logged and counted, and the gateway stays up.

mod bindings;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::config::{PluginConfig, PluginHook};
use crate::domain::Priority;
use crate::hooks::{Builtin, Failure, HookError, Hooks, Outgoing, Verdict};
use bindings::{classifier, formatter, prioritizer, templater};

/// Epoch ticks per second: a plugin's time limit is counted in these.
const TICK: Duration = Duration::from_millis(1);
/// Most bytes of a plugin's stdout or stderr kept per call.
const OUTPUT_CAP: usize = 16 * 1024;

/// What a loaded plugin is and how it has done.
pub struct PluginInfo {
    pub name: String,
    pub hook: PluginHook,
    pub path: PathBuf,
    pub sha256: String,
    config: BTreeMap<String, String>,
    time: Duration,
    memory: usize,
    calls: AtomicU64,
    failures: AtomicU64,
    total_nanos: AtomicU64,
}

impl PluginInfo {
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

/// The per-call store data: an empty WASI context (no files, env, args or network), captured
/// output, limits, and the plugin's own settings.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    info: Arc<PluginInfo>,
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

enum Kind {
    Formatter(formatter::NumberFormatterPre<State>),
    Classifier(classifier::ErrorClassifierPre<State>),
    Templater(templater::MessageTemplaterPre<State>),
    Prioritizer(prioritizer::PriorityAssignerPre<State>),
}

struct Loaded {
    info: Arc<PluginInfo>,
    kind: Kind,
}

/// The wasmtime engine and linker, shared by every plugin, with the epoch ticker.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<State>,
    stop_ticker: Arc<AtomicBool>,
}

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

    /// Loads and checks one plugin file: present, matching its pin, a component, and serving
    /// its hook. The error says which file and what is wrong.
    fn load(&self, cfg: &PluginConfig, path: &Path) -> Result<Loaded, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("plugin {}: cannot read {}: {e}", cfg.name, path.display()))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(pin) = &cfg.sha256
            && !pin.eq_ignore_ascii_case(&sha256)
        {
            return Err(format!(
                "plugin {}: {} has sha256 {sha256}, but gateway.toml pins {pin}; refusing a changed file",
                cfg.name,
                path.display()
            ));
        }
        let component = Component::from_binary(&self.engine, &bytes).map_err(|e| {
            format!(
                "plugin {}: {} is not a WebAssembly component: {e:#}",
                cfg.name,
                path.display()
            )
        })?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            format!(
                "plugin {}: {} needs imports the gateway does not offer: {e:#}",
                cfg.name,
                path.display()
            )
        })?;
        let wrong = |e: wasmtime::Error| {
            format!(
                "plugin {}: {} does not serve hook {} (wrong world?): {e:#}",
                cfg.name,
                path.display(),
                cfg.hook.as_str()
            )
        };
        let kind = match cfg.hook {
            PluginHook::FormatNumber => {
                Kind::Formatter(formatter::NumberFormatterPre::new(pre).map_err(wrong)?)
            }
            PluginHook::ClassifyError => {
                Kind::Classifier(classifier::ErrorClassifierPre::new(pre).map_err(wrong)?)
            }
            PluginHook::Render => {
                Kind::Templater(templater::MessageTemplaterPre::new(pre).map_err(wrong)?)
            }
            PluginHook::AssignPriority => {
                Kind::Prioritizer(prioritizer::PriorityAssignerPre::new(pre).map_err(wrong)?)
            }
        };
        Ok(Loaded {
            info: Arc::new(PluginInfo {
                name: cfg.name.clone(),
                hook: cfg.hook,
                path: path.to_path_buf(),
                sha256,
                config: cfg.config.clone(),
                time: cfg.limits.time.0,
                memory: cfg.limits.memory.0,
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                total_nanos: AtomicU64::new(0),
            }),
            kind,
        })
    }

    /// One call in a fresh store with the plugin's limits, on this thread. Its stdout/stderr go
    /// to the log.
    fn call<R, F>(&self, loaded: &Loaded, f: F) -> Result<R, String>
    where
        F: for<'a> FnOnce(&'a mut Store<State>, &'a Kind) -> CallFuture<'a, R>,
    {
        call_in_fresh_store(&self.engine, loaded, f)
    }
}

/// The future of one plugin call (instantiate and run), borrowing its store.
type CallFuture<'a, R> = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

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

/// Polls a call's future to its end on this thread. It only waits when the plugin waits on a
/// WASI clock, and such a wait is cut at the plugin's time limit (the epoch deadline cannot
/// interrupt host code).
fn drive<R>(
    fut: impl Future<Output = wasmtime::Result<R>>,
    limit: Duration,
) -> wasmtime::Result<R> {
    // WASI's clocks need a tokio context to register a timer; outside the gateway's runtime
    // (the CLI, benchmarks) a small idle one stands in.
    static IDLE: LazyLock<Option<tokio::runtime::Runtime>> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()
    });
    let _ctx = match tokio::runtime::Handle::try_current() {
        Ok(_) => None,
        Err(_) => IDLE.as_ref().map(|rt| rt.enter()),
    };
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    loop {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return r;
        }
        if start.elapsed() >= limit {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn call_in_fresh_store<R, F>(engine: &Engine, loaded: &Loaded, f: F) -> Result<R, String>
where
    F: for<'a> FnOnce(&'a mut Store<State>, &'a Kind) -> CallFuture<'a, R>,
{
    let info = &loaded.info;
    let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
    let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .build();
    let limits = StoreLimitsBuilder::new()
        .memory_size(info.memory)
        .instances(64)
        .tables(64)
        .memories(16)
        .build();
    let mut store = Store::new(
        engine,
        State {
            wasi,
            table: ResourceTable::new(),
            limits,
            info: info.clone(),
        },
    );
    store.limiter(|s| &mut s.limits);
    let ticks = (info.time.as_micros() / TICK.as_micros()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();

    let start = Instant::now();
    let result = drive(f(&mut store, &loaded.kind), info.time);
    let elapsed = start.elapsed();
    info.calls.fetch_add(1, Ordering::Relaxed);
    info.total_nanos
        .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    for (stream, pipe) in [("stdout", &stdout), ("stderr", &stderr)] {
        let text = pipe.contents();
        for line in String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            tracing::info!(plugin = %info.name, stream, "🧩 {line}");
        }
    }
    result.map_err(|e| {
        info.failures.fetch_add(1, Ordering::Relaxed);
        let reason = describe(&e, info, &stderr, elapsed);
        tracing::error!(plugin = %info.name, hook = info.hook.as_str(), "🧩 plugin {} failed: {reason}", info.name);
        reason
    })
}

/// A trap in words a plugin author can act on.
fn describe(
    e: &wasmtime::Error,
    info: &PluginInfo,
    stderr: &MemoryOutputPipe,
    elapsed: Duration,
) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        if *trap == wasmtime::Trap::Interrupt {
            return format!(
                "stopped after {} (time limit {})",
                humantime::format_duration(round_ms(elapsed)),
                humantime::format_duration(info.time)
            );
        }
        // What the guest said before it died (a panic message, an allocation failure), without
        // Rust's hint about RUST_BACKTRACE.
        let text = String::from_utf8_lossy(&stderr.contents()).to_string();
        let said = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
            .collect::<Vec<_>>()
            .join(" ");
        if said.contains("memory allocation") || said.contains("capacity overflow") {
            return format!("ran out of memory (limit {} bytes): {said}", info.memory);
        }
        if !said.is_empty() {
            return format!("trapped ({trap}): {said}");
        }
        return format!("trapped: {trap}");
    }
    format!("{e:#}")
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// The loaded plugins, one per hook at most; swapped whole on reload.
#[derive(Default)]
struct PluginSet {
    formatter: Option<Arc<Loaded>>,
    classifier: Option<Arc<Loaded>>,
    templater: Option<Arc<Loaded>>,
    prioritizer: Option<Arc<Loaded>>,
}

impl PluginSet {
    fn all(&self) -> impl Iterator<Item = &Arc<Loaded>> {
        [
            &self.formatter,
            &self.classifier,
            &self.templater,
            &self.prioritizer,
        ]
        .into_iter()
        .flatten()
    }
}

/// [`Hooks`] served by plugins where configured, by [`Builtin`] elsewhere.
pub struct PluginHooks {
    host: Arc<PluginHost>,
    base_dir: PathBuf,
    configs: Vec<PluginConfig>,
    set: RwLock<Arc<PluginSet>>,
}

impl PluginHooks {
    /// Loads every configured plugin; any failure is an error naming the file.
    pub fn load(
        host: Arc<PluginHost>,
        configs: &[PluginConfig],
        base_dir: &Path,
    ) -> Result<PluginHooks, String> {
        let set = build_set(&host, configs, base_dir)?;
        for p in set.all() {
            tracing::info!(plugin = %p.info.name, hook = p.info.hook.as_str(), sha256 = %&p.info.sha256[..12], "🧩 Plugin loaded: {} for {}", p.info.name, p.info.hook.as_str());
        }
        Ok(PluginHooks {
            host,
            base_dir: base_dir.to_path_buf(),
            configs: configs.to_vec(),
            set: RwLock::new(Arc::new(set)),
        })
    }

    fn current(&self) -> Arc<PluginSet> {
        self.set.read().expect("plugin set lock").clone()
    }

    /// Loads and checks every plugin again from disk, then swaps them in at once. On any
    /// failure the old set stays and the error says why.
    pub fn reload(&self) -> Result<usize, String> {
        let set = build_set(&self.host, &self.configs, &self.base_dir)?;
        let n = set.all().count();
        *self.set.write().expect("plugin set lock") = Arc::new(set);
        tracing::info!(plugins = n, "🧩 Plugins reloaded");
        Ok(n)
    }

    /// Each loaded plugin's facts and figures.
    pub fn list(&self) -> Vec<Arc<PluginInfo>> {
        self.current().all().map(|p| p.info.clone()).collect()
    }
}

fn build_set(
    host: &PluginHost,
    configs: &[PluginConfig],
    base_dir: &Path,
) -> Result<PluginSet, String> {
    let mut set = PluginSet::default();
    for cfg in configs {
        let path = if cfg.path.is_absolute() {
            cfg.path.clone()
        } else {
            base_dir.join(&cfg.path)
        };
        let loaded = Some(Arc::new(host.load(cfg, &path)?));
        match cfg.hook {
            PluginHook::FormatNumber => set.formatter = loaded,
            PluginHook::ClassifyError => set.classifier = loaded,
            PluginHook::Render => set.templater = loaded,
            PluginHook::AssignPriority => set.prioritizer = loaded,
        }
    }
    Ok(set)
}

fn failed(p: &Loaded, reason: String) -> HookError {
    HookError::Failed {
        plugin: p.info.name.clone(),
        reason,
    }
}

impl Hooks for PluginHooks {
    fn format_number(&self, raw: &str) -> Result<String, HookError> {
        let set = self.current();
        let Some(p) = &set.formatter else {
            return Builtin.format_number(raw);
        };
        let raw = raw.to_string();
        let r = self.host.call(p, |store, kind| {
            Box::pin(async move {
                match kind {
                    Kind::Formatter(pre) => {
                        let plugin = pre.instantiate_async(&mut *store).await?;
                        plugin.call_format_number(&mut *store, &raw).await
                    }
                    _ => unreachable!("the formatter slot holds a formatter"),
                }
            })
        });
        match r {
            Ok(Ok(digits)) => Ok(digits),
            Ok(Err(why)) => Err(HookError::Rejected(why)),
            Err(reason) => Err(failed(p, reason)),
        }
    }

    fn classify_error(&self, failure: &Failure) -> Verdict {
        let set = self.current();
        let Some(p) = &set.classifier else {
            return Builtin.classify_error(failure);
        };
        let arg = bindings::Failure {
            code: failure.code.clone(),
            message: failure.message.clone(),
            attempt: failure.attempt,
        };
        let r = self.host.call(p, |store, kind| {
            Box::pin(async move {
                match kind {
                    Kind::Classifier(pre) => {
                        let plugin = pre.instantiate_async(&mut *store).await?;
                        plugin.call_classify_error(&mut *store, &arg).await
                    }
                    _ => unreachable!("the classifier slot holds a classifier"),
                }
            })
        });
        match r {
            Ok(bindings::Verdict::Retry(ms)) => Verdict::Retry(ms.map(Duration::from_millis)),
            Ok(bindings::Verdict::Permanent(reason)) => Verdict::Permanent(reason),
            Err(_) => Builtin.classify_error(failure),
        }
    }

    fn render(&self, template: &str, variables: &[(String, String)]) -> Result<String, HookError> {
        let set = self.current();
        let Some(p) = &set.templater else {
            return Builtin.render(template, variables);
        };
        let (template, variables) = (template.to_string(), variables.to_vec());
        let r = self.host.call(p, |store, kind| {
            Box::pin(async move {
                match kind {
                    Kind::Templater(pre) => {
                        let plugin = pre.instantiate_async(&mut *store).await?;
                        plugin.call_render(&mut *store, &template, &variables).await
                    }
                    _ => unreachable!("the templater slot holds a templater"),
                }
            })
        });
        match r {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(why)) => Err(HookError::Rejected(why)),
            Err(reason) => Err(failed(p, reason)),
        }
    }

    fn assign_priority(&self, message: &Outgoing) -> Result<Priority, HookError> {
        let set = self.current();
        let Some(p) = &set.prioritizer else {
            return Builtin.assign_priority(message);
        };
        let to_wit = |p: Priority| match p {
            Priority::High => bindings::Priority::High,
            Priority::Normal => bindings::Priority::Normal,
            Priority::Low => bindings::Priority::Low,
        };
        let arg = bindings::Outgoing {
            number: message.number.clone(),
            chat_id: message.chat_id.clone(),
            text: message.text.clone(),
            template: message.template.clone(),
            requested: message.requested.map(to_wit),
            metadata: message.metadata.clone(),
        };
        let r = self.host.call(p, |store, kind| {
            Box::pin(async move {
                match kind {
                    Kind::Prioritizer(pre) => {
                        let plugin = pre.instantiate_async(&mut *store).await?;
                        plugin.call_assign_priority(&mut *store, &arg).await
                    }
                    _ => unreachable!("the prioritizer slot holds a prioritizer"),
                }
            })
        });
        match r {
            Ok(bindings::Priority::High) => Ok(Priority::High),
            Ok(bindings::Priority::Normal) => Ok(Priority::Normal),
            Ok(bindings::Priority::Low) => Ok(Priority::Low),
            Err(reason) => Err(failed(p, reason)),
        }
    }
}

/// For `wa-gateway plugin check`: which hooks a file serves, and its sha256.
pub fn check_file(path: &Path) -> Result<(String, Vec<PluginHook>), String> {
    let host = PluginHost::new().map_err(|e| format!("{e:#}"))?;
    let mut served = Vec::new();
    let mut sha = String::new();
    let mut first_error = None;
    for hook in [
        PluginHook::FormatNumber,
        PluginHook::ClassifyError,
        PluginHook::Render,
        PluginHook::AssignPriority,
    ] {
        let cfg = cli_config(path, hook, BTreeMap::new());
        match host.load(&cfg, path) {
            Ok(loaded) => {
                sha = loaded.info.sha256.clone();
                served.push(hook);
            }
            Err(e) if e.contains("does not serve hook") => {}
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match (served.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(format!(
            "{} serves none of the hooks (format-number, classify-error, render, assign-priority)",
            path.display()
        )),
        (false, _) => Ok((sha, served)),
    }
}

fn cli_config(path: &Path, hook: PluginHook, config: BTreeMap<String, String>) -> PluginConfig {
    PluginConfig {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "plugin".into()),
        hook,
        path: path.to_path_buf(),
        sha256: None,
        config,
        limits: Default::default(),
    }
}

/// What `wa-gateway plugin call` passes to a hook.
pub enum CallInput {
    FormatNumber(String),
    ClassifyError(Failure),
    Render(String, Vec<(String, String)>),
    AssignPriority(Outgoing),
}

/// For `wa-gateway plugin call`: one call through the same host the gateway uses. `Ok` is the
/// hook's answer in words; `Err` is a failure of the plugin or of loading it.
pub fn call_file(
    path: &Path,
    config: BTreeMap<String, String>,
    input: CallInput,
) -> Result<String, String> {
    let hook = match &input {
        CallInput::FormatNumber(_) => PluginHook::FormatNumber,
        CallInput::ClassifyError(_) => PluginHook::ClassifyError,
        CallInput::Render(..) => PluginHook::Render,
        CallInput::AssignPriority(_) => PluginHook::AssignPriority,
    };
    let host = PluginHost::new().map_err(|e| format!("{e:#}"))?;
    let cfg = cli_config(path, hook, config);
    let loaded = Arc::new(host.load(&cfg, path)?);
    // The gateway's own hook code, with this one plugin in its slot.
    let mut set = PluginSet::default();
    let slot = match hook {
        PluginHook::FormatNumber => &mut set.formatter,
        PluginHook::ClassifyError => &mut set.classifier,
        PluginHook::Render => &mut set.templater,
        PluginHook::AssignPriority => &mut set.prioritizer,
    };
    *slot = Some(loaded.clone());
    let hooks = PluginHooks {
        host,
        base_dir: PathBuf::new(),
        configs: Vec::new(),
        set: RwLock::new(Arc::new(set)),
    };
    let words = |r: Result<String, HookError>| match r {
        Ok(v) => Ok(format!("ok: {v}")),
        Err(HookError::Rejected(why)) => Ok(format!("rejected: {why}")),
        Err(HookError::Failed { reason, .. }) => Err(reason),
    };
    let answer = match input {
        CallInput::FormatNumber(raw) => words(hooks.format_number(&raw))?,
        CallInput::Render(template, vars) => words(hooks.render(&template, &vars))?,
        CallInput::AssignPriority(m) => {
            words(hooks.assign_priority(&m).map(|p| p.as_str().to_string()))?
        }
        CallInput::ClassifyError(f) => {
            // At this hook the gateway hides a failure behind its built-in rule; the author
            // needs to see it.
            let verdict = hooks.classify_error(&f);
            if loaded.info.failures() > 0 {
                return Err("the plugin failed (the reason is in the log above); the gateway would use its built-in rule".into());
            }
            match verdict {
                Verdict::Retry(None) => "retry (after the queue's backoff)".to_string(),
                Verdict::Retry(Some(d)) => format!("retry after {} ms", d.as_millis()),
                Verdict::Permanent(reason) => format!("permanent: {reason}"),
            }
        }
    };
    let us = loaded.info.mean_micros();
    Ok(format!("{answer}   ({us:.0} µs)"))
}
