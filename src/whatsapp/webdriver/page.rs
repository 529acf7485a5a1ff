//! What the driver does in the page: read its state, and send one message the way a person
//! would (open the chat, type, press Enter, watch the tick). Every selector comes from config as
//! an ordered list of fallbacks; the scripts report which one matched.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::error::{CmdError, ErrorStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::browser::Browser;
use crate::config::Selectors;
use crate::whatsapp::{Outbound, Receipt, SendError};

/// Shared by the scripts: the first element matching a list of selectors, and its index.
const PRELUDE: &str = r#"
const S = arguments[0];
function first(list, root) {
  root = root || document;
  for (let i = 0; i < list.length; i++) {
    try { const e = root.querySelector(list[i]); if (e) return [e, i]; } catch (_) {}
  }
  return [null, -1];
}
function norm(t) { return (t || '').replace(/\u00a0/g, ' ').replace(/\r\n/g, '\n').trim(); }
function bubbles() {
  for (const sel of S.outgoing) {
    try { const found = document.querySelectorAll(sel); if (found.length) return Array.from(found); } catch (_) {}
  }
  return [];
}
function bubbleText(b) { const [t] = first(S.bubble_text, b); return norm(t ? t.innerText : b.innerText); }
function bubbleIcon(b) { const [i] = first(S.bubble_status, b); return i ? i.getAttribute('data-icon') : null; }
"#;

const PROBE: &str = r#"
const text = document.body ? document.body.innerText : '';
const out = { url: location.href, matched: {} };
for (const t of S.conflict_text) {
  if (text.includes(t)) { out.state = 'conflict'; return out; }
}
const [loading, li] = first(S.loading);
const [ready, ri] = first(S.ready);
if (ready && !loading) { out.state = 'ready'; out.matched.ready = ri; return out; }
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

const CLICK_RELOAD: &str = r#"
const [b] = first(S.qr_reload); if (b) { b.click(); return true; } return false;
"#;

const CLICK_TAKEOVER: &str = r#"
for (const b of document.querySelectorAll('button, div[role="button"]')) {
  if (S.conflict_takeover.some(t => norm(b.innerText) === t)) { b.click(); return true; }
}
return false;
"#;

/// After opening a chat: the compose box, the invalid-number dialog, or the login page.
const CHAT_STATE: &str = r#"
const [compose, i] = first(S.compose);
if (compose) return { compose: i };
const [dialog] = first(S.invalid_dialog);
if (dialog && S.invalid_text.some(t => dialog.innerText.includes(t))) return { invalid: norm(dialog.innerText) };
if (first(S.qr_ref)[0] || first(S.qr_canvas)[0]) return { login: true };
return {};
"#;

/// Inserts one line at the caret of the compose box as text input (any Unicode, which
/// ChromeDriver's key typing cannot do outside the BMP).
const INSERT: &str = r#"
const [box] = first(S.compose);
if (!box) return false;
box.focus();
return document.execCommand('insertText', false, arguments[1]);
"#;

const COMPOSED: &str = r#"
const [box] = first(S.compose);
return box ? norm(box.innerText) : null;
"#;

const CLEAR: &str = r#"
const [box] = first(S.compose);
if (!box) return false;
box.focus();
document.execCommand('selectAll', false, null);
document.execCommand('delete', false, null);
return true;
"#;

/// Outgoing bubbles: how many, and the newest one with the given text (its status icon),
/// looking only at bubbles after index `arguments[2]`, and, for the duplicate check, at most
/// `arguments[3]` minutes old where the bubble says its time.
const FIND: &str = r#"
const want = norm(arguments[1]);
const after = arguments[2];
const minutes = arguments[3];
const all = bubbles();
function recent(b) {
  if (minutes < 0) return true;
  const meta = b.querySelector('[data-pre-plain-text]');
  const m = meta && /\[(\d{1,2}):(\d{2})/.exec(meta.getAttribute('data-pre-plain-text'));
  if (!m) return true;
  const now = new Date();
  let diff = (now.getHours() * 60 + now.getMinutes()) - (parseInt(m[1]) * 60 + parseInt(m[2]));
  if (diff < 0) diff += 24 * 60;
  return diff <= minutes;
}
for (let i = all.length - 1; i > after; i--) {
  if (bubbleText(all[i]) === want && recent(all[i])) return { count: all.length, icon: bubbleIcon(all[i]) || '' };
}
return { count: all.length };
"#;

#[derive(Debug, Deserialize)]
pub struct Probe {
    pub state: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub qr: Option<String>,
    #[serde(default)]
    pub reload: bool,
    #[serde(default)]
    pub matched: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Deserialize, Default)]
struct ChatState {
    compose: Option<usize>,
    invalid: Option<String>,
    #[serde(default)]
    login: bool,
}

#[derive(Debug, Deserialize)]
struct Found {
    count: i64,
    icon: Option<String>,
}

async fn run<T: serde::de::DeserializeOwned>(
    b: &Browser,
    sel: &Selectors,
    script: &str,
    mut args: Vec<Value>,
) -> Result<T, CmdError> {
    args.insert(0, json!(sel));
    let v = b
        .client
        .execute(&format!("{PRELUDE}\n{script}"), args)
        .await?;
    serde_json::from_value(v).map_err(CmdError::Json)
}

pub async fn probe(b: &Browser, sel: &Selectors) -> Result<Probe, CmdError> {
    run(b, sel, PROBE, vec![]).await
}

pub async fn click_reload(b: &Browser, sel: &Selectors) -> Result<bool, CmdError> {
    run(b, sel, CLICK_RELOAD, vec![]).await
}

pub async fn click_takeover(b: &Browser, sel: &Selectors) -> Result<bool, CmdError> {
    run(b, sel, CLICK_TAKEOVER, vec![]).await
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

/// How far back (minutes) a retry looks for its text already in the chat.
const DUPLICATE_WINDOW_MIN: i64 = 10;
const STEP: Duration = Duration::from_millis(50);

/// Sends one message through the page, within `timeout`.
pub async fn send(
    b: &Browser,
    sel: &Selectors,
    web_url: &str,
    timeout: Duration,
    m: &Outbound,
) -> Result<Receipt, SendError> {
    let deadline = Instant::now() + timeout;
    let wd = |e: CmdError| to_send_error(&e);
    let time_left = || deadline.saturating_duration_since(Instant::now());

    match tokio::time::timeout(time_left(), b.client.goto(&chat_url(web_url, &m.number))).await {
        Err(_) => return Err(SendError::new("timeout", "the chat did not open in time")),
        Ok(r) => r.map_err(wd)?,
    }
    let compose = loop {
        let st: ChatState = run(b, sel, CHAT_STATE, vec![]).await.map_err(wd)?;
        if let Some(i) = st.compose {
            break i;
        }
        if let Some(text) = st.invalid {
            return Err(SendError::new(
                "not-registered",
                format!("WhatsApp Web says: {text}"),
            ));
        }
        if st.login {
            return Err(SendError::new(
                "not-ready",
                "WhatsApp Web shows the login page",
            ));
        }
        if Instant::now() >= deadline {
            return Err(SendError::new(
                "timeout",
                "no compose box or invalid-number dialog in time",
            ));
        }
        tokio::time::sleep(STEP).await;
    };

    // A retry first looks for its text in the chat: an earlier attempt may have gone out.
    let mut baseline = -1;
    let already = if m.attempt > 1 {
        let f: Found = run(
            b,
            sel,
            FIND,
            vec![json!(m.text), json!(-1), json!(DUPLICATE_WINDOW_MIN)],
        )
        .await
        .map_err(wd)?;
        f.icon.is_some()
    } else {
        false
    };
    if already {
        tracing::info!(job.id = %m.job_id, "💬 The text is already in the chat from an earlier attempt; not sending it again");
    } else {
        let before: Found = run(b, sel, FIND, vec![json!(""), json!(i64::MAX), json!(-1)])
            .await
            .map_err(wd)?;
        baseline = before.count - 1;
        let selector = &sel.compose[compose];
        let compose_el = b.client.find(Locator::Css(selector)).await.map_err(wd)?;
        let _: bool = run(b, sel, CLEAR, vec![]).await.map_err(wd)?;
        for (i, line) in m.text.split('\n').enumerate() {
            if i > 0 {
                // Shift+Enter: a new line, not a send.
                compose_el
                    .send_keys("\u{E008}\u{E007}\u{E000}")
                    .await
                    .map_err(wd)?;
            }
            if !line.is_empty() {
                let ok: bool = run(b, sel, INSERT, vec![json!(line)]).await.map_err(wd)?;
                if !ok {
                    return Err(SendError::new(
                        "protocol-error",
                        "the compose box did not take the text",
                    ));
                }
            }
        }
        let composed: Option<String> = run(b, sel, COMPOSED, vec![]).await.map_err(wd)?;
        if composed.as_deref().map(normalise) != Some(normalise(&m.text)) {
            let _: Result<bool, _> = run(b, sel, CLEAR, vec![]).await;
            return Err(SendError::new(
                "protocol-error",
                "the compose box does not hold the text as given; nothing was sent",
            ));
        }
        compose_el.send_keys("\u{E007}").await.map_err(wd)?;
    }

    // Sent once the newest bubble with our text shows a sent icon.
    loop {
        let f: Found = run(
            b,
            sel,
            FIND,
            vec![json!(m.text), json!(baseline), json!(-1)],
        )
        .await
        .map_err(wd)?;
        if let Some(icon) = &f.icon
            && sel.sent_icons.iter().any(|s| s == icon)
        {
            return Ok(Receipt {
                detail: Some(if already {
                    format!("already in the chat from an earlier attempt ({icon})")
                } else {
                    format!("sent ({icon})")
                }),
            });
        }
        if Instant::now() >= deadline {
            return Err(SendError::new(
                "timeout",
                match f.icon {
                    Some(icon) => {
                        format!("the message is still {icon} (pending) after the send timeout")
                    }
                    None => "the sent message did not appear in the chat in time".to_string(),
                },
            ));
        }
        tokio::time::sleep(STEP).await;
    }
}

/// How the page shows a text: no carriage returns or no-break spaces, no outer whitespace.
fn normalise(t: &str) -> String {
    t.replace('\u{a0}', " ")
        .replace("\r\n", "\n")
        .trim()
        .to_string()
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
