//! A local stand-in for WhatsApp Web, served on 127.0.0.1:0: the page (`fake_whatsapp.html`)
//! follows the DOM of ../shared/whatsapp-web.md, and this server plays the phones and
//! WhatsApp's servers. Each browser profile is its own device with its own QR code; a phone
//! (an account, by its number) links a device by scanning that device's code, or by typing the
//! pairing code the device shows. Tests drive it directly: scan a QR, confirm a pairing code,
//! log an account (or all) out from the phone, open a conflicting window, freeze the page (now,
//! or when the next message is sent), mark numbers unregistered, hold ticks at the clock, and
//! choose per chat how the page renders messages ([`Render`]). It records which account sent
//! what to which chat.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const PAGE: &str = include_str!("fake_whatsapp.html");

/// The account [`FakeWa::scan`] links: the phone of the tests that use one account.
pub const ACCOUNT: &str = "6281100000001";

#[derive(Clone)]
pub struct Sent {
    /// The account that sent it.
    pub account: String,
    pub phone: String,
    pub text: String,
    /// The message id the page gave it (the end of its bubble's `data-id`).
    pub id: String,
    delivered: bool,
    /// The recipient's phone has it (two ticks).
    reached: bool,
    /// The recipient read it (blue ticks).
    read: bool,
    at_ms: u128,
    /// How long the recipient saw "typing…": from the first input in the box to the send.
    pub typing_ms: u64,
    /// How many chats the page had opened when this one was sent ([`FakeWa::opens`]).
    pub opens_before: u32,
    /// The file it carried (`text` is then its caption).
    pub media: Option<SentMedia>,
}

/// A file as the recipient got it: what the page read from the file the driver chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMedia {
    pub name: String,
    /// The type the browser gave the file.
    #[serde(rename = "type")]
    pub mime: String,
    pub size: usize,
    pub sha256: String,
    /// Through which input: `photo` or `document`.
    pub kind: String,
}

/// How the page renders the messages of a chat: each way the real site does it.
#[derive(Debug, Clone, Serialize)]
pub struct Render {
    /// Emoji in bubbles as `<img class="emoji" alt="😀">` (their `innerText` is empty).
    pub emoji_img: bool,
    /// Emoji in the compose box as images, as Lexical shows them.
    pub compose_emoji_img: bool,
    /// Line breaks: `pre-wrap` (kept by CSS), `normal` (collapsed by CSS) or `br` elements.
    pub newlines: &'static str,
    /// Texts longer than this many characters are cut, with a "Read more" button; 0: never.
    pub read_more: usize,
    /// URLs as `<a href>` links, with a preview card above the text.
    pub links: bool,
    /// Spaces as no-break spaces.
    pub nbsp: bool,
    /// Bubbles carry `data-id="true_<chat>@c.us_<id>"`.
    pub data_id: bool,
    /// The attach menu's order: `documents-first` or `photos-first` (builds differ).
    pub attach_order: &'static str,
}

impl Default for Render {
    fn default() -> Self {
        Render {
            emoji_img: false,
            compose_emoji_img: false,
            newlines: "pre-wrap",
            read_more: 0,
            links: false,
            nbsp: false,
            data_id: true,
            attach_order: "documents-first",
        }
    }
}

impl Render {
    /// Every rendering the tests send under, by name: each quirk alone, then together as the
    /// real site shows them, with and without `data-id`.
    pub fn all() -> Vec<(&'static str, Render)> {
        let d = Render::default;
        let real = Render {
            emoji_img: true,
            compose_emoji_img: true,
            newlines: "normal",
            read_more: 100,
            links: true,
            nbsp: true,
            data_id: true,
            attach_order: "photos-first",
        };
        vec![
            ("plain", d()),
            (
                "emoji-images",
                Render {
                    emoji_img: true,
                    compose_emoji_img: true,
                    ..d()
                },
            ),
            (
                "collapsed-lines",
                Render {
                    newlines: "normal",
                    ..d()
                },
            ),
            (
                "br-lines",
                Render {
                    newlines: "br",
                    ..d()
                },
            ),
            (
                "read-more",
                Render {
                    read_more: 100,
                    ..d()
                },
            ),
            ("links", Render { links: true, ..d() }),
            ("no-break-spaces", Render { nbsp: true, ..d() }),
            (
                "real-site-without-ids",
                Render {
                    data_id: false,
                    ..real.clone()
                },
            ),
            ("real-site", real),
        ]
    }
}

/// One browser profile's login screen.
struct Device {
    qr_seq: u32,
    qr_issued: Instant,
}

/// A pairing code a device showed, until the phone confirms it.
struct Pairing {
    device: String,
    account: String,
    confirmed: bool,
}

/// A message someone sent to an account.
#[derive(Clone)]
struct In {
    account: String,
    phone: String,
    id: String,
    text: String,
    at_ms: u128,
    /// The account opened the chat since (the sender sees blue ticks).
    read: bool,
}

pub(crate) struct Inner {
    /// Which page of each login is connected and in use.
    pub(crate) pages: crate::fake_pages::Pages,
    devices: HashMap<String, Device>,
    /// Messages people sent to the accounts, in order.
    incoming: Vec<In>,
    /// The device that asked for a QR code last (for the tests with one browser).
    last_device: Option<String>,
    qr_rotate: Duration,
    qr_max: u32,
    /// Codes scanned, and by which account, until their device polls.
    scanned: HashMap<String, String>,
    scans: u32,
    /// Login tokens: (account, still valid).
    sessions: HashMap<String, (String, bool)>,
    pairings: HashMap<String, Pairing>,
    conflict: bool,
    freeze: bool,
    unregistered: HashSet<String>,
    /// Chats whose ticks stay at the clock.
    held: HashSet<String>,
    /// Freeze the page when the next message is sent (after the server got it).
    freeze_on_send: bool,
    frozen_at: Option<Instant>,
    render: HashMap<String, Render>,
    sent: Vec<Sent>,
    loading_ms: u64,
    /// Full loads of the app (the page itself, `/` or `/send`).
    loads: u32,
    /// A link to a chat clicked in the running app opens that chat in place.
    in_app_links: bool,
    /// ... after this long (a slow phone or network).
    open_delay_ms: u64,
    /// Chats the page opened (each load of a chat's messages).
    opens: u32,
    /// Contacts saved on the account's phone: the page shows their names, not their numbers.
    contacts: HashMap<String, String>,
    /// Accounts WhatsApp has banned: their messages are refused and their pages show the ban.
    banned: HashSet<String>,
    /// Recipients whose phone is off: our messages to them stay at one tick.
    offline: HashSet<String>,
    /// Read shown as older builds did (`msg-dblcheck-ack`), not as a blue `msg-dblcheck`.
    old_read_icon: bool,
}

#[derive(Clone)]
pub struct FakeWa {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

fn qr_ref(device: &str, seq: u32) -> String {
    format!(
        "2@fake-ref-{seq}-{device}-{:x},noiseKeyAbc+/=,identityKeyDef+/=,advSecretGhi+/=",
        seq * 7919
    )
}

impl Inner {
    fn device(&mut self, id: &str) -> &mut Device {
        self.devices
            .entry(id.to_string())
            .or_insert_with(|| Device {
                qr_seq: 1,
                qr_issued: Instant::now(),
            })
    }

    /// The code each device shows now.
    fn current_refs(&self) -> Vec<(String, String)> {
        self.devices
            .iter()
            .map(|(id, d)| (id.clone(), qr_ref(id, d.qr_seq)))
            .collect()
    }
}

impl FakeWa {
    pub async fn start() -> FakeWa {
        Self::start_with(Duration::from_secs(20), 5).await
    }

    /// A fake whose QR code changes every `rotate`, and which shows a reload button after
    /// `max` codes.
    pub async fn start_with(rotate: Duration, max: u32) -> FakeWa {
        let inner = Arc::new(Mutex::new(Inner {
            pages: Default::default(),
            devices: HashMap::new(),
            incoming: Vec::new(),
            last_device: None,
            qr_rotate: rotate,
            qr_max: max,
            scanned: HashMap::new(),
            scans: 0,
            sessions: HashMap::new(),
            pairings: HashMap::new(),
            conflict: false,
            freeze: false,
            unregistered: HashSet::new(),
            held: HashSet::new(),
            freeze_on_send: false,
            frozen_at: None,
            render: HashMap::new(),
            sent: Vec::new(),
            loading_ms: 300,
            loads: 0,
            in_app_links: true,
            open_delay_ms: 0,
            opens: 0,
            contacts: HashMap::new(),
            banned: HashSet::new(),
            offline: HashSet::new(),
            old_read_icon: false,
        }));
        let app = Router::new()
            .route("/", get(page))
            .route("/send", get(page))
            .route("/fake/linkopen", get(link_open))
            .route("/fake/config", get(config))
            .route("/fake/qr", get(qr))
            .route("/fake/qr/reload", post(qr_reload))
            .route("/fake/poll", get(poll))
            .route("/fake/session", get(session))
            .route("/fake/live", get(crate::fake_pages::live))
            .route("/fake/pair", post(pair))
            .route("/fake/unlink", post(unlink))
            .route("/fake/takeover", post(takeover))
            .route("/fake/registered", get(registered))
            .route("/fake/chat", get(chat))
            .route("/fake/chats", get(chats))
            .route("/fake/send", post(send))
            .route("/fake/read", post(read))
            .route("/fake/contact", get(contact))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeWa { url, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// The QR string the page that asked last shows now.
    pub fn current_ref(&self) -> String {
        let s = self.lock();
        let id = s.last_device.clone().unwrap_or_default();
        let seq = s.devices.get(&id).map_or(1, |d| d.qr_seq);
        qr_ref(&id, seq)
    }
    /// The phone of [`ACCOUNT`] scans the code on the screen that asked last.
    pub fn scan(&self) {
        let code = self.current_ref();
        self.lock().scanned.insert(code, ACCOUNT.to_string());
        self.lock().scans += 1;
    }
    /// The phone of `account` scans `code`; false when no page shows that code now.
    pub fn scan_code(&self, code: &str, account: &str) -> bool {
        let mut s = self.lock();
        if !s.current_refs().iter().any(|(_, r)| r == code) {
            return false;
        }
        s.scanned.insert(code.to_string(), account.to_string());
        s.scans += 1;
        true
    }
    /// The device (browser profile) whose page shows `code` now.
    pub fn device_showing(&self, code: &str) -> Option<String> {
        self.lock()
            .current_refs()
            .into_iter()
            .find(|(_, r)| r == code)
            .map(|(d, _)| d)
    }
    pub fn scans(&self) -> u32 {
        self.lock().scans
    }
    /// Every phone logs its device out.
    pub fn logout(&self) {
        let mut s = self.lock();
        for (_, valid) in s.sessions.values_mut() {
            *valid = false;
        }
        s.scanned.clear();
        for d in s.devices.values_mut() {
            d.qr_seq += 1;
            d.qr_issued = Instant::now();
        }
    }
    /// The phone of `account` logs its device out; the others stay linked.
    pub fn logout_account(&self, account: &str) {
        let mut s = self.lock();
        for (a, valid) in s.sessions.values_mut() {
            if a == account {
                *valid = false;
            }
        }
    }
    /// WhatsApp bans the account: its next message is refused, and its pages show the ban.
    pub fn ban_account(&self, account: &str) {
        self.lock().banned.insert(account.to_string());
    }
    /// The phone types the pairing code its device shows; false for an unknown code.
    pub fn confirm_pairing(&self, code: &str) -> bool {
        let code: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        match self.lock().pairings.get_mut(&code) {
            Some(p) => {
                p.confirmed = true;
                true
            }
            None => false,
        }
    }
    /// Accounts with a linked device now, as their phones see it.
    pub fn linked_accounts(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .lock()
            .sessions
            .values()
            .filter(|(_, valid)| *valid)
            .map(|(a, _)| a.clone())
            .collect();
        a.sort();
        a.dedup();
        a
    }
    /// Texts `account` sent, as (chat, text), in order.
    pub fn sent_by(&self, account: &str) -> Vec<(String, String)> {
        self.lock()
            .sent
            .iter()
            .filter(|m| m.account == account)
            .map(|m| (m.phone.clone(), m.text.clone()))
            .collect()
    }
    /// Sends made from a page while another page of the same login was connected and in use:
    /// two browsers of one number sending at once.
    pub fn split_sends(&self) -> u32 {
        self.lock().pages.split_sends
    }
    pub fn open_elsewhere(&self) {
        self.lock().conflict = true;
    }
    pub fn conflict(&self) -> bool {
        self.lock().conflict
    }
    /// The other window lets go: the page is usable again.
    pub fn resolve_conflict(&self) {
        self.lock().conflict = false;
    }
    /// The page's main thread spins forever, once.
    pub fn freeze(&self) {
        self.lock().freeze = true;
    }
    /// The page freezes when the next message is sent: the server has the text, the bubble
    /// shows the clock, and the page's main thread spins forever.
    pub fn freeze_on_next_send(&self) {
        self.lock().freeze_on_send = true;
    }
    /// When the page froze on a send.
    pub fn frozen_at(&self) -> Option<Instant> {
        self.lock().frozen_at
    }
    /// How the page renders the messages of this chat.
    pub fn render(&self, phone: &str, r: Render) {
        self.lock().render.insert(phone.to_string(), r);
    }
    /// How long the app's loading screen shows on each page load.
    pub fn set_loading_ms(&self, ms: u64) {
        self.lock().loading_ms = ms;
    }
    /// How many times the whole app was loaded.
    pub fn loads(&self) -> u32 {
        self.lock().loads
    }
    /// Whether a chat link clicked in the running app opens the chat in place (as for a link
    /// someone sent), or is ignored (as the real site may do for a link a script added).
    pub fn set_in_app_links(&self, on: bool) {
        self.lock().in_app_links = on;
    }
    /// The account's phone saves `phone` as `name`: its chat shows the name, not the number.
    pub fn save_contact(&self, phone: &str, name: &str) {
        self.lock()
            .contacts
            .insert(phone.to_string(), name.to_string());
    }
    /// Opening a chat from a link in the running app takes this long.
    pub fn set_open_delay_ms(&self, ms: u64) {
        self.lock().open_delay_ms = ms;
    }
    /// How many chats the page has opened so far.
    pub fn opens(&self) -> u32 {
        self.lock().opens
    }
    /// The chat's messages keep the clock until [`FakeWa::release_ticks`].
    pub fn hold_ticks(&self, phone: &str) {
        self.lock().held.insert(phone.to_string());
    }
    pub fn release_ticks(&self, phone: &str) {
        let mut s = self.lock();
        s.held.remove(phone);
        let reached = !s.offline.contains(phone);
        for m in s.sent.iter_mut().filter(|m| m.phone == phone) {
            m.delivered = true;
            m.reached |= reached;
        }
    }
    /// The recipient's phone is off: messages to it stay at one tick until [`FakeWa::phone_on`].
    pub fn phone_off(&self, phone: &str) {
        self.lock().offline.insert(phone.to_string());
    }
    /// The phone comes back: what was sent to it arrives (two ticks).
    pub fn phone_on(&self, phone: &str) {
        let mut s = self.lock();
        s.offline.remove(phone);
        for m in s
            .sent
            .iter_mut()
            .filter(|m| m.phone == phone && m.delivered)
        {
            m.reached = true;
        }
    }
    /// `phone` writes `text` to [`ACCOUNT`]: the chat list shows an unread badge until the
    /// account opens the chat.
    pub fn receive(&self, phone: &str, text: &str) {
        let mut s = self.lock();
        let n = s.incoming.len() + 1;
        s.incoming.push(In {
            account: ACCOUNT.to_string(),
            phone: phone.to_string(),
            id: format!("3A{n:014X}"),
            text: text.to_string(),
            at_ms: now_ms(),
            read: false,
        });
    }
    /// Messages from `phone` the account has not read (not opened the chat since).
    pub fn unread(&self, phone: &str) -> usize {
        self.lock()
            .incoming
            .iter()
            .filter(|m| m.phone == phone && !m.read)
            .count()
    }
    /// The recipient opens the chat: everything sent to it is read (blue ticks).
    pub fn read_chat(&self, phone: &str) {
        for m in self
            .lock()
            .sent
            .iter_mut()
            .filter(|m| m.phone == phone && m.delivered)
        {
            (m.reached, m.read) = (true, true);
        }
    }
    /// Read as older builds showed it: the `msg-dblcheck-ack` icon.
    pub fn set_old_read_icon(&self, on: bool) {
        self.lock().old_read_icon = on;
    }
    pub fn unregister(&self, phone: &str) {
        self.lock().unregistered.insert(phone.to_string());
    }
    /// Texts received by the "server" for a chat, in order.
    pub fn sent_to(&self, phone: &str) -> Vec<String> {
        self.lock()
            .sent
            .iter()
            .filter(|m| m.phone == phone)
            .map(|m| m.text.clone())
            .collect()
    }
    /// Waits until the "server" has received a text for this chat (the page pressed Enter).
    pub async fn wait_received(&self, phone: &str) {
        crate::client::eventually(
            Duration::from_secs(20),
            "the text reached the server",
            || async { (!self.sent_to(phone).is_empty()).then_some(()) },
        )
        .await;
    }
    /// The page's message ids of the texts received for a chat, in order.
    pub fn sent_to_ids(&self, phone: &str) -> Vec<String> {
        self.lock()
            .sent
            .iter()
            .filter(|m| m.phone == phone)
            .map(|m| m.id.clone())
            .collect()
    }
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }
    /// The files received for a chat, with their captions, in order.
    pub fn media_sent_to(&self, phone: &str) -> Vec<(SentMedia, String)> {
        self.lock()
            .sent
            .iter()
            .filter(|m| m.phone == phone)
            .filter_map(|m| Some((m.media.clone()?, m.text.clone())))
            .collect()
    }
}

type St = State<Arc<Mutex<Inner>>>;

async fn page(State(s): St) -> Html<&'static str> {
    s.lock().unwrap().loads += 1;
    Html(PAGE)
}

/// Whether the app opens a clicked chat link in place now.
async fn link_open(State(s): St) -> Json<Value> {
    let s = s.lock().unwrap();
    Json(json!({ "open": s.in_app_links, "delay_ms": s.open_delay_ms }))
}

#[derive(Deserialize)]
struct ConfigQ {
    #[serde(default)]
    phone: String,
}

async fn config(State(s): St, Query(q): Query<ConfigQ>) -> Json<Value> {
    let s = s.lock().unwrap();
    let render = s.render.get(&q.phone).cloned().unwrap_or_default();
    Json(json!({ "loading_ms": s.loading_ms, "render": render }))
}

#[derive(Deserialize)]
struct DeviceQ {
    device: String,
}

async fn qr(State(s): St, Query(q): Query<DeviceQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    s.last_device = Some(q.device.clone());
    let (rotate, max) = (s.qr_rotate, s.qr_max);
    let d = s.device(&q.device);
    if d.qr_issued.elapsed() >= rotate && d.qr_seq % max != 0 {
        d.qr_seq += 1;
        d.qr_issued = Instant::now();
    }
    let exhausted = d.qr_issued.elapsed() >= rotate && d.qr_seq % max == 0;
    Json(json!({ "ref": qr_ref(&q.device, d.qr_seq), "exhausted": exhausted }))
}

async fn qr_reload(State(s): St, Query(q): Query<DeviceQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let d = s.device(&q.device);
    d.qr_seq += 1;
    d.qr_issued = Instant::now();
    Json(json!({}))
}

#[derive(Deserialize)]
struct PollQ {
    device: String,
    r#ref: String,
}

/// A device asks whether its code was scanned, or its pairing code confirmed.
async fn poll(State(s): St, Query(q): Query<PollQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let mut account = s.scanned.remove(&q.r#ref);
    if account.is_none() {
        let confirmed = s
            .pairings
            .iter()
            .find(|(_, p)| p.device == q.device && p.confirmed)
            .map(|(code, _)| code.clone());
        if let Some(code) = confirmed {
            account = s.pairings.remove(&code).map(|p| p.account);
        }
    }
    if let Some(account) = account {
        let token = format!("tok-{}", s.sessions.len() + 1);
        s.sessions.insert(token.clone(), (account.clone(), true));
        return Json(json!({ "token": token, "account": account }));
    }
    Json(json!({}))
}

#[derive(Deserialize)]
struct PairBody {
    device: String,
    phone: String,
}

/// "Link with phone number": a fresh 8-character code for this device and account.
async fn pair(State(s): St, Json(b): Json<PairBody>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTVWXYZ123456789";
    let n = s.pairings.len() + s.sessions.len() + 1;
    let code: String = (0..8)
        .map(|i| ALPHABET[(n * 7 + i * 13 + b.phone.len() * i) % ALPHABET.len()] as char)
        .collect();
    s.pairings.retain(|_, p| p.device != b.device);
    s.pairings.insert(
        code.clone(),
        Pairing {
            device: b.device,
            account: b.phone,
            confirmed: false,
        },
    );
    Json(json!({ "code": code }))
}

#[derive(Deserialize)]
struct TokenQ {
    token: String,
    /// The page asking (each load of the app has its own id).
    #[serde(default)]
    page: String,
}

async fn session(State(s): St, Query(q): Query<TokenQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let valid = s.sessions.get(&q.token).is_some_and(|(_, v)| *v);
    let elsewhere = valid && s.pages.conflict(&q.token, &q.page);
    let freeze = valid && std::mem::take(&mut s.freeze);
    let banned = s
        .sessions
        .get(&q.token)
        .is_some_and(|(a, _)| s.banned.contains(a));
    Json(
        json!({ "valid": valid, "conflict": valid && (s.conflict || elsewhere), "freeze": freeze, "banned": banned }),
    )
}

/// The page logged itself out (menu → Log out): the phone no longer lists the device.
async fn unlink(State(s): St, Query(q): Query<TokenQ>) -> Json<Value> {
    if let Some((_, valid)) = s.lock().unwrap().sessions.get_mut(&q.token) {
        *valid = false;
    }
    Json(json!({}))
}

async fn takeover(State(s): St, Query(q): Query<TokenQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    s.conflict = false;
    s.pages.take_over(&q.token, &q.page);
    Json(json!({}))
}

#[derive(Deserialize)]
struct PhoneQ {
    phone: String,
}

async fn registered(State(s): St, Query(q): Query<PhoneQ>) -> Json<Value> {
    let s = s.lock().unwrap();
    Json(json!({ "registered": !s.unregistered.contains(&q.phone) }))
}

#[derive(Deserialize)]
struct ChatQ {
    phone: String,
    #[serde(default)]
    token: String,
}

impl Inner {
    /// A message's ticks as the page draws them: (`data-icon`, `aria-label`).
    fn ticks(&self, m: &Sent) -> (&'static str, &'static str) {
        match (m.delivered, m.reached, m.read) {
            (false, _, _) => ("msg-time", " Pending "),
            (true, false, _) => ("msg-check", " Sent "),
            (true, true, false) => ("msg-dblcheck", " Delivered "),
            (true, true, true) if self.old_read_icon => ("msg-dblcheck-ack", " Read "),
            (true, true, true) => ("msg-dblcheck", " Read "),
        }
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// This account's chats, latest activity first: each with its messages' ticks (the chat list
/// shows the last one's when it is ours, an open chat each one's), what it received (`ins`),
/// its unread count and its last message's text.
async fn chats(State(s): St, Query(q): Query<TokenQ>) -> Json<Value> {
    let s = s.lock().unwrap();
    let Some((account, _)) = s.sessions.get(&q.token) else {
        return Json(json!([]));
    };
    // (phone, time, text, ours) of each chat's last message.
    let mut last: HashMap<&str, (u128, &str, bool)> = HashMap::new();
    for m in s.sent.iter().filter(|m| &m.account == account) {
        last.insert(&m.phone, (m.at_ms, &m.text, true));
    }
    for m in s.incoming.iter().filter(|m| &m.account == account) {
        if last.get(m.phone.as_str()).is_none_or(|l| l.0 <= m.at_ms) {
            last.insert(&m.phone, (m.at_ms, &m.text, false));
        }
    }
    let mut order: Vec<(&str, (u128, &str, bool))> = last.into_iter().collect();
    order.sort_by_key(|o| std::cmp::Reverse(o.1.0));
    let list: Vec<Value> = order
        .iter()
        .map(|(phone, (_, text, ours))| {
            let msgs: Vec<Value> = s
                .sent
                .iter()
                .filter(|m| &m.account == account && m.phone == *phone)
                .map(|m| {
                    let (icon, label) = s.ticks(m);
                    json!({ "id": m.id, "text": m.text, "icon": icon, "label": label })
                })
                .collect();
            let ins: Vec<Value> = s
                .incoming
                .iter()
                .filter(|m| &m.account == account && m.phone == *phone)
                .map(|m| json!({ "id": m.id, "text": m.text, "at": m.at_ms as u64 }))
                .collect();
            let unread = s
                .incoming
                .iter()
                .filter(|m| &m.account == account && m.phone == *phone && !m.read)
                .count();
            json!({ "phone": phone, "name": s.contacts.get(*phone), "msgs": msgs, "ins": ins,
                    "unread": unread, "last": { "text": text, "ours": ours } })
        })
        .collect();
    Json(json!(list))
}

/// The name the account saved a number under, if it did.
async fn contact(State(s): St, Query(q): Query<PhoneQ>) -> Json<Value> {
    Json(json!({ "name": s.lock().unwrap().contacts.get(&q.phone) }))
}

/// The account has the chat open: what it received there is read.
async fn read(State(s): St, Query(q): Query<ChatQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let Some((account, _)) = s.sessions.get(&q.token).cloned() else {
        return Json(json!({}));
    };
    for m in s
        .incoming
        .iter_mut()
        .filter(|m| m.account == account && m.phone == q.phone)
    {
        m.read = true;
    }
    Json(json!({}))
}

/// The chat as this account sees it: the messages it sent there and those it received, in
/// time order (`dir`: `out` or `in`).
async fn chat(State(s): St, Query(q): Query<ChatQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    s.opens += 1;
    let account = s.sessions.get(&q.token).map(|(a, _)| a.clone());
    let mut msgs: Vec<(u128, Value)> = s
        .sent
        .iter()
        .filter(|m| m.phone == q.phone && Some(&m.account) == account.as_ref())
        .map(|m| {
            let (icon, label) = s.ticks(m);
            (m.at_ms, json!({ "dir": "out", "id": m.id, "text": m.text, "icon": icon, "label": label, "at": m.at_ms as u64, "media": m.media }))
        })
        .collect();
    msgs.extend(
        s.incoming
            .iter()
            .filter(|m| m.phone == q.phone && Some(&m.account) == account.as_ref())
            .map(|m| {
                (
                    m.at_ms,
                    json!({ "dir": "in", "id": m.id, "text": m.text, "at": m.at_ms as u64 }),
                )
            }),
    );
    msgs.sort_by_key(|(at, _)| *at);
    Json(json!(msgs.into_iter().map(|(_, m)| m).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
struct SendBody {
    token: String,
    #[serde(default)]
    page: String,
    phone: String,
    text: String,
    id: String,
    #[serde(default)]
    typing_ms: u64,
    #[serde(default)]
    media: Option<SentMedia>,
}

async fn send(State(s): St, Json(b): Json<SendBody>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let account = match s.sessions.get(&b.token) {
        Some((a, true)) => a.clone(),
        _ => return Json(json!({ "delivered": false })),
    };
    if s.banned.contains(&account) {
        return Json(json!({ "delivered": false, "banned": true }));
    }
    s.pages.sending(&b.token, &b.page);
    let delivered = !s.held.contains(&b.phone);
    let reached = delivered && !s.offline.contains(&b.phone);
    let freeze = std::mem::take(&mut s.freeze_on_send);
    if freeze {
        s.frozen_at = Some(Instant::now());
    }
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let opens_before = s.opens;
    s.sent.push(Sent {
        account,
        phone: b.phone,
        text: b.text,
        id: b.id,
        delivered,
        reached,
        read: false,
        at_ms,
        typing_ms: b.typing_ms,
        opens_before,
        media: b.media,
    });
    Json(json!({ "delivered": delivered, "freeze": freeze }))
}
