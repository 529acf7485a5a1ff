//! Received messages, read between sends without ever holding one up: one look at what the page
//! shows (the open chat's incoming bubbles, the chat list's unread badges and previews), and at
//! most one chat opened per look (`mark_read`), so a look is bounded and a send waits at most
//! one of them. Each message is reported once per session run (the database keeps it once for
//! good, by its id).
//!
//! Which bubbles of a chat are new: when a chat comes into view, the newest as many as its
//! unread badge said, and any shown within the last few minutes (a message that arrived just
//! before a send opened the chat, before a look saw its badge); after that, every bubble that
//! appears. Older history is never reported. Around every send the driver glances at the page
//! (one script, nothing opened): a send switches chats, and what arrived in the chat it leaves
//! was read there, so no badge would tell of it later.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::page::Page;
use crate::whatsapp::Incoming;

/// The open chat's incoming bubbles (newest 40), and the chat list's rows with unread badges.
const SCAN: &str = r#"
const [h] = first(S.chat_title);
const open = h ? norm(h.getAttribute('title') || h.textContent || '') : '';
let ins = [];
for (const sel of S.incoming) {
  try { const found = document.querySelectorAll(sel); if (found.length) { ins = Array.from(found); break; } } catch (_) {}
}
// Shown within the last few minutes: its time, and today's date where it shows one (D/M/YYYY,
// M/D/YYYY or YYYY-MM-DD).
function recentBubble(b) {
  const t = bubbleTime(b);
  const m = t && /^(\d{1,2}):(\d{2})/.exec(t);
  if (!m) return false;
  const now = new Date();
  const date = (/,\s*(.+)$/.exec(t) || [])[1];
  if (date) {
    const d = now.getDate(), mo = now.getMonth() + 1, y = now.getFullYear();
    const today = [d + '/' + mo + '/' + y, mo + '/' + d + '/' + y,
      y + '-' + String(mo).padStart(2, '0') + '-' + String(d).padStart(2, '0')];
    const shown = date.trim().replace(/\b0(\d)/g, '$1');
    if (!today.some(x => x.replace(/\b0(\d)/g, '$1') === shown)) return false;
  }
  let diff = (now.getHours() * 60 + now.getMinutes()) - (parseInt(m[1]) * 60 + parseInt(m[2]));
  if (diff < 0) return false;
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
  const chat = t ? norm(t.getAttribute('title') || t.textContent || '') : '';
  const [p] = first(S.chat_row_preview, row);
  const preview = p ? (p.getAttribute('title') || p.textContent || '') : '';
  if (chat) unread.push({ chat, n, preview: norm(preview) });
}
return { open, incoming, unread };
"#;

/// Clicks the chat list's row titled `arguments[1]`, as a person opens a chat saved under a
/// name (no number to open it by).
const CLICK_ROW: &str = r#"
let rows = [];
for (const sel of S.chat_rows) {
  try { const found = document.querySelectorAll(sel); if (found.length) { rows = Array.from(found); break; } } catch (_) {}
}
for (const row of rows) {
  const [t] = first(S.chat_row_title, row);
  if (t && norm(t.getAttribute('title') || t.textContent || '') === arguments[1]) {
    row.click();
    return true;
  }
}
return false;
"#;

/// How long a clicked row may take to open its chat.
const ROW_OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The number a chat's title shows (8 or more digits), if it shows one: a contact saved under a
/// name shows the name.
fn number_in(title: &str) -> Option<String> {
    let d: String = title.chars().filter(char::is_ascii_digit).collect();
    (d.len() >= 8 && !title.chars().any(char::is_alphabetic)).then_some(d)
}

/// What tells chats apart: the number a title shows (however it is written), else the title.
fn chat_key(title: &str) -> String {
    number_in(title).unwrap_or_else(|| title.to_string())
}

/// `false_6281234567890@c.us_3A…` → `6281234567890@c.us`.
fn chat_of_bubble(id: &str) -> Option<String> {
    let rest = id.strip_prefix("false_")?;
    let (chat, _) = rest.split_once('_')?;
    chat.ends_with("@c.us").then(|| chat.to_string())
}

/// The chat and its number of an incoming bubble: from its id, else from the chat's title.
fn sender(bubble: &str, title: &str) -> Option<(String, String)> {
    match chat_of_bubble(bubble) {
        Some(chat) => {
            let number = chat.trim_end_matches("@c.us").to_string();
            Some((chat, number))
        }
        None => number_in(title).map(|n| (format!("{n}@c.us"), n)),
    }
}

#[derive(Debug, Deserialize)]
struct Scan {
    /// The open chat's title (a number, or a saved contact's name); empty for none.
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
    /// The chat's title in the list (a number, or a saved contact's name).
    chat: String,
    n: usize,
    preview: String,
}

/// Most message ids remembered between looks.
const MAX_KNOWN: usize = 20_000;

/// What the looks have seen so far.
#[derive(Default)]
pub(super) struct Inbox {
    /// The chat open at the last look ([`chat_key`]).
    open: Option<String>,
    /// Ids reported or passed over as history.
    known: HashSet<String>,
    /// Unread counts the chat list showed for chats not open ([`chat_key`]), until they open.
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
        self.note_unread(&scan);
        let waiting: Vec<&Row> = scan
            .unread
            .iter()
            .filter(|r| Some(chat_key(&r.chat)) != self.open)
            .collect();
        if mark_read {
            // The chat waiting longest is lowest in the list: by its number in the running app,
            // or, saved under a name, by a click on its row.
            if let Some(r) = waiting.last() {
                let opened = match number_in(&r.chat) {
                    Some(n) => open(n).await,
                    None => self.click_row(page, &r.chat).await?,
                };
                if opened {
                    let again: Scan = page.run(SCAN, vec![]).await?;
                    out.extend(self.read_open(&again, mark_read));
                }
            }
        } else {
            for r in waiting {
                out.extend(self.preview(r));
            }
        }
        Ok(out)
    }

    /// A look that opens nothing: what arrived in the open chat, and the chat list's unread
    /// counts. Taken around every send when reading is on: a send switches chats, and what
    /// arrived in the chat it leaves was read there (no badge will tell of it later).
    pub(super) async fn glance(
        &mut self,
        page: Page<'_>,
        mark_read: bool,
    ) -> Result<Vec<Incoming>, fantoccini::error::CmdError> {
        let scan: Scan = page.run(SCAN, vec![]).await?;
        let out = self.read_open(&scan, mark_read);
        self.note_unread(&scan);
        Ok(out)
    }

    /// Remembers the unread counts of the chats not open, for when they open.
    fn note_unread(&mut self, scan: &Scan) {
        for r in &scan.unread {
            if Some(chat_key(&r.chat)) != self.open {
                let e = self.expect.entry(chat_key(&r.chat)).or_default();
                *e = (*e).max(r.n);
            }
        }
    }

    /// Clicks the row titled `title` and waits for its chat to open; false when it did not.
    async fn click_row(
        &self,
        page: Page<'_>,
        title: &str,
    ) -> Result<bool, fantoccini::error::CmdError> {
        let clicked: bool = page.run(CLICK_ROW, vec![serde_json::json!(title)]).await?;
        let until = tokio::time::Instant::now() + ROW_OPEN_WAIT;
        while clicked && tokio::time::Instant::now() < until {
            let scan: Scan = page.run(SCAN, vec![]).await?;
            if chat_key(&scan.open) == chat_key(title) {
                return Ok(true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(false)
    }

    /// The open chat's new bubbles. Without `mark_read`, a chat that comes into view (a send
    /// opened it) reports only what arrives while it is open: its earlier messages were read
    /// from the chat list already, under other ids.
    fn read_open(&mut self, scan: &Scan, mark_read: bool) -> Vec<Incoming> {
        if scan.open.is_empty() {
            self.open = None;
            return Vec::new();
        }
        let title = scan.open.clone();
        let key = chat_key(&title);
        let fresh_view = self.open.as_ref() != Some(&key);
        self.open = Some(key.clone());
        let expected = if fresh_view {
            self.expect.remove(&key).unwrap_or(0)
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
            if !new {
                continue;
            }
            let Some((chat_id, from)) = sender(&b.id, &title) else {
                tracing::debug!("a received message without a number to its chat was passed over");
                continue;
            };
            out.push(Incoming {
                message_id: b.id.clone(),
                chat_id,
                from,
                text: b.text.clone(),
                media_type: b.media.clone(),
            });
        }
        out
    }

    /// Without opening the chat: its last message, from the chat list, once per (chat, unread
    /// count, text). Its id is made from those, so a restart reports it under the same id.
    /// A chat saved under a name shows no number: it is passed over.
    fn preview(&mut self, r: &Row) -> Option<Incoming> {
        let number = number_in(&r.chat)?;
        let key = hex::encode(&Sha256::digest(format!("{number}\n{}\n{}", r.n, r.preview))[..12]);
        let id = format!("preview_{number}@c.us_{key}");
        if !self.known.insert(id.clone()) {
            return None;
        }
        Some(Incoming {
            message_id: id,
            chat_id: format!("{number}@c.us"),
            from: number,
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
                    id: format!("false_6281234567890@c.us_{id}"),
                    text: format!("text of {id}"),
                    media: None,
                    recent: recent.contains(id),
                })
                .collect(),
            unread: Vec::new(),
        }
    }

    fn ids(v: &[Incoming]) -> Vec<&str> {
        v.iter()
            .map(|m| m.message_id.rsplit('_').next().unwrap())
            .collect()
    }

    #[test]
    fn a_chat_coming_into_view_reports_its_unread_and_recent_messages_then_every_new_one() {
        let mut inbox = Inbox::default();
        let budi = "Budi Santoso";
        inbox.expect.insert(budi.into(), 2);
        let first = inbox.read_open(&scan(budi, &["h1", "h2", "u1", "u2"], &[]), true);
        assert_eq!(ids(&first), ["u1", "u2"], "history is not news");
        assert_eq!(
            (first[0].chat_id.as_str(), first[0].from.as_str()),
            ("6281234567890@c.us", "6281234567890"),
            "a contact saved under a name: the number comes from the message's id"
        );
        let again = inbox.read_open(&scan(budi, &["h1", "h2", "u1", "u2", "n1"], &[]), true);
        assert_eq!(ids(&again), ["n1"]);
        // Another chat opened by a send, whose last message came a minute ago.
        let other = inbox.read_open(
            &scan("+62 812-3456-7891", &["old", "just-now"], &["just-now"]),
            true,
        );
        assert_eq!(ids(&other), ["just-now"]);
        // Without mark_read, a chat a send opened reports only what arrives while it is open.
        let mut quiet = Inbox::default();
        assert!(
            quiet
                .read_open(&scan("Ani", &["x"], &["x"]), false)
                .is_empty()
        );
        assert_eq!(
            ids(&quiet.read_open(&scan("Ani", &["x", "y"], &[]), false)),
            ["y"]
        );
    }

    #[test]
    fn a_title_shows_a_number_or_a_name() {
        assert_eq!(
            number_in("+62 812-3456-7890").as_deref(),
            Some("6281234567890")
        );
        assert_eq!(number_in("Budi 2"), None);
        assert_eq!(number_in("1234"), None);
        assert_eq!(
            sender("false_6281234567890@c.us_3A01", "Budi"),
            Some(("6281234567890@c.us".into(), "6281234567890".into()))
        );
        assert_eq!(sender("3A01", "Budi"), None);
        assert_eq!(
            sender("3A01", "+62 812-3456-7890").map(|s| s.1),
            Some("6281234567890".into())
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
