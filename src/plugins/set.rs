//! The loaded plugins, at most one per hook in a typed slot, swapped whole on reload, and the
//! gateway's [`Hooks`] served by them: a plugin where one is configured, the built-in rule
//! elsewhere. A plugin that fails at a request-time hook is an error for that request; at the
//! worker-time hook (classify-error) the built-in rule decides.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::hooks::{self, Hook, Slot};
use super::{PluginError, PluginHost, PluginInfo};
use crate::config::{PluginConfig, PluginHook};
use crate::domain::Priority;
use crate::hooks::{
    Answer, Builtin, Failure, HookError, Hooks, Outgoing, PaceRequest, Paced, Received, Verdict,
};

/// One loaded plugin per hook at most.
#[derive(Default)]
pub(super) struct PluginSet {
    format_number: Option<Slot<hooks::FormatNumber>>,
    classify_error: Option<Slot<hooks::ClassifyError>>,
    render: Option<Slot<hooks::Render>>,
    assign_priority: Option<Slot<hooks::AssignPriority>>,
    pace: Option<Slot<hooks::Pace>>,
    on_message: Option<Slot<hooks::OnMessage>>,
}

impl PluginSet {
    /// Loads every configured plugin into its hook's slot; the first failure is the error.
    pub(super) fn load(
        host: &PluginHost,
        configs: &[PluginConfig],
        base_dir: &Path,
    ) -> Result<PluginSet, PluginError> {
        let mut set = PluginSet::default();
        for cfg in configs {
            let path = if cfg.path.is_absolute() {
                cfg.path.clone()
            } else {
                base_dir.join(&cfg.path)
            };
            match cfg.hook {
                PluginHook::FormatNumber => set.format_number = Some(host.load(cfg, &path)?),
                PluginHook::ClassifyError => set.classify_error = Some(host.load(cfg, &path)?),
                PluginHook::Render => set.render = Some(host.load(cfg, &path)?),
                PluginHook::AssignPriority => set.assign_priority = Some(host.load(cfg, &path)?),
                PluginHook::Pace => set.pace = Some(host.load(cfg, &path)?),
                PluginHook::OnMessage => set.on_message = Some(host.load(cfg, &path)?),
            }
        }
        Ok(set)
    }

    pub(super) fn infos(&self) -> Vec<Arc<PluginInfo>> {
        [
            self.format_number.as_ref().map(|s| &s.info),
            self.classify_error.as_ref().map(|s| &s.info),
            self.render.as_ref().map(|s| &s.info),
            self.assign_priority.as_ref().map(|s| &s.info),
            self.pace.as_ref().map(|s| &s.info),
            self.on_message.as_ref().map(|s| &s.info),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
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
    ) -> Result<PluginHooks, PluginError> {
        let set = PluginSet::load(&host, configs, base_dir)?;
        for p in set.infos() {
            tracing::info!(plugin = %p.name, hook = p.hook.as_str(), sha256 = %&p.sha256[..12], "🧩 Plugin loaded: {} for {}", p.name, p.hook.as_str());
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
    pub fn reload(&self) -> Result<usize, PluginError> {
        let set = PluginSet::load(&self.host, &self.configs, &self.base_dir)?;
        let n = set.infos().len();
        *self.set.write().expect("plugin set lock") = Arc::new(set);
        tracing::info!(plugins = n, "🧩 Plugins reloaded");
        Ok(n)
    }

    /// Each loaded plugin's facts and figures.
    pub fn list(&self) -> Vec<Arc<PluginInfo>> {
        self.current().infos()
    }

    /// Calls the plugin in a slot; a failure names the plugin.
    fn call<H: Hook>(&self, slot: &Slot<H>, input: &H::In) -> Result<H::Out, HookError> {
        self.host.call(slot, input).map_err(|e| HookError::Failed {
            plugin: slot.info.name.clone(),
            reason: e.to_string(),
        })
    }
}

impl Hooks for PluginHooks {
    fn format_number(&self, raw: &str) -> Result<String, HookError> {
        match &self.current().format_number {
            None => Builtin.format_number(raw),
            Some(p) => self.call(p, &raw.to_string())?.map_err(HookError::Rejected),
        }
    }

    fn classify_error(&self, failure: &Failure) -> Verdict {
        match &self.current().classify_error {
            Some(p) => self
                .call(p, failure)
                .unwrap_or_else(|_| Builtin.classify_error(failure)),
            None => Builtin.classify_error(failure),
        }
    }

    fn render(&self, template: &str, variables: &[(String, String)]) -> Result<String, HookError> {
        match &self.current().render {
            None => Builtin.render(template, variables),
            Some(p) => self
                .call(p, &(template.to_string(), variables.to_vec()))?
                .map_err(HookError::Rejected),
        }
    }

    fn assign_priority(&self, message: &Outgoing) -> Result<Priority, HookError> {
        match &self.current().assign_priority {
            None => Builtin.assign_priority(message),
            Some(p) => self.call(p, message),
        }
    }

    fn pace(&self, request: &PaceRequest) -> Paced {
        match &self.current().pace {
            None => Builtin.pace(request),
            Some(p) => self.call(p, request).unwrap_or_else(|e| {
                tracing::warn!(session = %request.session, error = %e, "pace plugin failed; the built-in pacing rules decide");
                Builtin.pace(request)
            }),
        }
    }

    fn on_message(&self, message: &Received) -> Answer {
        match &self.current().on_message {
            None => Builtin.on_message(message),
            Some(p) => self.call(p, message).unwrap_or_else(|e| {
                tracing::warn!(session = %message.session, error = %e, "on-message plugin failed; the message is kept, unanswered");
                Answer::default()
            }),
        }
    }
}

impl PluginHooks {
    /// One plugin in its slot, without start-up logs, for `wa-gateway plugin call`.
    pub(super) fn single(
        host: Arc<PluginHost>,
        cfg: PluginConfig,
    ) -> Result<PluginHooks, PluginError> {
        let set = PluginSet::load(&host, std::slice::from_ref(&cfg), Path::new(""))?;
        Ok(PluginHooks {
            host,
            base_dir: PathBuf::new(),
            configs: vec![cfg],
            set: RwLock::new(Arc::new(set)),
        })
    }
}
