//! Every selector and text the driver looks for in WhatsApp Web, as ordered fallbacks with the
//! public ones as defaults (../shared/whatsapp-web.md). They live with the driver and are set in
//! `[whatsapp.webdriver.selectors]`, so an operator follows a WhatsApp Web change without a
//! rebuild. Data only: nothing here imports the rest of the gateway.

use serde::{Deserialize, Serialize};

/// Every selector and text the WebDriver driver relies on, each an ordered list of fallbacks
/// (first match wins), so an operator can follow a WhatsApp Web change without a rebuild.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Selectors {
    pub loading: Vec<String>,
    pub qr_canvas: Vec<String>,
    /// The element holding the QR string in `data-ref`.
    pub qr_ref: Vec<String>,
    pub qr_reload: Vec<String>,
    pub ready: Vec<String>,
    /// Texts of the conflict screen ("open in another window").
    pub conflict_text: Vec<String>,
    /// Button texts that take the session over on the conflict screen.
    pub conflict_takeover: Vec<String>,
    /// Texts of a block page (a 429 error page, a ban screen): a send that meets one fails
    /// `rate-limited`, which rests a paced session for its cooldown.
    pub blocked_text: Vec<String>,
    pub invalid_dialog: Vec<String>,
    pub invalid_text: Vec<String>,
    pub compose: Vec<String>,
    pub outgoing: Vec<String>,
    /// Inside an outgoing bubble: its text.
    pub bubble_text: Vec<String>,
    /// Texts of the button that expands a long message cut in its bubble.
    pub read_more_text: Vec<String>,
    /// Inside an outgoing bubble: the status icon (`data-icon`).
    pub bubble_status: Vec<String>,
    /// `data-icon` values that mean "still pending".
    pub pending_icons: Vec<String>,
    /// `data-icon` values that mean "sent" (or better).
    pub sent_icons: Vec<String>,
    /// `data-icon` values that mean "delivered" (two ticks; read when blue, see `read_labels`).
    pub delivered_icons: Vec<String>,
    /// `data-icon` values that mean "read" by themselves (older builds).
    pub read_icons: Vec<String>,
    /// Words in a tick's `aria-label` that mean "read" (the blue double tick).
    pub read_labels: Vec<String>,
    /// Messages others sent, in the open chat (their `data-id` starts `false_`).
    pub incoming: Vec<String>,
    /// In a chat list row: the unread badge (its text or `aria-label` holds the count).
    pub unread_badge: Vec<String>,
    /// In a chat list row: the last message's text (its `title`, else its text).
    pub chat_row_preview: Vec<String>,
    /// The chat list's rows.
    pub chat_rows: Vec<String>,
    /// Inside a row: the element whose `title` names the chat (the number, for an unsaved
    /// contact).
    pub chat_row_title: Vec<String>,
    /// Texts of the QR page's link to log in with a phone number instead.
    pub pairing_link_text: Vec<String>,
    /// The phone number field of that form.
    pub pairing_phone: Vec<String>,
    /// Texts of the button that asks for the code.
    pub pairing_next_text: Vec<String>,
    /// The element whose `data-link-code` holds the 8-character code.
    pub pairing_code: Vec<String>,
    /// `localStorage` keys that hold the account's own id (`"62812…:12@c.us"`).
    pub me_storage_keys: Vec<String>,
    /// In the open chat's header: the element whose `title` (or text) shows the number.
    pub chat_title: Vec<String>,
    /// Links that open a chat in the running app, `{number}` standing for the digits; the
    /// first is clicked (a fresh `/send?phone=` load is the fallback).
    pub chat_links: Vec<String>,
    /// The attach button (its `button` ancestor is clicked).
    pub attach: Vec<String>,
    /// The attach menu's file input for photos and videos, chosen by its `accept` (never by
    /// its position, which changes between builds).
    pub media_input_photos: Vec<String>,
    /// The attach menu's file input for documents (any file), by its `accept`.
    pub media_input_documents: Vec<String>,
    /// The media preview's caption box; one inside a `footer` (the chat's compose box, which
    /// the generic selectors also match) is never taken.
    pub media_caption: Vec<String>,
    /// The media preview's send button: the last match on the page outside the chat's footer.
    pub media_send: Vec<String>,
    /// Inside an outgoing bubble: the element whose `title` (or text) is a document's file name.
    pub bubble_file_name: Vec<String>,
    /// The main menu's button, to log out from the page.
    pub menu: Vec<String>,
    /// Texts of "Log out", in the menu and in its confirmation dialog.
    pub logout_text: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for Selectors {
    fn default() -> Self {
        Self {
            loading: strings(&["div[data-testid='wa-web-loading-screen']", "progress"]),
            qr_canvas: strings(&[
                "canvas[aria-label='Scan this QR code to link a device!']",
                "canvas[aria-label='Scan me!']",
                "div[data-ref] canvas[aria-label]",
            ]),
            qr_ref: strings(&["div[data-ref]"]),
            qr_reload: strings(&["div[data-ref] > span > button", "div[data-ref] button"]),
            ready: strings(&[
                "#pane-side",
                "#side",
                "span[data-icon='wa-wordmark-refreshed']",
                "span[data-icon='wa-wordmark']",
            ]),
            conflict_text: strings(&["WhatsApp is open in another window"]),
            conflict_takeover: strings(&["Use here", "Use Here"]),
            blocked_text: strings(&[
                "HTTP ERROR 429",
                "is banned from using WhatsApp",
                "not allowed to use WhatsApp",
            ]),
            invalid_dialog: strings(&[
                "div[role='dialog']",
                "div[data-animate-modal-popup='true']",
            ]),
            invalid_text: strings(&["Phone number shared via url is invalid"]),
            compose: strings(&[
                "#main footer div[contenteditable='true'][role='textbox']",
                "div[contenteditable='true'][aria-placeholder='Type a message']",
                "div[contenteditable='true'][data-tab='10']",
            ]),
            outgoing: strings(&["#main div.message-out", "div.message-out"]),
            bubble_text: strings(&["span.selectable-text", "span[dir='ltr']"]),
            read_more_text: strings(&["Read more"]),
            bubble_status: strings(&["span[data-icon^='msg-']"]),
            pending_icons: strings(&["msg-time"]),
            sent_icons: strings(&["msg-check", "msg-dblcheck", "msg-dblcheck-ack"]),
            delivered_icons: strings(&["msg-dblcheck"]),
            read_icons: strings(&["msg-dblcheck-ack"]),
            read_labels: strings(&["Read"]),
            incoming: strings(&["#main div[data-id^='false_']", "#main div.message-in"]),
            unread_badge: strings(&[
                "span[data-testid='icon-unread-count']",
                "span[aria-label*='unread message']",
            ]),
            chat_row_preview: strings(&[
                "span[data-testid='last-msg-status'] span[title]",
                "div[role='gridcell'] + div span[title]",
                "span.last[title]",
            ]),
            chat_rows: strings(&["#pane-side div[role='row']", "#pane-side [role='listitem']"]),
            chat_row_title: strings(&["span[title]"]),
            pairing_link_text: strings(&["Link with phone number", "Log in with phone number"]),
            pairing_phone: strings(&[
                "input[aria-label='Type your phone number.']",
                "input[aria-label='Type your phone number to log in to WhatsApp']",
                "input[type='tel']",
            ]),
            pairing_next_text: strings(&["Next"]),
            pairing_code: strings(&[
                "div[aria-details='link-device-phone-number-code-screen-instructions']",
                "[data-link-code]",
            ]),
            me_storage_keys: strings(&["last-wid-md", "last-wid"]),
            chat_title: strings(&["#main header span[title]", "#main header span[dir='auto']"]),
            chat_links: strings(&[
                "https://api.whatsapp.com/send?phone={number}",
                "https://wa.me/{number}",
            ]),
            attach: strings(&[
                "span[data-icon='plus-rounded']",
                "span[data-icon='attach-menu-plus']",
                "span[data-testid='clip']",
                "div[title='Attach']",
            ]),
            media_input_photos: strings(&[
                "input[type='file'][accept='image/*,video/mp4,video/3gpp,video/quicktime']",
                "input[type='file'][accept^='image/']",
            ]),
            media_input_documents: strings(&["input[type='file'][accept='*']"]),
            media_caption: strings(&[
                "div[aria-label='Add a caption'][contenteditable='true']",
                "div[aria-placeholder='Add a caption'][contenteditable='true']",
                "div[contenteditable='true'][data-tab='10']",
            ]),
            media_send: strings(&[
                "div[aria-label='Send'][role='button']",
                "span[data-icon='wds-ic-send-filled']",
                "span[data-icon='send']",
            ]),
            bubble_file_name: strings(&["span[title]", "div[title]"]),
            menu: strings(&[
                "#side header span[data-icon='menu']",
                "span[data-icon='menu']",
                "div[title='Menu']",
            ]),
            logout_text: strings(&["Log out", "Log Out"]),
        }
    }
}
