//! The `wa-gateway` command: parse arguments, load the config, call the library.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wa_gateway::config::Config;

#[derive(Parser)]
#[command(
    name = "wa-gateway",
    version,
    about = "Self-hosted WhatsApp API gateway"
)]
struct Cli {
    /// The config file; relative paths inside it are relative to its folder.
    #[arg(
        long,
        short,
        global = true,
        default_value = "gateway.toml",
        env = "GATEWAY_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the queue workers.
    Serve,
    /// Create the database or bring its schema up to date, then exit.
    Migrate,
    /// Manage the users who may log in.
    #[command(subcommand)]
    User(UserCommand),
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
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    wa_gateway::telemetry::init(&config.log.level);
    match cli.command {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.server.bind)
                .await
                .with_context(|| {
                    format!("cannot listen on {} (server.bind)", config.server.bind)
                })?;
            let shutdown = CancellationToken::new();
            wa_gateway::shutdown::on_signal(shutdown.clone());
            wa_gateway::run(config, listener, shutdown).await
        }
        Command::Migrate => {
            wa_gateway::cli::migrate(&config).await?;
            println!(
                "database {} is up to date",
                config.database_path().display()
            );
            Ok(())
        }
        Command::User(cmd) => match cmd {
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
