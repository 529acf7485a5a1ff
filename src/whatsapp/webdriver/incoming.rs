//! Received messages, read between sends without ever holding one up: one look at what the page
//! shows (the open chat's incoming bubbles, the chat list's unread badges and previews), and at
//! most one chat opened per look (`mark_read`), so a look is bounded and a send waits at most
//! one of them. Each message is reported once per session run (the database keeps it once for
//! good, by its id).
//!
//! Which bubbles of a chat are new: when a chat comes into view, the newest as many as its
//! unread badge said, and any shown within the last few minutes (a message that arrived just
//! before a send opened the chat, before a look saw its badge); after that, every bubble that
//! appears. Older history is never reported.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::page::Page;
use crate::whatsapp::Incoming;

/// The open chat's incoming bubbles (newest 40), and the chat list's rows with unread badges.
const SCAN: &str = r#"
const [h] = first(S.chat_title);
const open = h ? (h.getAttribute('title') || h.textContent || '').replace(/\D/g, '') : '';
let ins = [];
for (const sel of S.incoming) {
  try { const found = document.querySelectorAll(sel); if (found.length) { ins = Array.from(found); break; } } catch (_) {}
}
function recentBubble(b) {
  const t = bubbleTime(b);
  const m = t && /^(\d{1,2}):(\d{2})/.exec(t);
  if (!m) return false;
  const now = new Date();
  let diff = (now.getHours() * 60 + now.getMinutes()) - (parseInt(m[1]) * 60 + parseInt(m[2]));
  if (diff < 0) diff += 24 * 60;
  return diff <= 5;
}
function mediaOf(b) {
  for (const img of b.querySelectorAll('img')) if (!img.classList.contains('emoji')) return 'image';
  if (b.querySelector('video')) return 'video';
  if (b.querySelector('audio')) return 'audio';
  for (const sel of S.bubble_file_name) { try { if (b.querySelector(sel)) return 'document'; } catch (_) {} }
  return null;
}
const incoming = ins.slice(-40).map(b => {
  const [t] = first(S.bubble_text, b);
  return { id: bubbleId(b), text: t ? norm(readText(t).text) : '', media: mediaOf(b), recent: recentBubble(b) };
}).filter(m => m.id);
let rows = [];
for (const sel of S.chat_rows) {
  try { const found = document.querySelectorAll(sel); if (found.length) { rows = Array.from(found); break; } } catch (_) {}
}
const unread = [];
for (const row of rows) {
  const [badge] = first(S.unread_badge, row);
  if (!badge) continue;
  const n = parseInt((badge.textContent || '').replace(/\D/g, '') || (badge.getAttribute('aria-label') || '').replace(/\D/g, '')) || 1;
  const [t] = first(S.chat_row_title, row);
  const chat = t ? (t.getAttribute('title') || t.textContent || '').replace(/\D/g, '') : '';
  const [p] = first(S.chat_row_preview, row);
  const preview = p ? (p.getAttribute('title') || p.textContent || '') : '';
  if (chat.length >= 8) unread.push({ chat, n, preview: norm(preview) });
}
return { open, incoming, unread };
"#;

#[derive(Debug, Deserialize)]
struct Scan {
    open: String,
    incoming: Vec<Bubble>,
    unread: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Bubble {
    id: String,
    text: String,
    media: Option<String>,
    recent: bool,
}

#[derive(Debug, Deserialize)]
struct Row {
    chat: String,
    n: usize,
    preview: String,
}

/// Most message ids remembered between looks.
const MAX_KNOWN: usize = 20_000;

/// What the looks have seen so far.
#[derive(Default)]
pub(super) struct Inbox {
    /// The chat open at the last look (digits).
    open: Option<String>,
    /// Ids reported or passed over as history.
    known: HashSet<String>,
    /// Unread counts the chat list showed for chats not open, until they open.
    expect: HashMap<String, usize>,
}

impl Inbox {
    /// One look; with `mark_read`, also opens one chat with unread messages (through `open`)
    /// and reads it. The messages not reported before, in their chats' order.
    pub(super) async fn look<F, Fut>(
        &mut self,
        page: Page<'_>,
        mark_read: bool,
        open: F,
    ) -> Result<Vec<Incoming>, fantoccini::error::CmdError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        if self.known.len() > MAX_KNOWN {
            self.known.clear();
        }
        let scan: Scan = page.run(SCAN, vec![]).await?;
        let mut out = self.read_open(&scan, mark_read);
        for r in &scan.unread {
            if Some(&r.chat) != self.open.as_ref() {
                let e = self.expect.entry(r.chat.clone()).or_default();
                *e = (*e).max(r.n);
            }
        }
        let waiting: Vec<&Row> = scan
            .unread
            .iter()
            .filter(|r| Some(&r.chat) != self.open.as_ref())
            .collect();
        if mark_read {
            // The chat waiting longest is lowest in the list.
            if let Some(r) = waiting.last()
                && open(r.chat.clone()).await
            {
                let again: Scan = page.run(SCAN, vec![]).await?;
                out.extend(self.read_open(&again, mark_read));
            }
        } else {
            for r in waiting {
                out.extend(self.preview(r));
            }
        }
        Ok(out)
    }

    /// The open chat's new bubbles. Without `mark_read`, a chat that comes into view (a send
    /// opened it) reports only what arrives while it is open: its earlier messages were read
    /// from the chat list already, under other ids.
    fn read_open(&mut self, scan: &Scan, mark_read: bool) -> Vec<Incoming> {
        let chat = (!scan.open.is_empty()).then(|| scan.open.clone());
        let Some(digits) = chat else {
            self.open = None;
            return Vec::new();
        };
        let fresh_view = self.open.as_ref() != Some(&digits);
        self.open = Some(digits.clone());
        let expected = if fresh_view {
            self.expect.remove(&digits).unwrap_or(0)
        } else {
            0
        };
        let count = scan.incoming.len();
        let mut out = Vec::new();
        for (i, b) in scan.incoming.iter().enumerate() {
            if self.known.contains(&b.id) {
                continue;
            }
            let new = !fresh_view || (mark_read && (i + expected >= count || b.recent));
            self.known.insert(b.id.clone());
            if new {
                out.push(Incoming {
                    message_id: b.id.clone(),
                    chat_id: format!("{digits}@c.us"),
                    from: digits.clone(),
                    text: b.text.clone(),
                    media_type: b.media.clone(),
                });
            }
        }
        out
    }

    /// Without opening the chat: its last message, from the chat list, once per (chat, unread
    /// count, text). Its id is made from those, so a restart reports it under the same id.
    fn preview(&mut self, r: &Row) -> Option<Incoming> {
        let key = hex::encode(&Sha256::digest(format!("{}\n{}\n{}", r.chat, r.n, r.preview))[..12]);
        let id = format!("preview_{}@c.us_{key}", r.chat);
        if !self.known.insert(id.clone()) {
            return None;
        }
        Some(Incoming {
            message_id: id,
            chat_id: format!("{}@c.us", r.chat),
            from: r.chat.clone(),
            text: r.preview.clone(),
            media_type: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(open: &str, ids: &[&str], recent: &[&str]) -> Scan {
        Scan {
            open: open.into(),
            incoming: ids
                .iter()
                .map(|id| Bubble {
                    id: id.to_string(),
                    text: format!("text of {id}"),
                    media: None,
                    recent: recent.contains(id),
                })
                .collect(),
            unread: Vec::new(),
        }
    }

    fn ids(v: &[Incoming]) -> Vec<&str> {
        v.iter().map(|m| m.message_id.as_str()).collect()
    }

    #[test]
    fn a_chat_coming_into_view_reports_its_unread_and_recent_messages_then_every_new_one() {
        let mut inbox = Inbox::default();
        inbox.expect.insert("6281".into(), 2);
        let first = inbox.read_open(&scan("6281", &["h1", "h2", "u1", "u2"], &[]), true);
        assert_eq!(ids(&first), ["u1", "u2"], "history is not news");
        let again = inbox.read_open(&scan("6281", &["h1", "h2", "u1", "u2", "n1"], &[]), true);
        assert_eq!(ids(&again), ["n1"]);
        assert_eq!(again[0].chat_id, "6281@c.us");
        // Another chat opened by a send, whose last message came a minute ago.
        let other = inbox.read_open(&scan("6282", &["old", "just-now"], &["just-now"]), true);
        assert_eq!(ids(&other), ["just-now"]);
        // Without mark_read, a chat a send opened reports only what arrives while it is open.
        let mut quiet = Inbox::default();
        assert!(
            quiet
                .read_open(&scan("6283", &["x"], &["x"]), false)
                .is_empty()
        );
        assert_eq!(
            ids(&quiet.read_open(&scan("6283", &["x", "y"], &[]), false)),
            ["y"]
        );
    }

    #[test]
    fn a_preview_is_reported_once_per_count_and_text() {
        let mut inbox = Inbox::default();
        let row = |n: usize, text: &str| Row {
            chat: "6281234567890".into(),
            n,
            preview: text.into(),
        };
        let a = inbox.preview(&row(1, "ok")).unwrap();
        assert!(inbox.preview(&row(1, "ok")).is_none());
        let b = inbox.preview(&row(2, "ok")).unwrap();
        assert_ne!(a.message_id, b.message_id);
        assert_eq!(a.from, "6281234567890");
        assert_eq!(
            Inbox::default().preview(&row(1, "ok")).unwrap().message_id,
            a.message_id
        );
    }
}
