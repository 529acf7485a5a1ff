//! `wa-gateway plugin …`: the plugin author's tools (no gateway.toml needed).

use std::path::PathBuf;

use clap::Subcommand;
use wa_gateway::config::PluginHook;

#[derive(Subcommand)]
pub(crate) enum PluginCommand {
    /// Is FILE a valid plugin component, and which hooks does it serve?
    Check { file: PathBuf },
    /// Call one hook of FILE once, with the gateway's sandbox and limits.
    ///
    /// --input is the raw number (format-number), the failure code (classify-error), the
    /// template text (render) or the message text (assign-priority).
    Call {
        file: PathBuf,
        #[arg(long, value_enum)]
        hook: PluginHook,
        #[arg(long)]
        input: String,
        /// A setting the plugin reads with host.config: --config country_code=44 (repeatable).
        #[arg(long = "config", value_parser = key_value)]
        config: Vec<(String, String)>,
        /// A template variable for render: --var name=Ani (repeatable).
        #[arg(long = "var", value_parser = key_value)]
        vars: Vec<(String, String)>,
        /// classify-error: the failure's attempt number.
        #[arg(long, default_value_t = 1)]
        attempt: u32,
        /// assign-priority: the template name the message used.
        #[arg(long)]
        template: Option<String>,
        /// assign-priority: the priority the client asked for (high, normal, low).
        #[arg(long)]
        requested: Option<String>,
    },
    /// Compile the component on stdin for this binary's engine, to stdout (what `serve` runs
    /// to load a plugin without keeping the compiler resident).
    #[command(hide = true)]
    Precompile,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

pub(crate) fn plugin_command(cmd: PluginCommand) -> anyhow::Result<()> {
    use wa_gateway::plugins::{CallInput, call_file, check_file};
    match cmd {
        PluginCommand::Precompile => {
            if let Err(reason) = wa_gateway::plugins::precompile_stdio() {
                eprintln!("{reason}");
                std::process::exit(1);
            }
            Ok(())
        }
        PluginCommand::Check { file } => {
            let (sha, hooks) = check_file(&file).map_err(anyhow::Error::msg)?;
            println!("{}: a wa-gateway plugin component", file.display());
            println!("sha256: {sha}");
            let names: Vec<&str> = hooks.iter().map(|h| h.as_str()).collect();
            println!("serves: {}", names.join(", "));
            Ok(())
        }
        PluginCommand::Call {
            file,
            hook,
            input,
            config,
            vars,
            attempt,
            template,
            requested,
        } => {
            let input = match hook {
                PluginHook::FormatNumber => CallInput::FormatNumber(input),
                PluginHook::ClassifyError => CallInput::ClassifyError(wa_gateway::hooks::Failure {
                    code: input,
                    message: "from wa-gateway plugin call".into(),
                    attempt,
                }),
                PluginHook::Render => CallInput::Render(input, vars),
                // A text from a number that never wrote before, now.
                PluginHook::OnMessage => CallInput::OnMessage(wa_gateway::hooks::Received {
                    session: "default".into(),
                    number: "6281234567890".into(),
                    chat_id: "6281234567890@c.us".into(),
                    text: input,
                    media_type: None,
                    at: wa_gateway::time::now_ms(),
                }),
                // A first message of a fresh session, now: what the plugin's config alone says.
                PluginHook::Pace => CallInput::Pace(Box::new(wa_gateway::hooks::PaceRequest {
                    session: "default".into(),
                    chat_id: "6281234567890@c.us".into(),
                    number: "6281234567890".into(),
                    text: input,
                    priority: wa_gateway::domain::Priority::Normal,
                    rules: wa_pacing::Rules::defaults(),
                    overrides: Vec::new(),
                    now: wa_gateway::time::now_ms(),
                    local_ms: (wa_gateway::time::now_ms() % wa_pacing::DAY) as u32,
                    recent: Vec::new(),
                    to_recipient: Vec::new(),
                    first_contact: true,
                    day: None,
                    gap_draw: 0,
                })),
                PluginHook::AssignPriority => {
                    let requested = match requested.as_deref() {
                        None => None,
                        Some(p) => {
                            Some(wa_gateway::domain::Priority::parse(p).ok_or_else(|| {
                                anyhow::anyhow!("--requested {p:?}: use high, normal or low")
                            })?)
                        }
                    };
                    CallInput::AssignPriority(wa_gateway::hooks::Outgoing {
                        number: "6281234567890".into(),
                        chat_id: "6281234567890@c.us".into(),
                        text: input,
                        template,
                        requested,
                        metadata: Vec::new(),
                    })
                }
            };
            let answer = call_file(&file, config.into_iter().collect(), input)
                .map_err(anyhow::Error::msg)?;
            println!("{answer}");
            Ok(())
        }
    }
}
