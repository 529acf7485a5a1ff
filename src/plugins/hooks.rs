//! The hooks as types: each knows its world, how to instantiate it and how to call its one
//! function, so the rest of the host is written once for all of them.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{self, classifier, formatter, pacer, prioritizer, responder, templater};
use super::call::CallFuture;
use super::state::{PluginInfo, State};
use crate::config::PluginHook;
use crate::domain::Priority;
use crate::hooks::{Answer, Failure, Outgoing, PaceRequest, Paced, Received, Verdict};

/// One hook's plugin world.
pub(super) trait Hook {
    const HOOK: PluginHook;
    /// The component pre-linked for this world.
    type Pre: Send + Sync + 'static;
    type In: Send + Sync;
    type Out;
    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre>;
    /// Instantiates the plugin in `store` and calls the hook.
    fn invoke<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
        input: &'a Self::In,
    ) -> CallFuture<'a, Self::Out>;
}

/// A loaded plugin in the slot of hook `H`.
pub(super) struct Slot<H: Hook> {
    pub(super) info: Arc<PluginInfo>,
    pub(super) pre: H::Pre,
}

pub(super) struct FormatNumber;
pub(super) struct ClassifyError;
pub(super) struct Render;
pub(super) struct AssignPriority;
pub(super) struct Pace;
pub(super) struct OnMessage;

fn priority_to_wit(p: Priority) -> bindings::Priority {
    match p {
        Priority::High => bindings::Priority::High,
        Priority::Normal => bindings::Priority::Normal,
        Priority::Low => bindings::Priority::Low,
    }
}

impl Hook for FormatNumber {
    const HOOK: PluginHook = PluginHook::FormatNumber;
    type Pre = formatter::NumberFormatterPre<State>;
    type In = String;
    /// Digits, or why the number was refused.
    type Out = Result<String, String>;
    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        formatter::NumberFormatterPre::new(pre)
    }
    fn invoke<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
        raw: &'a String,
    ) -> CallFuture<'a, Self::Out> {
        Box::pin(async move {
            let plugin = pre.instantiate_async(&mut *store).await?;
            plugin.call_format_number(&mut *store, raw).await
        })
    }
}

impl Hook for ClassifyError {
    const HOOK: PluginHook = PluginHook::ClassifyError;
    type Pre = classifier::ErrorClassifierPre<State>;
    type In = Failure;
    type Out = Verdict;
    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        classifier::ErrorClassifierPre::new(pre)
    }
    fn invoke<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
        f: &'a Failure,
    ) -> CallFuture<'a, Verdict> {
        Box::pin(async move {
            let arg = bindings::Failure {
                code: f.code.clone(),
                message: f.message.clone(),
                attempt: f.attempt,
            };
            let plugin = pre.instantiate_async(&mut *store).await?;
            Ok(match plugin.call_classify_error(&mut *store, &arg).await? {
                bindings::Verdict::Retry(ms) => Verdict::Retry(ms.map(Duration::from_millis)),
                bindings::Verdict::Permanent(reason) => Verdict::Permanent(reason),
            })
        })
    }
}

impl Hook for Render {
    const HOOK: PluginHook = PluginHook::Render;
    type Pre = templater::MessageTemplaterPre<State>;
    /// The template and its variables.
    type In = (String, Vec<(String, String)>);
    /// The text, or why the template was refused.
    type Out = Result<String, String>;
    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        templater::MessageTemplaterPre::new(pre)
    }
    fn invoke<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
        (template, vars): &'a Self::In,
    ) -> CallFuture<'a, Self::Out> {
        Box::pin(async move {
            let plugin = pre.instantiate_async(&mut *store).await?;
            plugin.call_render(&mut *store, template, vars).await
        })
    }
}

impl Hook for AssignPriority {
    const HOOK: PluginHook = PluginHook::AssignPriority;
    type Pre = prioritizer::PriorityAssignerPre<State>;
    type In = Outgoing;
    type Out = Priority;
    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        prioritizer::PriorityAssignerPre::new(pre)
    }
    fn invoke<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
        m: &'a Outgoing,
    ) -> CallFuture<'a, Priority> {
        Box::pin(async move {
            let arg = bindings::Outgoing {
                number: m.number.clone(),
                chat_id: m.chat_id.clone(),
                text: m.text.clone(),
                template: m.template.clone(),
                requested: m.requested.map(priority_to_wit),
                metadata: m.metadata.clone(),
            };
            let plugin = pre.instantiate_async(&mut *store).await?;
            Ok(
                match plugin.call_assign_priority(&mut *store, &arg).await? {
                    bindings::Priority::High => Priority::High,
                    bindings::Priority::Normal => Priority::Normal,
                    bindings::Priority::Low => Priority::Low,
                },
            )
        })
    }
}

impl Hook for Pace {
    const HOOK: PluginHook = PluginHook::Pace;
    type Pre = pacer::PacerPre<State>;
    type In = PaceRequest;
    type Out = Paced;
    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        pacer::PacerPre::new(pre)
    }
    fn invoke<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
        r: &'a PaceRequest,
    ) -> CallFuture<'a, Paced> {
        Box::pin(async move {
            let arg = bindings::PaceRequest {
                session: r.session.clone(),
                chat_id: r.chat_id.clone(),
                number: r.number.clone(),
                text: r.text.clone(),
                priority: priority_to_wit(r.priority),
                now: r.now.max(0) as u64,
                local_ms: r.local_ms,
                recent: r
                    .recent
                    .iter()
                    .map(|s| bindings::Sent {
                        at: s.at.max(0) as u64,
                        first_contact: s.first_contact,
                    })
                    .collect(),
                to_recipient: r.to_recipient.iter().map(|&t| t.max(0) as u64).collect(),
                first_contact: r.first_contact,
                day: r.day,
                gap_draw: r.gap_draw,
                rules: r.overrides.clone(),
            };
            let plugin = pre.instantiate_async(&mut *store).await?;
            Ok(match plugin.call_pace(&mut *store, &arg).await? {
                bindings::PaceVerdict::Now => Paced::Now,
                bindings::PaceVerdict::Defer(d) => Paced::Defer {
                    until: d.until.min(i64::MAX as u64) as i64,
                    reason: d.reason,
                    this_message_only: d.this_message_only,
                },
            })
        })
    }
}

impl Hook for OnMessage {
    const HOOK: PluginHook = PluginHook::OnMessage;
    type Pre = responder::ResponderPre<State>;
    type In = Received;
    type Out = Answer;
    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        responder::ResponderPre::new(pre)
    }
    fn invoke<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<State>,
        m: &'a Received,
    ) -> CallFuture<'a, Answer> {
        Box::pin(async move {
            let arg = bindings::Received {
                session: m.session.clone(),
                number: m.number.clone(),
                chat_id: m.chat_id.clone(),
                text: m.text.clone(),
                media_type: m.media_type.clone(),
                at: m.at.max(0) as u64,
            };
            let plugin = pre.instantiate_async(&mut *store).await?;
            let a = plugin.call_on_message(&mut *store, &arg).await?;
            Ok(Answer {
                reply: a.reply,
                opt_out: a.opt_out,
            })
        })
    }
}
