//! The page as the driver sees it: one script per look (state, QR, chat, bubbles), each given
//! the configured selectors as ordered fallbacks and reporting which one matched. Every answered
//! script proves the page alive ([`Pulse`]), which is what the session's watchdog watches.

use std::sync::Mutex;
use std::time::Duration;

use fantoccini::error::{CmdError, ErrorStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Selectors;
use super::browser::Browser;
use crate::whatsapp::SendError;

/// Shared by the scripts: the first element matching a list of selectors, the outgoing bubbles,
/// and reading a text the way WhatsApp Web renders it (../shared/whatsapp-web.md, "How a bubble
/// shows a text"): emoji images give their `alt`, line breaks and blocks are whitespace, runs of
/// whitespace (no-break spaces too) compare as one space, and a text cut with "Read more"
/// compares as a prefix of enough characters to be unambiguous.
pub(super) const PRELUDE: &str = r#"
const S = arguments[0];
function first(list, root) {
  root = root || document;
  for (let i = 0; i < list.length; i++) {
    try { const e = root.querySelector(list[i]); if (e) return [e, i]; } catch (_) {}
  }
  return [null, -1];
}
function flat(t) { return (t || '').replace(/\s+/gu, ' ').trim(); }
function norm(t) { return (t || '').replace(/\u00a0/g, ' ').replace(/\r\n/g, '\n').trim(); }
const BLOCK = /^(DIV|P|LI|UL|OL|BLOCKQUOTE|PRE|H[1-6])$/;
function readText(el) {
  const out = { text: '', cut: false };
  (function walk(n) {
    if (n.nodeType === 3) { out.text += n.data; return; }
    if (n.nodeType !== 1) return;
    if (n.tagName === 'IMG') { out.text += n.getAttribute('alt') || ''; return; }
    if (n.tagName === 'BR') { out.text += '\n'; return; }
    if (n.getAttribute('role') === 'button') {
      if (S.read_more_text.some(t => flat(n.textContent) === flat(t))) out.cut = true;
      return;
    }
    const block = BLOCK.test(n.tagName);
    if (block) out.text += '\n';
    for (const c of n.childNodes) walk(c);
    if (block) out.text += '\n';
  })(el);
  return out;
}
const MIN_PREFIX = 48;
function sameText(read, want) {
  let got = flat(read.text);
  if (!read.cut) return got === want;
  got = got.replace(/(\u2026|\.\.\.)$/u, '').trim();
  return got.length >= Math.min(want.length, MIN_PREFIX) && want.startsWith(got);
}
function bubbles() {
  for (const sel of S.outgoing) {
    try { const found = document.querySelectorAll(sel); if (found.length) return Array.from(found); } catch (_) {}
  }
  return [];
}
function bubbleId(b) {
  const own = b.getAttribute('data-id');
  if (own) return own;
  const up = b.closest('[data-id]');
  if (up) return up.getAttribute('data-id');
  const down = b.querySelector('[data-id]');
  return down ? down.getAttribute('data-id') : null;
}
// The media preview's caption box: never one inside a footer (the chat's compose box matches
// the generic selectors too).
function captionBox() {
  for (const sel of S.media_caption) {
    let found = [];
    try { found = document.querySelectorAll(sel); } catch (_) {}
    for (const e of found) if (!e.closest('footer')) return e;
  }
  return null;
}
// The box a text is typed into: the compose box (by the selector that matched), or the caption.
function textBox(which) {
  if (which === 'caption') return captionBox();
  return first([S.compose[which]])[0];
}
function bubbleIcon(b) { const [i] = first(S.bubble_status, b); return i ? i.getAttribute('data-icon') : null; }
function bubbleTime(b) {
  const meta = b.querySelector('[data-pre-plain-text]');
  const m = meta && /\[([^\]]+)\]/.exec(meta.getAttribute('data-pre-plain-text'));
  return m ? m[1] : null;
}
"#;

const PROBE: &str = r#"
const text = document.body ? document.body.innerText : '';
const out = { url: location.href, matched: {} };
for (const t of S.conflict_text) {
  if (text.includes(t)) { out.state = 'conflict'; return out; }
}
for (const t of S.blocked_text) {
  if (text.includes(t)) { out.state = 'blocked'; out.blocked = t; return out; }
}
const [loading, li] = first(S.loading);
const [ready, ri] = first(S.ready);
if (ready && !loading) {
  out.state = 'ready'; out.matched.ready = ri;
  for (const k of S.me_storage_keys) {
    try { const v = localStorage.getItem(k); if (v) { out.me = v; break; } } catch (_) {}
  }
  return out;
}
const [code] = first(S.pairing_code);
if (code) { out.state = 'pairing'; return out; }
const [ref, qi] = first(S.qr_ref);
const [canvas, ci] = first(S.qr_canvas);
if (ref || canvas) {
  out.state = 'qr';
  out.qr = ref ? ref.getAttribute('data-ref') : null;
  out.reload = first(S.qr_reload)[0] !== null;
  out.matched.qr_ref = qi; out.matched.qr_canvas = ci;
  return out;
}
if (loading) { out.state = 'loading'; out.matched.loading = li; return out; }
out.state = 'unknown';
return out;
"#;

const BLOCKED: &str = r#"
const text = document.body ? document.body.innerText : '';
for (const t of S.blocked_text) { if (text.includes(t)) return t; }
return null;
"#;

const CLICK_RELOAD: &str = r#"
const [b] = first(S.qr_reload); if (b) { b.click(); return true; } return false;
"#;

const CLICK_TAKEOVER: &str = r#"
for (const b of document.querySelectorAll('button, div[role="button"]')) {
  if (S.conflict_takeover.some(t => norm(b.innerText) === t)) { b.click(); return true; }
}
return false;
"#;

/// What the page shows, as one look at it reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageState {
    /// The chat list: logged in.
    Ready,
    /// The QR code (or its reload button): a scan is needed.
    Qr,
    Loading,
    /// "WhatsApp is open in another window".
    Conflict,
    /// A pairing code is shown, for the phone to confirm.
    Pairing,
    /// A block page: a 429 error page or a ban screen.
    Blocked,
    /// Nothing the selectors know (yet).
    #[serde(other)]
    Unknown,
}

/// One look at the page.
#[derive(Debug, Deserialize)]
pub struct Probe {
    pub state: PageState,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub qr: Option<String>,
    #[serde(default)]
    pub reload: bool,
    /// The account's own id as the page keeps it, once logged in.
    #[serde(default)]
    pub me: Option<String>,
    /// The block page's text that matched.
    #[serde(default)]
    pub blocked: Option<String>,
    #[serde(default)]
    pub matched: std::collections::BTreeMap<String, i64>,
}

/// Proof that the page answers: every script that came back beats it. The session's watchdog
/// tears a page down that has not beaten for `session_timeout`, even in the middle of a send.
pub struct Pulse(Mutex<Instant>);

impl Pulse {
    pub fn new() -> Pulse {
        Pulse(Mutex::new(Instant::now()))
    }
    pub fn beat(&self) {
        *self.0.lock().expect("pulse lock") = Instant::now();
    }
    /// How long since the page last answered.
    pub fn silent_for(&self) -> Duration {
        self.0.lock().expect("pulse lock").elapsed()
    }
}

/// The browser's page with the selectors the scripts look for.
#[derive(Clone, Copy)]
pub struct Page<'a> {
    pub browser: &'a Browser,
    pub sel: &'a Selectors,
    pub pulse: &'a Pulse,
}

impl Page<'_> {
    /// Runs `script` after the prelude, with the selectors as `arguments[0]` and `args` after.
    pub async fn run<T: serde::de::DeserializeOwned>(
        &self,
        script: &str,
        mut args: Vec<Value>,
    ) -> Result<T, CmdError> {
        args.insert(0, json!(self.sel));
        let v = self
            .browser
            .client
            .execute(&format!("{PRELUDE}\n{script}"), args)
            .await?;
        self.pulse.beat();
        serde_json::from_value(v).map_err(CmdError::Json)
    }

    /// Runs `script`, which returns an element or null, and hands back the element.
    pub async fn element(
        &self,
        script: &str,
        args: Vec<Value>,
    ) -> Result<Option<fantoccini::elements::Element>, CmdError> {
        let v: Value = self.run(script, args).await?;
        // W3C WebDriver's element reference key.
        const KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
        Ok(v.get(KEY).and_then(Value::as_str).map(|id| {
            fantoccini::elements::Element::from_element_id(
                self.browser.client.clone(),
                fantoccini::elements::ElementRef::from(id.to_string()),
            )
        }))
    }

    pub async fn probe(&self) -> Result<Probe, CmdError> {
        self.run(PROBE, vec![]).await
    }

    /// The block page's text the page shows, if it shows one.
    pub async fn blocked(&self) -> Option<String> {
        self.run::<Option<String>>(BLOCKED, vec![])
            .await
            .ok()
            .flatten()
    }

    pub async fn click_reload(&self) -> Result<bool, CmdError> {
        self.run(CLICK_RELOAD, vec![]).await
    }

    pub async fn click_takeover(&self) -> Result<bool, CmdError> {
        self.run(CLICK_TAKEOVER, vec![]).await
    }
}

/// True when the error means the browser or its session is gone, not just a bad command.
pub fn session_gone(e: &CmdError) -> bool {
    match e {
        CmdError::Lost(_) | CmdError::Failed(_) | CmdError::FailedC(_) => true,
        CmdError::Standard(wd) => {
            matches!(
                wd.error,
                ErrorStatus::InvalidSessionId | ErrorStatus::NoSuchWindow
            ) || {
                let m = wd.message.to_lowercase();
                [
                    "not reachable",
                    "disconnected",
                    "crashed",
                    "session deleted",
                    "no such session",
                ]
                .iter()
                .any(|s| m.contains(s))
            }
        }
        _ => false,
    }
}

/// A WebDriver error in the seam's codes.
pub fn to_send_error(e: &CmdError) -> SendError {
    if session_gone(e) {
        SendError::new(
            "session-closed",
            format!("the browser session is gone: {}", short(e)),
        )
    } else if matches!(e, CmdError::Standard(wd) if wd.error == ErrorStatus::Timeout || wd.error == ErrorStatus::ScriptTimeout)
    {
        SendError::new("timeout", format!("the page did not answer: {}", short(e)))
    } else {
        SendError::new("protocol-error", format!("WebDriver: {}", short(e)))
    }
}

fn short(e: &CmdError) -> String {
    let s = e.to_string();
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

/// The URL that opens a chat with a number.
pub fn chat_url(web_url: &str, number: &str) -> String {
    let base = web_url.trim_end_matches('/');
    format!("{base}/send?phone={number}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn chat_url_keeps_the_base() {
        assert_eq!(
            super::chat_url("https://web.whatsapp.com/", "6281234567890"),
            "https://web.whatsapp.com/send?phone=6281234567890"
        );
        assert_eq!(
            super::chat_url("http://127.0.0.1:9/", "1"),
            "http://127.0.0.1:9/send?phone=1"
        );
    }
}
