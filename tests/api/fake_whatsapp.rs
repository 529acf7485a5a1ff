//! A local stand-in for WhatsApp Web, served on 127.0.0.1:0: the page (`fake_whatsapp.html`)
//! follows the DOM of ../shared/whatsapp-web.md, and this server plays the phone and
//! WhatsApp's servers. Tests drive it directly: scan the QR, log out from the phone, open a
//! conflicting window, freeze the page (now, or when the next message is sent), mark numbers
//! unregistered, hold ticks at the clock, and choose per chat how the page renders messages
//! ([`Render`]). It records what was sent, per chat.

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

#[derive(Clone)]
pub struct Sent {
    pub phone: String,
    pub text: String,
    /// The message id the page gave it (the end of its bubble's `data-id`).
    pub id: String,
    delivered: bool,
    at_ms: u128,
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

struct Inner {
    qr_seq: u32,
    qr_issued: Instant,
    qr_rotate: Duration,
    qr_max: u32,
    scanned_ref: Option<String>,
    scans: u32,
    sessions: HashMap<String, bool>,
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
}

#[derive(Clone)]
pub struct FakeWa {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

fn qr_ref(seq: u32) -> String {
    format!(
        "2@fake-ref-{seq}-{:x},noiseKeyAbc+/=,identityKeyDef+/=,advSecretGhi+/=",
        seq * 7919
    )
}

impl FakeWa {
    pub async fn start() -> FakeWa {
        Self::start_with(Duration::from_secs(20), 5).await
    }

    /// A fake whose QR code changes every `rotate`, and which shows a reload button after
    /// `max` codes.
    pub async fn start_with(rotate: Duration, max: u32) -> FakeWa {
        let inner = Arc::new(Mutex::new(Inner {
            qr_seq: 1,
            qr_issued: Instant::now(),
            qr_rotate: rotate,
            qr_max: max,
            scanned_ref: None,
            scans: 0,
            sessions: HashMap::new(),
            conflict: false,
            freeze: false,
            unregistered: HashSet::new(),
            held: HashSet::new(),
            freeze_on_send: false,
            frozen_at: None,
            render: HashMap::new(),
            sent: Vec::new(),
            loading_ms: 300,
        }));
        let app = Router::new()
            .route("/", get(page))
            .route("/send", get(page))
            .route("/fake/config", get(config))
            .route("/fake/qr", get(qr))
            .route("/fake/qr/reload", post(qr_reload))
            .route("/fake/poll", get(poll))
            .route("/fake/session", get(session))
            .route("/fake/takeover", post(takeover))
            .route("/fake/registered", get(registered))
            .route("/fake/chat", get(chat))
            .route("/fake/send", post(send))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeWa { url, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// The QR string the page shows now.
    pub fn current_ref(&self) -> String {
        qr_ref(self.lock().qr_seq)
    }
    /// The phone scans the code on screen.
    pub fn scan(&self) {
        let mut s = self.lock();
        s.scanned_ref = Some(qr_ref(s.qr_seq));
        s.scans += 1;
    }
    pub fn scans(&self) -> u32 {
        self.lock().scans
    }
    /// The phone logs this device out.
    pub fn logout(&self) {
        let mut s = self.lock();
        for v in s.sessions.values_mut() {
            *v = false;
        }
        s.scanned_ref = None;
        s.qr_seq += 1;
        s.qr_issued = Instant::now();
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
    /// The chat's messages keep the clock until [`FakeWa::release_ticks`].
    pub fn hold_ticks(&self, phone: &str) {
        self.lock().held.insert(phone.to_string());
    }
    pub fn release_ticks(&self, phone: &str) {
        let mut s = self.lock();
        s.held.remove(phone);
        for m in s.sent.iter_mut().filter(|m| m.phone == phone) {
            m.delivered = true;
        }
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
}

type St = State<Arc<Mutex<Inner>>>;

async fn page() -> Html<&'static str> {
    Html(PAGE)
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

async fn qr(State(s): St) -> Json<Value> {
    let mut s = s.lock().unwrap();
    if s.qr_issued.elapsed() >= s.qr_rotate && s.qr_seq % s.qr_max != 0 {
        s.qr_seq += 1;
        s.qr_issued = Instant::now();
    }
    let exhausted = s.qr_issued.elapsed() >= s.qr_rotate && s.qr_seq % s.qr_max == 0;
    Json(json!({ "ref": qr_ref(s.qr_seq), "exhausted": exhausted }))
}

async fn qr_reload(State(s): St) -> Json<Value> {
    let mut s = s.lock().unwrap();
    s.qr_seq += 1;
    s.qr_issued = Instant::now();
    Json(json!({}))
}

#[derive(Deserialize)]
struct RefQ {
    r#ref: String,
}

async fn poll(State(s): St, Query(q): Query<RefQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    if s.scanned_ref.as_deref() == Some(q.r#ref.as_str()) {
        s.scanned_ref = None;
        let token = format!("tok-{}", s.sessions.len() + 1);
        s.sessions.insert(token.clone(), true);
        return Json(json!({ "token": token }));
    }
    Json(json!({}))
}

#[derive(Deserialize)]
struct TokenQ {
    token: String,
}

async fn session(State(s): St, Query(q): Query<TokenQ>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let valid = s.sessions.get(&q.token).copied().unwrap_or(false);
    let freeze = valid && std::mem::take(&mut s.freeze);
    Json(json!({ "valid": valid, "conflict": valid && s.conflict, "freeze": freeze }))
}

async fn takeover(State(s): St) -> Json<Value> {
    s.lock().unwrap().conflict = false;
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

async fn chat(State(s): St, Query(q): Query<PhoneQ>) -> Json<Value> {
    let s = s.lock().unwrap();
    let msgs: Vec<Value> = s
        .sent
        .iter()
        .filter(|m| m.phone == q.phone)
        .map(|m| {
            json!({
                "id": m.id,
                "text": m.text,
                "icon": if m.delivered { "msg-dblcheck" } else { "msg-time" },
                "at": m.at_ms as u64,
            })
        })
        .collect();
    Json(json!(msgs))
}

#[derive(Deserialize)]
struct SendBody {
    token: String,
    phone: String,
    text: String,
    id: String,
}

async fn send(State(s): St, Json(b): Json<SendBody>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    if !s.sessions.get(&b.token).copied().unwrap_or(false) {
        return Json(json!({ "delivered": false }));
    }
    let delivered = !s.held.contains(&b.phone);
    let freeze = std::mem::take(&mut s.freeze_on_send);
    if freeze {
        s.frozen_at = Some(Instant::now());
    }
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    s.sent.push(Sent {
        phone: b.phone,
        text: b.text,
        id: b.id,
        delivered,
        at_ms,
    });
    Json(json!({ "delivered": delivered, "freeze": freeze }))
}
