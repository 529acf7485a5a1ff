//! Receipts without a page load per message: between sends, one look at what the page shows
//! already. The open chat's bubbles carry each message's ticks; the chat list shows, for chats
//! whose last message is ours, that message's ticks, which cover the earlier ones. Only what
//! changed since the last look is reported, so a quiet page costs one script and nothing else.

use std::collections::HashMap;

use serde::Deserialize;

use super::page::Page;
use crate::whatsapp::{Ack, AckSeen};

/// One look at the ticks the page shows.
const LOOK: &str = r#"
const out = [];
function ackOf(icon, label) {
  if (!icon) return null;
  const read = S.read_icons.includes(icon) || (S.delivered_icons.includes(icon) && S.read_labels.some(w => (label || '').includes(w)));
  if (read) return 'read';
  if (S.delivered_icons.includes(icon)) return 'delivered';
  return null;
}
function tickIn(el) {
  for (const t of el.querySelectorAll('[data-icon]')) {
    const icon = t.getAttribute('data-icon');
    if (S.sent_icons.includes(icon) || S.read_icons.includes(icon)) return [icon, t.getAttribute('aria-label')];
  }
  return [null, null];
}
for (const b of bubbles()) {
  const id = bubbleId(b);
  const [icon, label] = tickIn(b);
  const ack = ackOf(icon, label);
  if (id && ack) out.push({ bubble: id, ack });
}
let rows = [];
for (const sel of S.chat_rows) {
  try { const found = document.querySelectorAll(sel); if (found.length) { rows = Array.from(found); break; } } catch (_) {}
}
for (const row of rows) {
  const [t] = first(S.chat_row_title, row);
  const title = t ? (t.getAttribute('title') || t.textContent || '') : '';
  const digits = title.replace(/\D/g, '');
  const [icon, label] = tickIn(row);
  const ack = ackOf(icon, label);
  if (digits.length >= 8 && ack) out.push({ chat: digits, ack });
}
return out;
"#;

#[derive(Debug, Deserialize)]
struct Seen {
    #[serde(default)]
    bubble: Option<String>,
    #[serde(default)]
    chat: Option<String>,
    ack: Ack,
}

/// What the last looks reported, so that only changes go on.
#[derive(Default)]
pub(super) struct Watch {
    last: HashMap<String, Ack>,
}

/// Most receipts remembered between looks.
const MAX_REMEMBERED: usize = 10_000;

impl Watch {
    /// Looks at the page once; the receipts that changed since the last look.
    pub(super) async fn look(
        &mut self,
        page: Page<'_>,
    ) -> Result<Vec<AckSeen>, fantoccini::error::CmdError> {
        let seen: Vec<Seen> = page.run(LOOK, vec![]).await?;
        if self.last.len() > MAX_REMEMBERED {
            self.last.clear();
        }
        let mut changed = Vec::new();
        for s in seen {
            let (key, ack) = match (&s.bubble, &s.chat) {
                (Some(b), _) => (b.clone(), s.ack),
                (None, Some(c)) => (format!("chat:{c}"), s.ack),
                _ => continue,
            };
            if self.last.get(&key).is_some_and(|&a| a >= ack) {
                continue;
            }
            let seen = match (s.bubble, s.chat) {
                (Some(b), _) => match chat_of_bubble(&b) {
                    Some(chat_id) => AckSeen {
                        chat_id,
                        bubble_id: Some(b),
                        ack: s.ack,
                    },
                    None => continue,
                },
                (None, Some(digits)) => AckSeen {
                    chat_id: format!("{digits}@c.us"),
                    bubble_id: None,
                    ack: s.ack,
                },
                _ => continue,
            };
            self.last.insert(key, ack);
            changed.push(seen);
        }
        Ok(changed)
    }
}

/// `true_6281234567890@c.us_3EB0…` → `6281234567890@c.us`.
fn chat_of_bubble(id: &str) -> Option<String> {
    let rest = id.strip_prefix("true_")?;
    let (chat, _) = rest.split_once('_')?;
    chat.ends_with("@c.us").then(|| chat.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bubble_id_names_its_chat() {
        assert_eq!(
            super::chat_of_bubble("true_6281234567890@c.us_3EB0ABCD").as_deref(),
            Some("6281234567890@c.us")
        );
        assert_eq!(super::chat_of_bubble("false_6281@c.us_X"), None);
        assert_eq!(super::chat_of_bubble("3EB0ABCD"), None);
    }
}
