//! The `wa-gateway` command: parse arguments, load the config, call the library.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wa_gateway::config::{Config, PluginHook};

#[derive(Parser)]
#[command(
    name = "wa-gateway",
    version,
    about = "Self-hosted WhatsApp API gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config FILE`, for the commands that read gateway.toml.
#[derive(clap::Args)]
struct ConfigFile {
    /// The config file; relative paths inside it are relative to its folder.
    #[arg(
        long,
        short,
        global = true,
        default_value = "gateway.toml",
        env = "GATEWAY_CONFIG"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the queue workers.
    Serve(ConfigFile),
    /// Create the database or bring its schema up to date, then exit.
    Migrate(ConfigFile),
    /// Manage the users who may log in.
    User {
        #[command(flatten)]
        file: ConfigFile,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the WhatsApp accounts (sessions). `list` and `qr` work while the gateway runs;
    /// `add` and `remove` need it stopped (while it runs, use /api/sessions).
    Session {
        #[command(flatten)]
        file: ConfigFile,
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Write a backup (database, secrets, optionally the browser profile) while the gateway
    /// keeps running.
    Backup {
        #[command(flatten)]
        file: ConfigFile,
        /// The backup file to write (a tar archive).
        #[arg(long)]
        to: PathBuf,
        /// Include the browser profile, so a restored gateway needs no new QR scan.
        #[arg(long)]
        with_browser_profile: bool,
    },
    /// Restore a backup into the data directory (the gateway must be stopped).
    Restore {
        #[command(flatten)]
        file: ConfigFile,
        /// The backup file to read.
        #[arg(long)]
        from: PathBuf,
    },
    /// Tools for plugin authors: check a component, call a hook without a server.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
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

#[derive(Subcommand)]
enum SessionCommand {
    /// List sessions: name, driver, state the gateway last saw, own number.
    List,
    /// Add a session (the gateway starts it on its next start).
    Add {
        name: String,
        /// sandbox or webdriver; default: gateway.toml's [whatsapp] driver.
        #[arg(long)]
        driver: Option<String>,
        /// Do not start it with the gateway.
        #[arg(long)]
        stopped: bool,
    },
    /// Remove a session: its unfinished jobs fail (session_deleted), its profile is deleted.
    Remove { name: String },
    /// Print the session's QR code in the terminal while the gateway waits for a scan.
    Qr { name: String },
}

/// A command that runs with a loaded config.
enum Run {
    Serve,
    Migrate,
    User(UserCommand),
    Session(SessionCommand),
    Backup(PathBuf, bool),
    Restore(PathBuf),
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

fn plugin_command(cmd: PluginCommand) -> anyhow::Result<()> {
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

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (asks for the password, or reads it from stdin with --password-stdin).
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Remove a user.
    Remove {
        #[arg(long)]
        email: String,
    },
    /// Set a user's password; their refresh tokens are revoked.
    Passwd {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Again: ")?;
    anyhow::ensure!(first == again, "the passwords differ");
    Ok(first)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (file, command) = match Cli::parse().command {
        Command::Plugin(PluginCommand::Precompile) => {
            // Its stderr is the reason a plugin does not load: nothing else may go there.
            return plugin_command(PluginCommand::Precompile);
        }
        Command::Plugin(cmd) => {
            // Plugin tools need no gateway.toml.
            wa_gateway::telemetry::init("info");
            return plugin_command(cmd);
        }
        Command::Serve(f) => (f.config, Run::Serve),
        Command::Migrate(f) => (f.config, Run::Migrate),
        Command::User { file, command } => (file.config, Run::User(command)),
        Command::Session { file, command } => (file.config, Run::Session(command)),
        Command::Backup {
            file,
            to,
            with_browser_profile,
        } => (file.config, Run::Backup(to, with_browser_profile)),
        Command::Restore { file, from } => (file.config, Run::Restore(from)),
    };
    let config = Config::load(&file)?;
    wa_gateway::telemetry::init_with(&config.log.level, config.log.format);
    match command {
        Run::Serve => {
            // Plugins are compiled by this binary in a child process (plugins::compile).
            if let Ok(exe) = std::env::current_exe() {
                wa_gateway::plugins::compile_in_child(exe);
            }
            let listener = tokio::net::TcpListener::bind(config.server.bind)
                .await
                .with_context(|| {
                    format!("cannot listen on {} (server.bind)", config.server.bind)
                })?;
            let shutdown = CancellationToken::new();
            wa_gateway::shutdown::on_signal(shutdown.clone());
            wa_gateway::run(config, listener, shutdown).await
        }
        Run::Migrate => {
            wa_gateway::cli::migrate(&config).await?;
            println!(
                "database {} is up to date",
                config.database_path().display()
            );
            Ok(())
        }
        Run::Backup(to, with_profile) => {
            use wa_gateway::backup::human_bytes;
            let r = wa_gateway::backup::backup(&config, &to, with_profile).await?;
            println!("wrote {} ({})", r.path.display(), human_bytes(r.bytes));
            println!(
                "  database: {} ({} jobs, {} users)",
                human_bytes(r.database_bytes),
                r.jobs,
                r.users
            );
            println!(
                "  jwt-secret: {}",
                if r.jwt_secret {
                    "included"
                } else {
                    "none (set in config or env)"
                }
            );
            match r.browser_profile {
                Some(n) => println!(
                    "  browser profiles: {} ({})",
                    human_bytes(n),
                    r.profiles.join(", ")
                ),
                None => println!("  browser profiles: not included (--with-browser-profile)"),
            }
            Ok(())
        }
        Run::Restore(from) => {
            let r = wa_gateway::backup::restore(&config, &from).await?;
            println!(
                "restored {} (taken {}, schema {}): {} jobs, {} users{}{}",
                from.display(),
                r.created_at,
                r.schema_version,
                r.jobs,
                r.users,
                if r.jwt_secret { ", jwt-secret" } else { "" },
                if r.profiles.is_empty() {
                    String::new()
                } else {
                    format!(", browser profiles of {}", r.profiles.join(", "))
                }
            );
            if let Some(p) = r.previous {
                println!("the files it replaced are in {}", p.display());
            }
            Ok(())
        }
        Run::Session(cmd) => session_command(&config, cmd).await,
        Run::User(cmd) => match cmd {
            UserCommand::Add {
                email,
                password_stdin,
            } => {
                wa_gateway::cli::add_user(&config, &email, read_password(password_stdin)?).await?;
                println!("user {email} added");
                Ok(())
            }
            UserCommand::List => {
                for (email, created) in wa_gateway::cli::list_users(&config).await? {
                    println!("{email}\t{created}");
                }
                Ok(())
            }
            UserCommand::Remove { email } => {
                wa_gateway::cli::remove_user(&config, &email).await?;
                println!("user {email} removed");
                Ok(())
            }
            UserCommand::Passwd {
                email,
                password_stdin,
            } => {
                wa_gateway::cli::set_password(&config, &email, read_password(password_stdin)?)
                    .await?;
                println!("password of {email} changed; their sessions are signed out");
                Ok(())
            }
        },
    }
}

async fn session_command(config: &Config, cmd: SessionCommand) -> anyhow::Result<()> {
    use wa_gateway::config::DriverKind;
    match cmd {
        SessionCommand::List => {
            for r in wa_gateway::cli::list_sessions(config).await? {
                let state = match (&r.state, r.started) {
                    (Some(s), _) => s.as_str(),
                    (None, true) => "starting",
                    (None, false) => "stopped",
                };
                println!(
                    "{}\t{}\t{}\t{}",
                    r.name,
                    r.driver.as_str(),
                    state,
                    r.me.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        SessionCommand::Add {
            name,
            driver,
            stopped,
        } => {
            let driver = match driver.as_deref() {
                None => config.whatsapp.driver,
                Some("sandbox") => DriverKind::Sandbox,
                Some("webdriver") => DriverKind::Webdriver,
                Some(other) => {
                    anyhow::bail!("--driver must be sandbox or webdriver, not {other:?}")
                }
            };
            wa_gateway::cli::add_session(config, &name, driver, !stopped).await?;
            println!("session {name} added ({})", driver.as_str());
            Ok(())
        }
        SessionCommand::Remove { name } => {
            let failed = wa_gateway::cli::remove_session(config, &name).await?;
            println!("session {name} removed; {failed} unfinished job(s) failed (session_deleted)");
            Ok(())
        }
        SessionCommand::Qr { name } => match wa_gateway::cli::session_qr(config, &name).await? {
            Ok(qr) => {
                let art = wa_gateway::whatsapp::qr::unicode(&qr)
                    .context("the QR string does not fit in a QR code")?;
                println!(
                    "{art}\nScan it with WhatsApp on the phone of session {name} (Linked devices)."
                );
                Ok(())
            }
            Err(why) => anyhow::bail!(why),
        },
    }
}
