//! Why a browser is restarted, as a type: the metric label and the words for the log and the
//! state's detail come from it, never from searching a message.

use std::time::Duration;

/// Why a browser is restarted: a metric label, and words for the log and the state's detail.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartCause {
    /// The page answered no script for `session_timeout`, while idle or in a send.
    Unresponsive { silent: Duration, during_send: bool },
    /// The browser or its WebDriver session is gone.
    SessionGone(String),
    /// The browser's processes hold more than `memory_limit`.
    Memory { used: u64, limit: u64 },
    /// WhatsApp Web did not load, or did not get ready within `ready_timeout`.
    NotReady(String),
    /// Asked for through the API.
    Requested(String),
    /// WhatsApp Web is open in another window and this node does not hold the session's
    /// lease: another node's browser may be the rightful one, so this one closes.
    Conflict,
}

impl RestartCause {
    /// Every label, for metrics that list them all.
    pub const LABELS: [&'static str; 6] = [
        "unresponsive",
        "session_gone",
        "memory",
        "not_ready",
        "requested",
        "conflict",
    ];

    pub fn label(&self) -> &'static str {
        match self {
            RestartCause::Unresponsive { .. } => "unresponsive",
            RestartCause::SessionGone(_) => "session_gone",
            RestartCause::Memory { .. } => "memory",
            RestartCause::NotReady(_) => "not_ready",
            RestartCause::Requested(_) => "requested",
            RestartCause::Conflict => "conflict",
        }
    }

    /// A page that cannot answer gets no polite close.
    pub(super) fn polite_close(&self) -> Duration {
        match self {
            RestartCause::Unresponsive { .. } | RestartCause::SessionGone(_) => Duration::ZERO,
            _ => Duration::from_secs(2),
        }
    }
}

impl std::fmt::Display for RestartCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartCause::Unresponsive {
                silent,
                during_send,
            } => write!(
                f,
                "the page has not answered for {:.1}s (session_timeout){}",
                silent.as_secs_f64(),
                if *during_send {
                    ", in the middle of a send"
                } else {
                    ""
                }
            ),
            RestartCause::SessionGone(why) => write!(f, "the browser session is gone ({why})"),
            RestartCause::Memory { used, limit } => write!(
                f,
                "the browser uses {} MiB, over memory_limit ({} MiB)",
                used >> 20,
                limit >> 20
            ),
            RestartCause::NotReady(why) | RestartCause::Requested(why) => f.write_str(why),
            RestartCause::Conflict => f.write_str(
                "WhatsApp Web is open in another window and this node does not hold the session's lease",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_a_listed_label_and_says_why() {
        let causes = [
            RestartCause::Unresponsive {
                silent: Duration::from_millis(4200),
                during_send: true,
            },
            RestartCause::SessionGone("chrome not reachable".into()),
            RestartCause::Memory {
                used: 2 << 30,
                limit: 1 << 30,
            },
            RestartCause::NotReady("no ready page".into()),
            RestartCause::Requested("restart requested through the API".into()),
            RestartCause::Conflict,
        ];
        for c in &causes {
            assert!(RestartCause::LABELS.contains(&c.label()), "{c:?}");
            assert!(!c.to_string().is_empty());
        }
        assert_eq!(
            causes[0].to_string(),
            "the page has not answered for 4.2s (session_timeout), in the middle of a send"
        );
        assert_eq!(
            causes[2].to_string(),
            "the browser uses 2048 MiB, over memory_limit (1024 MiB)"
        );
    }
}
