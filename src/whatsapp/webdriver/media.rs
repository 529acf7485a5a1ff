//! Sending a file the way a person would: the attach button, the file input that takes this
//! kind of file (chosen by its `accept`, never by its place in the menu), the caption typed into
//! the preview's own caption box (never the chat's compose box, which the generic selectors
//! also match), and the preview's send button. The file reaches Chromium through a temporary
//! file beside the session's profile, removed when the send is over.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::error::CmdError;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::page::{Page, to_send_error};
use super::typing::{TextBox, type_text};
use crate::domain::MediaKind;
use crate::whatsapp::{Attachment, Outbound, SendError};

const CLICK_ATTACH: &str = r#"
const [b] = first(S.attach);
if (!b) return false;
(b.closest('button, [role="button"]') || b).click();
return true;
"#;

const FILE_INPUT: &str = r#"
const list = arguments[1] === 'photos' ? S.media_input_photos : S.media_input_documents;
return first(list)[0];
"#;

/// The preview after a file was chosen: its caption box and its send button.
const PREVIEW: &str = r#"
return { caption: !!captionBox(), send: !!mediaSend() };
"#;

const CLICK_SEND: &str = r#"
const b = mediaSend();
if (!b) return false;
(b.closest('button, [role="button"]') || b).click();
return true;
"#;

/// The preview's send button: for each selector, the last match outside a footer (the chat's
/// own send button is in its footer).
const MEDIA_SEND_FN: &str = r#"
function mediaSend() {
  for (const sel of S.media_send) {
    let found = [];
    try { found = Array.from(document.querySelectorAll(sel)); } catch (_) {}
    found = found.filter(e => !e.closest('footer'));
    if (found.length) return found[found.length - 1];
  }
  return null;
}
"#;

#[derive(Deserialize)]
struct Preview {
    caption: bool,
    send: bool,
}

const STEP: Duration = Duration::from_millis(50);
/// How long the attach menu and the preview may take to show.
const UI_WAIT: Duration = Duration::from_secs(10);

/// A file on disk for Chromium to read, removed (with its folder) when dropped.
pub(super) struct Upload {
    _dir: tempfile::TempDir,
}

/// Attaches `a` in the open chat, types `m.text` as its caption, and presses send. The
/// returned [`Upload`] must live until the message shows a tick: the page reads the file
/// from disk.
pub(super) async fn send_file(
    page: Page<'_>,
    m: &Outbound,
    a: &Attachment,
    deadline: Instant,
) -> Result<Upload, SendError> {
    let wd = |e: CmdError| to_send_error(&e);
    let (upload, path) = write_upload(page.browser.uploads_dir(), a).await?;
    let until = deadline.min(Instant::now() + UI_WAIT);

    let which = match a.kind {
        MediaKind::Image | MediaKind::Video => "photos",
        MediaKind::Audio | MediaKind::Document => "documents",
    };
    let clicked: bool = page.run(CLICK_ATTACH, vec![]).await.map_err(wd)?;
    if !clicked {
        return Err(SendError::new(
            "protocol-error",
            "the chat has no attach button ([whatsapp.webdriver.selectors] attach)",
        ));
    }
    let input = loop {
        if let Some(input) = page
            .element(FILE_INPUT, vec![json!(which)])
            .await
            .map_err(wd)?
        {
            break input;
        }
        if Instant::now() >= until {
            return Err(SendError::new(
                "protocol-error",
                format!(
                    "the attach menu shows no file input for {which} ([whatsapp.webdriver.selectors] media_input_{which})"
                ),
            ));
        }
        tokio::time::sleep(STEP).await;
    };
    input.send_keys(&path.to_string_lossy()).await.map_err(wd)?;

    let preview = format!("{MEDIA_SEND_FN}\n{PREVIEW}");
    let want_caption = !m.text.is_empty();
    loop {
        let p: Preview = page.run(&preview, vec![]).await.map_err(wd)?;
        if p.send && (p.caption || !want_caption) {
            break;
        }
        if Instant::now() >= until {
            return Err(SendError::new(
                "protocol-error",
                if p.send {
                    "the media preview has no caption box ([whatsapp.webdriver.selectors] media_caption)"
                } else {
                    "the media preview did not open ([whatsapp.webdriver.selectors] media_send)"
                },
            ));
        }
        tokio::time::sleep(STEP).await;
    }
    if want_caption {
        type_text(page, TextBox::Caption, &m.text, m.typing).await?;
    }
    let sent: bool = page
        .run(&format!("{MEDIA_SEND_FN}\n{CLICK_SEND}"), vec![])
        .await
        .map_err(wd)?;
    if !sent {
        return Err(SendError::new(
            "protocol-error",
            "the media preview's send button went away",
        ));
    }
    Ok(upload)
}

/// The file under the session's uploads folder, in a folder of its own so that it keeps its
/// name (which the recipient sees for a document).
async fn write_upload(dir: PathBuf, a: &Attachment) -> Result<(Upload, PathBuf), SendError> {
    let io = |e: std::io::Error| {
        SendError::new(
            "storage-error",
            format!("cannot write the file for the browser: {e}"),
        )
    };
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let tmp = tempfile::Builder::new()
        .prefix("send-")
        .tempdir_in(&dir)
        .map_err(io)?;
    let path = tmp.path().join(&a.filename);
    tokio::fs::write(&path, a.data.as_slice())
        .await
        .map_err(io)?;
    Ok((Upload { _dir: tmp }, path))
}
