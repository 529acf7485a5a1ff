//! WhatsApp Web's conflict screen ("open in another window"): another browser runs the same
//! login. Whether to press "Use here" depends on the session's lease, which only the sessions
//! layer knows ([`crate::whatsapp::Holds`]): with it this node is the rightful one; without it
//! (the session moved to another node) this browser is the stray one and closes.

use super::cause::RestartCause;
use super::page::Page;
use super::session::{End, Session, guarded};
use crate::whatsapp::{ConflictAction, SessionState};

impl Session<'_> {
    /// WhatsApp Web says it is open in another window: another browser runs this number. With
    /// the session's lease this node is the rightful one and presses "Use here" (unless
    /// `takeover_on_conflict = false`); without it, it closes its browser. Each screen is
    /// logged and counted once.
    pub(super) async fn conflict(&mut self, page: Page<'_>) -> Option<End> {
        let (shared, cfg) = (self.shared, self.cfg);
        let action = match ((shared.holds)(), cfg.takeover_on_conflict) {
            (false, _) => ConflictAction::Closed,
            (true, false) => ConflictAction::Left,
            (true, true) => ConflictAction::TookOver,
        };
        if !std::mem::replace(&mut self.in_conflict, true) {
            match action {
                ConflictAction::Closed => tracing::error!(
                    "⚔️ WhatsApp is open in another window and this node does not hold the session's lease: closing this browser"
                ),
                ConflictAction::Left => tracing::warn!(
                    "⚔️ WhatsApp is open in another window; waiting for \"Use here\" (takeover_on_conflict = false)"
                ),
                ConflictAction::TookOver => tracing::warn!(
                    "⚔️ WhatsApp is open in another window; this node holds the session's lease, so it takes over (Use here)"
                ),
            }
            shared.count_conflict(action);
        }
        match action {
            ConflictAction::Closed => return Some(End::Restart(RestartCause::Conflict)),
            ConflictAction::Left => shared.set(
                SessionState::Conflict,
                "WhatsApp is open in another window; press \"Use here\" there, or set takeover_on_conflict = true",
            ),
            ConflictAction::TookOver => {
                shared.set(
                    SessionState::Conflict,
                    "open in another window; taking over",
                );
                let _ = guarded(self.pulse, cfg.session_timeout.0, page.click_takeover()).await;
            }
        }
        None
    }
}
