//! The device's link to the account, besides the QR code. Logging in without a QR code: on the
//! QR page, "Link with phone number", the account's number, "Next", then the 8-character code
//! WhatsApp Web shows, which the owner types on the phone (Linked devices → Link with phone
//! number instead). Logging out: the menu, "Log out", and its confirmation, so that the phone no
//! longer lists the device. Each step waits for the page to show what the next one needs,
//! within `within`.

use std::time::Duration;

use fantoccini::Locator;
use tokio::time::Instant;

use super::page::{self, Page};
use crate::whatsapp::SendError;

const CLICK_BY_TEXT: &str = r#"
const texts = arguments[1];
for (const e of document.querySelectorAll('button, a, [role="button"], span, div')) {
  if (e.children.length > 2) continue;
  if (texts.some(t => norm(e.innerText) === t)) { e.click(); return true; }
}
return false;
"#;

const CLICK_SELECTOR: &str = r#"
const [e] = first(arguments[1]);
if (!e) return false;
(e.closest('[role="button"], button') || e).click();
return true;
"#;

const READ_CODE: &str = r#"
const [e] = first(S.pairing_code);
if (!e) return null;
const raw = e.getAttribute('data-link-code') || e.innerText || '';
return raw.replace(/[^A-Za-z0-9]/g, '');
"#;

const STEP: Duration = Duration::from_millis(200);

/// Waits for `look` to give something, up to `within`.
async fn until<T, F, Fut>(within: Duration, what: &str, mut look: F) -> Result<T, SendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, SendError>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = look().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(SendError::new(
                "protocol-error",
                format!(
                    "WhatsApp Web did not show {what} within {}s",
                    within.as_secs()
                ),
            ));
        }
        tokio::time::sleep(STEP).await;
    }
}

fn err(e: fantoccini::error::CmdError) -> SendError {
    page::to_send_error(&e)
}

/// Asks the page for a pairing code for `phone` (international digits) and returns it.
pub(super) async fn pairing_code(
    page: Page<'_>,
    phone: &str,
    within: Duration,
) -> Result<String, SendError> {
    let sel = page.sel;
    until(within, "the \"Link with phone number\" link", || async {
        let clicked: bool = page
            .run(
                CLICK_BY_TEXT,
                vec![serde_json::json!(sel.pairing_link_text)],
            )
            .await
            .map_err(err)?;
        Ok(clicked.then_some(()))
    })
    .await?;
    let field = until(within, "the phone number field", || async {
        for css in &sel.pairing_phone {
            if let Ok(e) = page.browser.client.find(Locator::Css(css)).await {
                return Ok(Some(e));
            }
        }
        Ok(None)
    })
    .await?;
    page.pulse.beat();
    field.clear().await.map_err(err)?;
    field.send_keys(phone).await.map_err(err)?;
    until(within, "the Next button", || async {
        let clicked: bool = page
            .run(
                CLICK_BY_TEXT,
                vec![serde_json::json!(sel.pairing_next_text)],
            )
            .await
            .map_err(err)?;
        Ok(clicked.then_some(()))
    })
    .await?;
    until(within, "a pairing code", || async {
        let code: Option<String> = page.run(READ_CODE, vec![]).await.map_err(err)?;
        Ok(code.filter(|c| c.len() == 8))
    })
    .await
}

/// Clicks the first element of a list of texts.
async fn click_text(
    page: Page<'_>,
    within: Duration,
    what: &str,
    texts: &[String],
) -> Result<(), SendError> {
    until(within, what, || async {
        let clicked: bool = page
            .run(CLICK_BY_TEXT, vec![serde_json::json!(texts)])
            .await
            .map_err(err)?;
        Ok(clicked.then_some(()))
    })
    .await
}

/// Logs the device out from the page (menu → "Log out" → "Log out"), so that the phone no
/// longer lists it; done once the QR page shows.
pub(super) async fn log_out(page: Page<'_>, within: Duration) -> Result<(), SendError> {
    let sel = page.sel;
    until(within, "the menu", || async {
        let clicked: bool = page
            .run(CLICK_SELECTOR, vec![serde_json::json!(sel.menu)])
            .await
            .map_err(err)?;
        Ok(clicked.then_some(()))
    })
    .await?;
    click_text(page, within, "\"Log out\" in the menu", &sel.logout_text).await?;
    // The confirmation has a "Log out" button too: the one in the dialog.
    until(within, "the confirmation", || async {
        let clicked: bool = page
            .run(CLICK_IN_DIALOG, vec![serde_json::json!(sel.logout_text)])
            .await
            .map_err(err)?;
        Ok(clicked.then_some(()))
    })
    .await?;
    until(within, "the QR page after the logout", || async {
        let p = page.probe().await.map_err(err)?;
        Ok((p.state == page::PageState::Qr).then_some(()))
    })
    .await
}

const CLICK_IN_DIALOG: &str = r#"
const texts = arguments[1];
const [d] = first(S.invalid_dialog);
if (!d) return false;
for (const b of d.querySelectorAll('button, [role="button"]')) {
  if (texts.some(t => norm(b.innerText) === t)) { b.click(); return true; }
}
return false;
"#;
