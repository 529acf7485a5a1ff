//! Compiling a plugin, in a child process when the gateway runs as its own binary.
//!
//! Compiling a component runs Cranelift: megabytes of the binary's code and of heap on
//! several threads, which stay resident in a long-running server for nothing once the plugins
//! are loaded (16 MiB of the gateway's idle RSS with the four bundled plugins). So `serve` has
//! its own binary compile each plugin (`wa-gateway plugin precompile`, reading the component
//! on stdin and writing the compiled artifact on stdout) and only loads what comes back. Where
//! the gateway is not its own binary (tests that call `run()`, the plugin CLI), it compiles in
//! place, with the same engine and the same result.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use wasmtime::Engine;
use wasmtime::component::Component;

/// The gateway's own binary, once `serve` asks for compiling in a child process.
static CHILD: OnceLock<PathBuf> = OnceLock::new();

/// Compile plugins with `exe plugin precompile` from now on (`serve` passes its own binary).
pub fn compile_in_child(exe: PathBuf) {
    let _ = CHILD.set(exe);
}

/// The component in `bytes`, compiled for `engine`; the reason in words when it is not one.
pub(super) fn component(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    let Some(exe) = CHILD.get() else {
        return Component::from_binary(engine, bytes).map_err(|e| format!("{e:#}"));
    };
    let started = std::time::Instant::now();
    let compiled = in_child(exe, bytes)?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "🧩 plugin compiled in a child process"
    );
    // SAFETY: `compiled` is what `Engine::precompile_component` made of `bytes` just now, in a
    // child running this same binary with this same engine configuration (`PluginHost::new`),
    // read from the child's stdout pipe; nothing else wrote it. Wasmtime also checks its header
    // against this engine's version and settings and refuses a mismatch.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| format!("{e:#}"))
}

/// Runs `exe plugin precompile` with `bytes` on its stdin: the artifact, or the child's reason.
fn in_child(exe: &Path, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(exe)
        .args(["plugin", "precompile"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {} to compile it: {e}", exe.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written from another thread: the child's output may fill its pipe before it has read all.
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("compiling it in a child process failed: {e}"))?;
    let _ = writer.join();
    if out.status.success() {
        return Ok(out.stdout);
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(match said.is_empty() {
        true => format!("compiling it in a child process failed ({})", out.status),
        false => said,
    })
}

/// `wa-gateway plugin precompile`: the component on stdin, compiled for the gateway's engine,
/// to stdout; the reason when it is not one (the caller prints it, alone, on stderr).
pub fn precompile_stdio() -> Result<(), String> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
        .map_err(|e| format!("cannot read the component: {e}"))?;
    let host = super::PluginHost::new().map_err(|e| format!("{e:#}"))?;
    let compiled = host
        .engine
        .precompile_component(&bytes)
        .map_err(|e| format!("{e:#}"))?;
    std::io::stdout()
        .write_all(&compiled)
        .map_err(|e| format!("cannot write the compiled plugin: {e}"))
}
