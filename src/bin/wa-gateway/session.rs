//! `wa-gateway session …`: list, add and remove sessions, show a QR code.

use anyhow::Context;
use clap::Subcommand;
use wa_gateway::config::Config;

#[derive(Subcommand)]
pub(crate) enum SessionCommand {
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

pub(crate) async fn session_command(config: &Config, cmd: SessionCommand) -> anyhow::Result<()> {
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
