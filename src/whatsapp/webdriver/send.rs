//! Sending one message the way a person would: open the chat, type, check the box, press
//! Enter, and follow the bubble that appeared until it shows a tick. A retry looks first: if
//! the text is already in the chat (even with a clock), it waits for that bubble's tick
//! instead of typing again, so a message is never sent twice.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::error::CmdError;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::bubbles::{self, Claims, Ours, Signal, Snapshot};
use super::page::{Page, chat_url, to_send_error};
use crate::whatsapp::{Outbound, Receipt, SendError};

/// After opening a chat: the compose box, the invalid-number dialog, or the login page. With
/// `arguments[1]` (digits), the compose box counts only when the chat's header shows them.
const CHAT_STATE: &str = r#"
const want = arguments[1];
const [compose, i] = first(S.compose);
if (compose) {
  if (!want) return { compose: i };
  const [t] = first(S.chat_title);
  const shown = t ? (t.getAttribute('title') || t.textContent || '').replace(/\D/g, '') : '';
  if (shown === want) return { compose: i };
}
const [dialog] = first(S.invalid_dialog);
if (dialog && S.invalid_text.some(t => dialog.innerText.includes(t))) return { invalid: norm(dialog.innerText) };
if (first(S.qr_ref)[0] || first(S.qr_canvas)[0]) return { login: true };
return {};
"#;

/// In the running app (chat list shown, nothing loading): closes a dialog left open, then
/// clicks a link to the chat as a person would click one sent to them. False when the app is
/// not in a state to take it.
const CLICK_CHAT_LINK: &str = r#"
const [loading] = first(S.loading);
const [ready] = first(S.ready);
if (!ready || loading) return false;
const [d] = first(S.invalid_dialog);
if (d) { const b = d.querySelector('button, [role="button"]'); if (b) b.click(); }
const a = document.createElement('a');
a.href = arguments[1];
a.style.display = 'none';
document.body.appendChild(a);
a.click();
a.remove();
return true;
"#;

/// How long a chat link clicked in the app may take to open its chat before the driver loads
/// `/send?phone=` instead.
const IN_APP_WAIT: Duration = Duration::from_secs(3);

/// The chat's newest outgoing bubbles (or only the one with `data-id` = `arguments[3]`): id,
/// icon, time, whether the text reads as `arguments[1]` (or, for a file without a caption, the
/// bubble shows the file name `arguments[4]`), and whether the bubble's time is within
/// `arguments[2]` minutes (negative: any time). Ids that repeat are not ids.
const OBSERVE: &str = r#"
const want = flat(arguments[1]);
const minutes = arguments[2];
const only = arguments[3];
const file = arguments[4];
function showsFile(b) {
  if (!file) return false;
  for (const sel of S.bubble_file_name) {
    let found = [];
    try { found = b.querySelectorAll(sel); } catch (_) {}
    for (const e of found) if ((e.getAttribute('title') || e.textContent || '').trim() === file) return true;
  }
  return false;
}
function recent(b) {
  if (minutes < 0) return true;
  const t = bubbleTime(b);
  const m = t && /^(\d{1,2}):(\d{2})/.exec(t);
  if (!m) return true;
  const now = new Date();
  let diff = (now.getHours() * 60 + now.getMinutes()) - (parseInt(m[1]) * 60 + parseInt(m[2]));
  if (diff < 0) diff += 24 * 60;
  return diff <= minutes;
}
function report(b, i) {
  const [t] = first(S.bubble_text, b);
  const same = want !== '' ? sameText(readText(t || b), want) : showsFile(b);
  return { index: i, id: bubbleId(b), icon: bubbleIcon(b), time: bubbleTime(b), recent: recent(b), same };
}
const all = bubbles();
if (only) {
  for (let i = all.length - 1; i >= 0; i--) {
    if (bubbleId(all[i]) === only) return { count: all.length, bubbles: [report(all[i], i)] };
  }
  return { count: all.length, bubbles: [] };
}
const list = [];
for (let i = Math.max(0, all.length - 40); i < all.length; i++) list.push(report(all[i], i));
const ids = list.map(b => b.id).filter(Boolean);
if (new Set(ids).size !== ids.length) list.forEach(b => { b.id = null; });
return { count: all.length, bubbles: list };
"#;

#[derive(Debug, Deserialize, Default)]
struct ChatState {
    compose: Option<usize>,
    invalid: Option<String>,
    #[serde(default)]
    login: bool,
}

/// What opening a chat with a number showed.
pub(super) enum Chat {
    /// The chat, with the index of the compose-box selector that matched.
    Open { compose: usize },
    /// The invalid-number dialog, with its text: the number is not on WhatsApp.
    NotRegistered(String),
}

/// Opens the chat with `number` and waits for the compose box or the invalid-number dialog,
/// until `deadline`; sends nothing. With `in_app`, first in the running app (a chat link
/// clicked, the header checked); else, or when that does not open the chat, by loading
/// `/send?phone=` (the whole app).
pub(super) async fn open_chat(
    page: Page<'_>,
    web_url: &str,
    number: &str,
    in_app: bool,
    deadline: Instant,
) -> Result<Chat, SendError> {
    let wd = |e: CmdError| to_send_error(&e);
    if in_app && let Some(link) = page.sel.chat_links.first() {
        let href = link.replace("{number}", number);
        let clicked: bool = page
            .run(CLICK_CHAT_LINK, vec![json!(href)])
            .await
            .map_err(wd)?;
        if clicked {
            let until = deadline.min(Instant::now() + IN_APP_WAIT);
            if let Some(chat) = wait_chat(page, Some(number), until).await? {
                return Ok(chat);
            }
            tracing::debug!("the chat link did not open the chat in the app; loading /send");
        }
    }
    let time_left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(
        time_left,
        page.browser.client.goto(&chat_url(web_url, number)),
    )
    .await
    {
        Err(_) => return Err(SendError::new("timeout", "the chat did not open in time")),
        Ok(r) => r.map_err(wd)?,
    }
    wait_chat(page, None, deadline)
        .await?
        .ok_or_else(|| SendError::new("timeout", "no compose box or invalid-number dialog in time"))
}

/// Waits until `until` for the chat (its header showing `number`, when given) or the
/// invalid-number dialog; None when neither came.
async fn wait_chat(
    page: Page<'_>,
    number: Option<&str>,
    until: Instant,
) -> Result<Option<Chat>, SendError> {
    let wd = |e: CmdError| to_send_error(&e);
    loop {
        let st: ChatState = page
            .run(CHAT_STATE, vec![json!(number)])
            .await
            .map_err(wd)?;
        if let Some(compose) = st.compose {
            return Ok(Some(Chat::Open { compose }));
        }
        if let Some(text) = st.invalid {
            return Ok(Some(Chat::NotRegistered(text)));
        }
        if st.login {
            return Err(SendError::new(
                "not-ready",
                "WhatsApp Web shows the login page",
            ));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        tokio::time::sleep(STEP).await;
    }
}

/// How far back (minutes) a retry looks for its text already in the chat.
const LOOK_FIRST_MINUTES: i64 = 10;
const STEP: Duration = Duration::from_millis(50);
/// How often a send waiting for its tick looks for a block page.
const BLOCK_CHECK: Duration = Duration::from_secs(1);

/// What a send needs from the session besides the page.
pub struct SendSettings<'a> {
    pub web_url: &'a str,
    pub timeout: Duration,
    /// Open the chat in the running app first.
    pub in_app: bool,
}

/// Sends one message through the page, within `settings.timeout`. `claims` remembers which
/// bubble belongs to which job, across sends and restarts. A send that fails on a block page
/// (a 429, a ban screen) fails `rate-limited`: the sign of trouble pacing rests a session for.
pub async fn send(
    page: Page<'_>,
    settings: &SendSettings<'_>,
    m: &Outbound,
    claims: &mut Claims,
) -> Result<Receipt, SendError> {
    match send_once(page, settings, m, claims).await {
        Err(e) if e.code != "rate-limited" => match page.blocked().await {
            Some(text) => Err(blocked(&text)),
            None => Err(e),
        },
        r => r,
    }
}

fn blocked(text: &str) -> SendError {
    SendError::new(
        "rate-limited",
        format!("WhatsApp Web shows a block page ({text})"),
    )
}

async fn send_once(
    page: Page<'_>,
    settings: &SendSettings<'_>,
    m: &Outbound,
    claims: &mut Claims,
) -> Result<Receipt, SendError> {
    let deadline = Instant::now() + settings.timeout;
    let wd = |e: CmdError| to_send_error(&e);
    let client = &page.browser.client;

    let compose =
        match open_chat(page, settings.web_url, &m.number, settings.in_app, deadline).await? {
            Chat::Open { compose } => compose,
            Chat::NotRegistered(text) => {
                return Err(SendError::new(
                    "not-registered",
                    format!("WhatsApp Web says: {text}"),
                ));
            }
        };

    let file = m.media.as_ref().map(|a| a.filename.as_str());
    let observe = |minutes: i64, only: Option<String>| {
        page.run::<Snapshot>(
            OBSERVE,
            vec![json!(m.text), json!(minutes), json!(only), json!(file)],
        )
    };
    let before = observe(LOOK_FIRST_MINUTES, None).await.map_err(wd)?;
    // A retry first looks for its text (a file: its caption or name, or the bubble an earlier
    // attempt saw appear) in the chat: an earlier attempt may have gone out.
    let mut ours: Option<Ours> = if m.attempt > 1 {
        bubbles::already_sent(&before, claims, &m.job_id)
    } else {
        None
    };
    // A file being sent is read from disk until it shows a tick.
    let mut _upload = None;
    if let Some(o) = &ours {
        tracing::info!(job.id = %m.job_id, "💬 The message is already in the chat from an earlier attempt; waiting for its tick instead of sending it again");
        if let Some(id) = &o.id {
            claims.claim(id, &m.job_id);
        }
    } else if let Some(a) = &m.media {
        _upload = Some(super::media::send_file(page, m, a, deadline).await?);
    } else {
        super::typing::type_text(
            page,
            super::typing::TextBox::Compose(compose),
            &m.text,
            m.typing,
        )
        .await?;
        let element = client
            .find(Locator::Css(&page.sel.compose[compose]))
            .await
            .map_err(wd)?;
        element.send_keys("\u{E007}").await.map_err(wd)?;
    }

    // Sent once our bubble shows a sent icon.
    let mut next_block_check = Instant::now() + BLOCK_CHECK;
    loop {
        let known_id = ours.as_ref().and_then(|o| o.id.clone());
        let now = observe(-1, known_id).await.map_err(wd)?;
        if ours.is_none() {
            ours = bubbles::after_enter(&before, &now);
            if let Some(Ours { id: Some(id), .. }) = &ours {
                claims.claim(id, &m.job_id);
            }
        }
        let bubble = ours.as_ref().and_then(|o| o.find(&now).map(|b| (o, b)));
        if let Some((o, b)) = bubble
            && let Some(icon) = &b.icon
            && page.sel.sent_icons.iter().any(|s| s == icon)
        {
            return Ok(receipt(o, b, icon));
        }
        // No tick yet: a block page ends the wait at once.
        if Instant::now() >= next_block_check {
            if let Some(text) = page.blocked().await {
                return Err(blocked(&text));
            }
            next_block_check = Instant::now() + BLOCK_CHECK;
        }
        if Instant::now() >= deadline {
            return Err(SendError::new(
                "timeout",
                match bubble.and_then(|(_, b)| b.icon.as_deref()) {
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

fn receipt(o: &Ours, b: &bubbles::Bubble, icon: &str) -> Receipt {
    let already = o.signal == Signal::Text;
    Receipt {
        status: None,
        detail: if already {
            format!("already in the chat from an earlier attempt ({icon}); not sent again")
        } else {
            format!("sent ({icon})")
        },
        bubble_id: b.id.clone(),
        bubble_time: b.time.clone(),
        matched_by: Some(o.signal.as_str().to_string()),
        already_sent: already,
    }
}
