//! `[[plugins]]`: which WASM component serves which hook, with its settings and limits.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ByteSize, Dur, Invalid};

/// Where a plugin plugs in (also `wa-gateway plugin call --hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PluginHook {
    FormatNumber,
    ClassifyError,
    Render,
    AssignPriority,
    Pace,
    OnMessage,
}

impl PluginHook {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginHook::FormatNumber => "format-number",
            PluginHook::ClassifyError => "classify-error",
            PluginHook::Render => "render",
            PluginHook::AssignPriority => "assign-priority",
            PluginHook::Pace => "pace",
            PluginHook::OnMessage => "on-message",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique; shows in logs and the API.
    pub name: String,
    pub hook: PluginHook,
    /// The `.wasm` component, relative to the config file's folder unless absolute.
    pub path: PathBuf,
    /// Optional pin: a file whose SHA-256 differs is refused.
    pub sha256: Option<String>,
    /// Strings the plugin reads with `host.config(key)`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: PluginLimits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// CPU time per call.
    pub time: Dur,
    /// Memory per instance, e.g. "16MiB".
    pub memory: ByteSize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            time: Dur::millis(20),
            memory: ByteSize(16 << 20),
        }
    }
}

/// Names unique, one plugin per hook, limits that leave room to run.
pub(super) fn validate(plugins: &[PluginConfig]) -> Result<(), Invalid> {
    let mut names = HashSet::new();
    let mut hooks = HashSet::new();
    for p in plugins {
        if p.name.is_empty() || !names.insert(p.name.as_str()) {
            return Err(Invalid::new(
                "plugins",
                format!("plugin names must be unique and not empty ({:?})", p.name),
            ));
        }
        if !hooks.insert(p.hook) {
            return Err(Invalid::new(
                "plugins",
                format!("two plugins for hook {}; one per hook", p.hook.as_str()),
            ));
        }
        if p.limits.time.0.is_zero() || p.limits.memory.0 < (1 << 20) {
            return Err(Invalid::new(
                "plugins.limits",
                format!(
                    "plugin {}: time must be above zero and memory at least 1MiB",
                    p.name
                ),
            ));
        }
    }
    Ok(())
}
