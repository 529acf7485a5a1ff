//! The `wa-gateway` command: parse arguments, load the config, call the library.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wa_gateway::config::Config;

mod plugin;
mod session;

use plugin::{PluginCommand, plugin_command};
use session::{SessionCommand, session_command};

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

/// A command that runs with a loaded config.
enum Run {
    Serve,
    Migrate,
    User(UserCommand),
    Session(SessionCommand),
    Backup(PathBuf, bool),
    Restore(PathBuf),
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
                "{} is up to date",
                wa_gateway::db::Store::of(&config).describe()
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
