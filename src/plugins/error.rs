//! What can go wrong with a plugin, as types: loading a file (each refusal names the plugin and
//! the file) and calling it (the trap in words a plugin author can act on).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::PluginHook;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: cannot read {}: {source}", path.display())]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {plugin}: {} has sha256 {found}, but gateway.toml pins {pinned}; refusing a changed file", path.display())]
    PinMismatch {
        plugin: String,
        path: PathBuf,
        found: String,
        pinned: String,
    },
    #[error("plugin {plugin}: {} is not a WebAssembly component: {reason}", path.display())]
    NotAComponent {
        plugin: String,
        path: PathBuf,
        reason: String,
    },
    #[error("plugin {plugin}: {} needs imports the gateway does not offer: {reason}", path.display())]
    MissingImports {
        plugin: String,
        path: PathBuf,
        reason: String,
    },
    #[error("plugin {plugin}: {} does not serve hook {} (wrong world?): {reason}", path.display(), hook.as_str())]
    WrongWorld {
        plugin: String,
        path: PathBuf,
        hook: PluginHook,
        reason: String,
    },
    #[error("{}", engine_words(.0))]
    Engine(String),
    #[error("stopped after {} (time limit {})", ms(*elapsed), ms(*limit))]
    TimeLimit { elapsed: Duration, limit: Duration },
    #[error("ran out of memory (limit {limit} bytes): {said}")]
    OutOfMemory { limit: usize, said: String },
    #[error("trapped ({trap}){}", if said.is_empty() { String::new() } else { format!(": {said}") })]
    Trapped { trap: String, said: String },
    /// Any other failure of the call (a host error, a broken component).
    #[error("{0}")]
    Failed(String),
}

fn engine_words(e: &str) -> String {
    format!("cannot start the plugin engine: {e}")
}

fn ms(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}
