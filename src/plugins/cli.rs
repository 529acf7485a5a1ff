//! `wa-gateway plugin check` and `plugin call`, for plugin authors: the same host and hook code
//! the gateway runs, on one file.

use std::collections::BTreeMap;
use std::path::Path;

use super::{PluginError, PluginHooks, PluginHost};
use crate::config::{PluginConfig, PluginHook};
use crate::hooks::{Failure, HookError, Hooks, Outgoing, PaceRequest, Paced, Received, Verdict};

const ALL_HOOKS: [PluginHook; 6] = [
    PluginHook::FormatNumber,
    PluginHook::ClassifyError,
    PluginHook::Render,
    PluginHook::AssignPriority,
    PluginHook::Pace,
    PluginHook::OnMessage,
];

/// Which hooks a file serves, and its sha256.
pub fn check_file(path: &Path) -> Result<(String, Vec<PluginHook>), PluginError> {
    let host = PluginHost::new().map_err(|e| PluginError::Engine(format!("{e:#}")))?;
    let mut served = Vec::new();
    let mut sha = String::new();
    let mut first_error = None;
    for hook in ALL_HOOKS {
        match PluginHooks::single(host.clone(), cli_config(path, hook, BTreeMap::new())) {
            Ok(loaded) => {
                sha = loaded.list()[0].sha256.clone();
                served.push(hook);
            }
            Err(PluginError::WrongWorld { .. }) => {}
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match (served.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(PluginError::Failed(format!(
            "{} serves none of the hooks (format-number, classify-error, render, assign-priority, pace, on-message)",
            path.display()
        ))),
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
    Pace(Box<PaceRequest>),
    OnMessage(Received),
}

impl CallInput {
    fn hook(&self) -> PluginHook {
        match self {
            CallInput::FormatNumber(_) => PluginHook::FormatNumber,
            CallInput::ClassifyError(_) => PluginHook::ClassifyError,
            CallInput::Render(..) => PluginHook::Render,
            CallInput::AssignPriority(_) => PluginHook::AssignPriority,
            CallInput::Pace(_) => PluginHook::Pace,
            CallInput::OnMessage(_) => PluginHook::OnMessage,
        }
    }
}

/// At the worker-time hooks the gateway hides a plugin's failure behind its built-in rule; the
/// author needs to see it.
const FELL_BACK: &str =
    "the plugin failed (the reason is in the log above); the gateway would use its built-in rule";

/// One call through the gateway's own hook code, with this one plugin in its slot. `Ok` is the
/// hook's answer in words; `Err` is a failure of the plugin or of loading it.
pub fn call_file(
    path: &Path,
    config: BTreeMap<String, String>,
    input: CallInput,
) -> Result<String, String> {
    let host = PluginHost::new().map_err(|e| format!("{e:#}"))?;
    let hooks = PluginHooks::single(host, cli_config(path, input.hook(), config))
        .map_err(|e| e.to_string())?;
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
        CallInput::Pace(request) => {
            let paced = hooks.pace(&request);
            if hooks.list()[0].failures() > 0 {
                return Err(FELL_BACK.into());
            }
            match paced {
                Paced::Now => "now".to_string(),
                Paced::Defer {
                    until,
                    reason,
                    this_message_only,
                } => format!(
                    "defer until {} ({reason}{})",
                    crate::time::rfc3339(until),
                    if this_message_only {
                        ", this message only"
                    } else {
                        ""
                    }
                ),
            }
        }
        CallInput::OnMessage(m) => {
            let answer = hooks.on_message(&m);
            if hooks.list()[0].failures() > 0 {
                return Err(FELL_BACK.into());
            }
            format!(
                "reply: {}; opt-out: {}",
                answer.reply.as_deref().unwrap_or("(none)"),
                answer.opt_out.as_deref().unwrap_or("(no)")
            )
        }
        CallInput::ClassifyError(f) => {
            let verdict = hooks.classify_error(&f);
            if hooks.list()[0].failures() > 0 {
                return Err(FELL_BACK.into());
            }
            match verdict {
                Verdict::Retry(None) => "retry (after the queue's backoff)".to_string(),
                Verdict::Retry(Some(d)) => format!("retry after {} ms", d.as_millis()),
                Verdict::Permanent(reason) => format!("permanent: {reason}"),
            }
        }
    };
    let us = hooks.list()[0].mean_micros();
    Ok(format!("{answer}   ({us:.0} µs)"))
}
