//! Typing a text into the compose box (or a media preview's caption box) as a person would:
//! line by line (Shift+Enter between lines), checking what the box holds before anything is
//! sent; with a typing time (pacing), word by word over that time, so the recipient sees
//! "typing…".

use std::time::Duration;

use fantoccini::error::CmdError;
use serde_json::json;
use tokio::time::Instant;

use super::page::{Page, to_send_error};
use crate::whatsapp::SendError;

/// Inserts one line at the caret of the box as text input (any Unicode, which ChromeDriver's
/// key typing cannot do outside the BMP).
const INSERT: &str = r#"
const box = textBox(arguments[2]);
if (!box) return false;
box.focus();
return document.execCommand('insertText', false, arguments[1]);
"#;

/// Whether the box holds the text, read as the page renders it (emoji as images).
const COMPOSED: &str = r#"
const box = textBox(arguments[2]);
return box ? sameText({ text: readText(box).text, cut: false }, flat(arguments[1])) : false;
"#;

const CLEAR: &str = r#"
const box = textBox(arguments[1]);
if (!box) return false;
box.focus();
document.execCommand('selectAll', false, null);
document.execCommand('delete', false, null);
return true;
"#;

const BOX: &str = "return textBox(arguments[1]);";

/// The box a text goes into.
#[derive(Debug, Clone, Copy)]
pub(super) enum TextBox {
    /// The chat's compose box, by the index of the selector that matched.
    Compose(usize),
    /// The media preview's caption box.
    Caption,
}

impl TextBox {
    fn arg(self) -> serde_json::Value {
        match self {
            TextBox::Compose(i) => json!(i),
            TextBox::Caption => json!("caption"),
        }
    }
}

/// One step of typing a text: some words, or a new line.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    NewLine,
}

/// The text as it is typed: each line whole, or, with a typing time, word by word (never
/// splitting a word, so an emoji sequence goes in whole).
fn typed_pieces(text: &str, typing: Duration) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push(Piece::NewLine);
        }
        if line.is_empty() {
            continue;
        }
        if typing.is_zero() {
            out.push(Piece::Text(line.to_string()));
            continue;
        }
        // Words with the spaces before them.
        let mut start = 0;
        for (at, _) in line.match_indices(' ') {
            if at > start && !line[start..at].trim().is_empty() {
                out.push(Piece::Text(line[start..at].to_string()));
                start = at;
            }
        }
        out.push(Piece::Text(line[start..].to_string()));
    }
    out
}

/// Types the text into the box, line by line, and checks what the box holds. With a
/// `typing` time (pacing), the words go in one after another over that time, so the recipient
/// sees "typing…" until the text is sent.
pub(super) async fn type_text(
    page: Page<'_>,
    target: TextBox,
    text: &str,
    typing: Duration,
) -> Result<(), SendError> {
    let wd = |e: CmdError| to_send_error(&e);
    let Some(element) = page.element(BOX, vec![target.arg()]).await.map_err(wd)? else {
        return Err(SendError::new(
            "protocol-error",
            "the box to type into is gone",
        ));
    };
    let _: bool = page.run(CLEAR, vec![target.arg()]).await.map_err(wd)?;
    let pieces = typed_pieces(text, typing);
    let started = Instant::now();
    for (k, piece) in pieces.iter().enumerate() {
        if !typing.is_zero() {
            tokio::time::sleep_until(started + typing.mul_f64(k as f64 / pieces.len() as f64))
                .await;
        }
        match piece {
            // Shift+Enter: a new line, not a send.
            Piece::NewLine => element
                .send_keys("\u{E008}\u{E007}\u{E000}")
                .await
                .map_err(wd)?,
            Piece::Text(t) => {
                let ok: bool = page
                    .run(INSERT, vec![json!(t), target.arg()])
                    .await
                    .map_err(wd)?;
                if !ok {
                    return Err(SendError::new(
                        "protocol-error",
                        "the compose box did not take the text",
                    ));
                }
            }
        }
    }
    tokio::time::sleep_until(started + typing).await;
    let composed: bool = page
        .run(COMPOSED, vec![json!(text), target.arg()])
        .await
        .map_err(wd)?;
    if !composed {
        let _: Result<bool, _> = page.run(CLEAR, vec![target.arg()]).await;
        return Err(SendError::new(
            "protocol-error",
            "the compose box does not hold the text as given; nothing was sent",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_text_goes_in_word_by_word_and_loses_nothing() {
        let text = "Halo  Ani,\nkode 42 👨‍👩‍👧";
        let pieces = typed_pieces(text, Duration::from_secs(1));
        let mut back = String::new();
        for p in &pieces {
            match p {
                Piece::Text(t) => back.push_str(t),
                Piece::NewLine => back.push('\n'),
            }
        }
        assert_eq!(back, text);
        assert_eq!(pieces[0], Piece::Text("Halo".into()));
        assert!(pieces.contains(&Piece::Text(" 👨‍👩‍👧".into())));
        assert_eq!(
            typed_pieces(text, Duration::ZERO),
            vec![
                Piece::Text("Halo  Ani,".into()),
                Piece::NewLine,
                Piece::Text("kode 42 👨‍👩‍👧".into())
            ]
        );
    }
}
