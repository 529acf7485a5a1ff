//! One call with limits: a fresh store from the pre-linked component (nothing leaks between
//! calls), an epoch deadline (CPU time) and a memory limit, run on the caller's thread by
//! polling the call's future in place; its output goes to the log and a trap becomes a
//! [`PluginError`].

use std::future::Future;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::PluginError;
use super::engine::{PluginHost, TICK};
use super::hooks::{Hook, Slot};
use super::state::{PluginInfo, State};

/// Most bytes of a plugin's stdout or stderr kept per call.
const OUTPUT_CAP: usize = 16 * 1024;

/// The future of one plugin call (instantiate and run), borrowing its store.
pub(super) type CallFuture<'a, R> =
    std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

impl PluginHost {
    /// Calls the plugin in `slot` with `input`, in a fresh store with its limits, on this
    /// thread. Failures are logged and counted.
    pub(super) fn call<H: Hook>(
        &self,
        slot: &Slot<H>,
        input: &H::In,
    ) -> Result<H::Out, PluginError> {
        let info = &slot.info;
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
            &self.engine,
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
        let result = drive(H::invoke(&slot.pre, &mut store, input), info.time);
        let elapsed = start.elapsed();
        info.count_call(elapsed);
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
            info.count_failure();
            let error = describe(&e, info, &stderr, elapsed);
            tracing::error!(plugin = %info.name, hook = info.hook.as_str(), "🧩 plugin {} failed: {error}", info.name);
            error
        })
    }
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

/// A trap in words a plugin author can act on.
fn describe(
    e: &wasmtime::Error,
    info: &PluginInfo,
    stderr: &MemoryOutputPipe,
    elapsed: Duration,
) -> PluginError {
    let Some(trap) = e.downcast_ref::<wasmtime::Trap>() else {
        return PluginError::Failed(format!("{e:#}"));
    };
    if *trap == wasmtime::Trap::Interrupt {
        return PluginError::TimeLimit {
            elapsed,
            limit: info.time,
        };
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
        return PluginError::OutOfMemory {
            limit: info.memory,
            said,
        };
    }
    PluginError::Trapped {
        trap: trap.to_string(),
        said,
    }
}
