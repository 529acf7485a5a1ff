//! Live pages of one login, as WhatsApp's servers see them: each loaded app holds a connection
//! open (`/fake/live`), and of the pages of one login only one is in use. A page that loads
//! while another page of its login is connected shows "open in another window" until it
//! presses "Use here", which puts the other one on that screen. This is how a copied browser
//! profile (a session moved to another node while its old browser still runs) meets the old
//! one, and a send from a page that is not the one in use is counted: the split brain the
//! cluster tests must never produce.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use serde::Deserialize;

#[derive(Default)]
pub(crate) struct Pages {
    /// Pages with an open connection, by login token.
    live: HashMap<String, HashSet<String>>,
    /// The page in use, by login token.
    active: HashMap<String, String>,
    /// Sends from a page while another page of its login was in use and connected.
    pub(crate) split_sends: u32,
}

impl Pages {
    fn is_live(&self, token: &str, page: &str) -> bool {
        self.live.get(token).is_some_and(|p| p.contains(page))
    }

    /// The page in use for `token`, if it is still connected.
    fn in_use(&self, token: &str) -> Option<&String> {
        self.active
            .get(token)
            .filter(|page| self.is_live(token, page))
    }

    /// A page of `token` polls: it is in conflict when another connected page is in use; with
    /// none in use, it becomes the one.
    pub(crate) fn conflict(&mut self, token: &str, page: &str) -> bool {
        if page.is_empty() {
            return false;
        }
        match self.in_use(token) {
            Some(other) => other != page,
            None => {
                self.active.insert(token.to_string(), page.to_string());
                false
            }
        }
    }

    /// "Use here" on `page`.
    pub(crate) fn take_over(&mut self, token: &str, page: &str) {
        if !page.is_empty() {
            self.active.insert(token.to_string(), page.to_string());
        }
    }

    /// A send from `page`: counted when another connected page of its login is in use.
    pub(crate) fn sending(&mut self, token: &str, page: &str) {
        if self.in_use(token).is_some_and(|other| other != page) {
            self.split_sends += 1;
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LiveQ {
    token: String,
    page: String,
}

/// Removes its page from the live set when the connection's body is dropped (the browser
/// went away).
struct Connected {
    pages: Arc<Mutex<super::fake_whatsapp::Inner>>,
    token: String,
    page: String,
}

impl Drop for Connected {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pages.lock()
            && let Some(set) = s.pages.live.get_mut(&self.token)
        {
            set.remove(&self.page);
        }
    }
}

/// `GET /fake/live`: a response that never ends while the page is there; a byte every 100 ms
/// lets the server notice at once when the browser is gone.
pub(crate) async fn live(
    State(s): State<Arc<Mutex<super::fake_whatsapp::Inner>>>,
    Query(q): Query<LiveQ>,
) -> Body {
    s.lock()
        .unwrap()
        .pages
        .live
        .entry(q.token.clone())
        .or_default()
        .insert(q.page.clone());
    let guard = Connected {
        pages: s.clone(),
        token: q.token,
        page: q.page,
    };
    let ticks = futures::stream::unfold(guard, |guard| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from_static(b".")),
            guard,
        ))
    });
    Body::from_stream(ticks)
}
