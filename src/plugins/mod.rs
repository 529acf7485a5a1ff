//! WASM plugins own the rules: the four hooks run as sandboxed components named in
//! gateway.toml, so a deployment changes its rules by swapping a `.wasm` file.
//!
//! Every call gets a fresh store instantiated from a pre-linked component (nothing leaks between
//! calls), an epoch deadline (CPU time) and a memory limit, on the caller's thread. By job:
//! `engine` (wasmtime policy, the ticker, loading a file), `state` (what a plugin sees in a
//! call, and each plugin's figures), `call` (one call with limits, traps in words), `hooks` (the
//! four hooks as types), `set` (the loaded set, reload, the gateway's `Hooks`), `cli` (`plugin
//! check` and `plugin call`), `compile` (in a child process, so Cranelift never stays resident
//! in the server), `error` (what can go wrong, typed).

mod bindings;
mod call;
mod cli;
mod compile;
mod engine;
mod error;
mod hooks;
mod set;
mod state;

pub use cli::{CallInput, call_file, check_file};
pub use compile::{compile_in_child, precompile_stdio};
pub use engine::{MAX_PLUGIN_MEMORY, PluginHost};
pub use error::PluginError;
pub use set::PluginHooks;
pub use state::PluginInfo;
