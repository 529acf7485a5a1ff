//! Session commands for a session another node runs (restart, logout, a pairing code, a
//! number check): left in `session_commands` for its owner, which looks for them every
//! [`POLL`] and writes the answer back; the asking node waits for it. Changes to the row
//! itself (start, stop, settings) need no command: the owner reads the row every round, and a
//! `sync` command only makes that round come sooner.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ownership::REMOTE_WAIT;
use super::{Session, SessionError, Sessions};
use crate::db::Durability;
use crate::db::owners::{self, Answer};

/// How often a node looks for commands for the sessions it runs.
const POLL: Duration = Duration::from_millis(200);

/// What one node asks of the node that runs a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// Read the sessions table now.
    Sync,
    Restart,
    Logout,
    PairingCode(String),
    CheckNumber(String),
}

impl Command {
    fn to_row(&self) -> (&'static str, Option<&str>) {
        match self {
            Command::Sync => ("sync", None),
            Command::Restart => ("restart", None),
            Command::Logout => ("logout", None),
            Command::PairingCode(p) => ("pairing-code", Some(p)),
            Command::CheckNumber(n) => ("check-number", Some(n)),
        }
    }

    fn from_row(command: &str, arg: Option<String>) -> Option<Command> {
        Some(match (command, arg) {
            ("sync", _) => Command::Sync,
            ("restart", _) => Command::Restart,
            ("logout", _) => Command::Logout,
            ("pairing-code", Some(p)) => Command::PairingCode(p),
            ("check-number", Some(n)) => Command::CheckNumber(n),
            _ => return None,
        })
    }
}

/// A refusal as it travels between nodes: its kind (and the driver's code), and its message.
fn to_answer(e: SessionError) -> (String, String) {
    let message = e.to_string();
    let code = match e {
        SessionError::NotFound(_) => "not-found".to_string(),
        SessionError::Stopped(_) => "stopped".into(),
        SessionError::NotReady { code, message } => return (format!("not-ready/{code}"), message),
        SessionError::Driver { code, message } => return (format!("driver/{code}"), message),
        SessionError::Invalid(_) => "invalid".into(),
        _ => "failed".into(),
    };
    (code, message)
}

fn from_answer(session: &str, (code, message): (String, String)) -> SessionError {
    match code.split_once('/') {
        Some(("not-ready", c)) => SessionError::NotReady {
            code: c.into(),
            message,
        },
        Some(("driver", c)) => SessionError::Driver {
            code: c.into(),
            message,
        },
        _ => match code.as_str() {
            "not-found" => SessionError::NotFound(session.into()),
            "stopped" => SessionError::Stopped(session.into()),
            "invalid" => SessionError::Invalid(message),
            _ => SessionError::Io(message),
        },
    }
}

impl Sessions {
    /// Asks the node that runs `s` to do `command` and waits for its answer.
    pub(super) async fn ask_owner(
        &self,
        s: &Session,
        command: Command,
    ) -> Result<String, SessionError> {
        let id = self.post(s, &command).await?;
        let deadline = tokio::time::Instant::now() + REMOTE_WAIT;
        let answer = loop {
            if let Some(a) = owners::answer_of(&self.db.read, id).await? {
                break Some(a);
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(POLL / 2).await;
        };
        let before = crate::time::now_ms() - 3_600_000;
        let _ = self
            .db
            .writer
            .exec(Durability::Relaxed, move |c| {
                Box::pin(async move { owners::forget_command(c, id, before).await })
            })
            .await;
        match answer {
            Some(a) => a.map_err(|e| from_answer(&s.name, e)),
            None => Err(SessionError::NotReady {
                code: "owner-not-answering".into(),
                message: format!(
                    "node {} runs session {} and did not answer within {}s",
                    s.elsewhere().unwrap_or_default(),
                    s.name,
                    REMOTE_WAIT.as_secs()
                ),
            }),
        }
    }

    /// Tells the node that runs `s` to read its row now.
    pub(super) async fn wake_owner_of(&self, s: &Session) {
        if let Err(e) = self.post(s, &Command::Sync).await {
            tracing::warn!(session = %s.name, error = %e, "cannot tell the session's node; it sees the change within a round");
        }
    }

    async fn post(&self, s: &Session, command: &Command) -> Result<i64, SessionError> {
        let (name, now) = (s.name.clone(), crate::time::now_ms());
        let (what, arg) = command.to_row();
        let arg = arg.map(str::to_string);
        Ok(self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(
                    async move { owners::post_command(c, &name, what, arg.as_deref(), now).await },
                )
            })
            .await?)
    }

    /// Does what other nodes ask of the sessions this node runs, until `stop`.
    pub async fn serve_commands(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            let open = match owners::open_commands(&self.db.read).await {
                Ok(open) => open,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read session commands");
                    continue;
                }
            };
            for row in open {
                let Ok(s) = self.get(&row.session) else {
                    continue;
                };
                if s.lane.owned().is_none() {
                    continue;
                }
                let answer: Answer = match Command::from_row(&row.command, row.arg) {
                    None => Err(("invalid".into(), format!("unknown command {}", row.command))),
                    Some(c) => self.run_command(&s, c).await.map_err(to_answer),
                };
                let (id, now) = (row.id, crate::time::now_ms());
                let _ = self
                    .db
                    .writer
                    .exec(Durability::Relaxed, move |c| {
                        Box::pin(async move { owners::answer(c, id, now, &answer).await })
                    })
                    .await;
            }
        }
    }

    async fn run_command(&self, s: &Session, command: Command) -> Result<String, SessionError> {
        let name = s.name.as_str();
        match command {
            Command::Sync => {
                self.wake_owner_loop();
                Ok(String::new())
            }
            Command::Restart => self.restart(name).await.map(|_| String::new()),
            Command::Logout => self.logout(name).await.map(|_| String::new()),
            Command::PairingCode(phone) => self.pairing_code(name, &phone).await,
            Command::CheckNumber(number) => {
                let c = self.check_number(name, &number).await?;
                Ok(
                    serde_json::json!({ "exists": c.exists, "checkedAt": c.checked_at })
                        .to_string(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_refusals_cross_nodes_unchanged() {
        for c in [
            Command::Sync,
            Command::Restart,
            Command::Logout,
            Command::PairingCode("628123".into()),
            Command::CheckNumber("628999".into()),
        ] {
            let (what, arg) = c.to_row();
            assert_eq!(Command::from_row(what, arg.map(str::to_string)), Some(c));
        }
        assert_eq!(Command::from_row("pairing-code", None), None);
        let e = from_answer(
            "s",
            to_answer(SessionError::NotReady {
                code: "timeout".into(),
                message: "slow".into(),
            }),
        );
        assert!(
            matches!(e, SessionError::NotReady { code, message } if code == "timeout" && message == "slow")
        );
        let e = from_answer("s", to_answer(SessionError::Stopped("s".into())));
        assert!(matches!(e, SessionError::Stopped(n) if n == "s"));
    }
}
