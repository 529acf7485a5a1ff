//! The WebDriver driver end to end: real headless Chromium through ChromeDriver against the
//! local stand-in for WhatsApp Web (`fake_whatsapp`). Browser tests run one at a time.
//! Outside CI they are skipped when Chromium or ChromeDriver is missing; under `CI=true` that
//! is a failure.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wa_gateway::config::{Config, DriverKind, Dur};

use crate::fake_whatsapp::FakeWa;
use crate::helpers::{TestApp, eventually, spawn_app_with};

pub(crate) static ONE_BROWSER_AT_A_TIME: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

fn on_path(program: &str) -> bool {
    wa_gateway::whatsapp::webdriver::which(program).is_some()
}

/// True when the browser tests can run; panics under CI when they cannot.
pub(crate) fn browser_available() -> bool {
    let missing: Vec<&str> = ["chromium", "chromedriver"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {missing:?} not on PATH: apt-get install -y chromium chromium-driver");
    }
    eprintln!("skipped: {missing:?} not on PATH (apt-get install -y chromium chromium-driver)");
    false
}

/// The browser lock and a fresh fake WhatsApp Web, or None when the browser tests are skipped.
pub(crate) async fn browser_session() -> Option<(tokio::sync::MutexGuard<'static, ()>, FakeWa)> {
    browser_session_with(Duration::from_secs(20), 5).await
}

async fn browser_session_with(
    rotate: Duration,
    max: u32,
) -> Option<(tokio::sync::MutexGuard<'static, ()>, FakeWa)> {
    if !browser_available() {
        return None;
    }
    let one = ONE_BROWSER_AT_A_TIME.lock().await;
    Some((one, FakeWa::start_with(rotate, max).await))
}

/// Sends a text and expects it delivered.
pub(crate) async fn deliver(app: &TestApp, number: &str, text: &str) {
    let id = app.send_ok(number, text).await;
    let job = wait_job(app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "completed", "{job}");
}

pub(crate) fn use_webdriver(c: &mut Config, fake: &FakeWa) {
    c.whatsapp.driver = DriverKind::Webdriver;
    let wd = &mut c.whatsapp.webdriver;
    wd.web_url = fake.url.clone();
    wd.keepalive_interval = Dur::secs(1);
    wd.session_timeout = Dur::secs(4);
    wd.ready_timeout = Dur::secs(30);
    wd.send_timeout = Dur::secs(10);
}

async fn state(app: &TestApp) -> Value {
    app.status().await
}

/// Waits until `whatsapp.state` is one of `want`; returns the status and how long it took.
pub(crate) async fn wait_state(
    app: &TestApp,
    want: &[&str],
    within: Duration,
) -> (Value, Duration) {
    app.wait_state(want, within).await
}

pub(crate) async fn wait_job(app: &TestApp, id: &str, within: Duration) -> Value {
    app.wait_finished_within(id, within).await
}

pub(crate) fn profile(app: &TestApp) -> std::path::PathBuf {
    app.config.browser_profile("default")
}

pub(crate) fn browser_processes(app: &TestApp) -> Vec<u32> {
    wa_gateway::whatsapp::webdriver::profile_processes(&profile(app))
}

/// Starts a gateway on the fake and logs it in with a scan.
pub(crate) async fn connected_app(fake: &FakeWa, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let app = spawn_app_with(|c| {
        use_webdriver(c, fake);
        tweak(c);
    })
    .await;
    wait_state(&app, &["qr"], Duration::from_secs(30)).await;
    fake.scan();
    wait_state(&app, &["connected"], Duration::from_secs(15)).await;
    app
}

#[tokio::test]
async fn qr_login_serves_the_pages_code_and_held_jobs_go_out_after_the_scan() {
    // Codes change every 1.5s and run out after two: the driver must follow and press reload.
    let Some((_one, fake)) = browser_session_with(Duration::from_millis(1500), 2).await else {
        return;
    };
    let t0 = Instant::now();
    let app = spawn_app_with(|c| use_webdriver(c, &fake)).await;
    let (s, _) = wait_state(&app, &["qr"], Duration::from_secs(30)).await;
    let to_qr = t0.elapsed();
    assert!(
        s["whatsapp"]["detail"].as_str().unwrap().contains("scan"),
        "{s}"
    );

    // Held: accepted, waiting, no attempt spent.
    let id = app.send_ok("6281200000001", "held until the scan").await;
    let s = state(&app).await;
    assert_eq!(s["queue"]["state"], "held", "{s}");
    assert!(
        s["queue"]["heldReason"].as_str().unwrap().contains("qr"),
        "{s}"
    );

    // The API's QR is the page's data-ref, following it through rotations and a reload.
    let t1 = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let r = app.get("/api/whatsapp/qr").await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let qr = body["qr"].as_str().unwrap().to_string();
        assert!(
            body["image"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        seen.insert(qr.clone());
        if qr.contains("fake-ref-3-") && qr == fake.current_ref() {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(15),
            "QR did not follow the page past a reload: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.len() >= 2, "{seen:?}");
    let png = app
        .client
        .get(app.url("/api/whatsapp/qr"))
        .bearer_auth(&app.token)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[1..4], b"PNG");
    assert_eq!(app.job(&id).await["attempts"], 0);

    let t2 = Instant::now();
    fake.scan();
    let (_, to_connected) = wait_state(&app, &["connected"], Duration::from_secs(15)).await;
    let job = wait_job(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(fake.sent_to("6281200000001"), vec!["held until the scan"]);
    let r = app.get("/api/whatsapp/qr").await;
    assert_eq!(
        crate::helpers::error_code(r, StatusCode::NOT_FOUND).await,
        "no_qr"
    );
    eprintln!(
        "MEASURE start→QR {:?}, scan→connected {:?}, scan→delivered {:?}",
        to_qr,
        to_connected,
        t2.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unregistered_number_fails_once_with_not_registered() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    fake.unregister("6281299999999");
    let app = connected_app(&fake, |_| {}).await;
    let id = app.send_ok("6281299999999", "nobody home").await;
    let job = wait_job(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(job["lastError"]["code"], "not-registered", "{job}");
    assert!(fake.sent_to("6281299999999").is_empty());
    // The session is fine afterwards.
    deliver(&app, "6281200000002", "next one").await;
    app.stop().await;
}

#[tokio::test]
async fn logout_from_the_phone_holds_the_queue_until_a_new_scan() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |_| {}).await;
    fake.logout();
    let (s, _) = wait_state(&app, &["logged_out"], Duration::from_secs(10)).await;
    assert!(
        s["whatsapp"]["detail"]
            .as_str()
            .unwrap()
            .contains("logged out"),
        "{s}"
    );
    let id = app.send_ok("6281200000005", "after a new scan").await;
    let s = state(&app).await;
    assert_eq!(s["queue"]["state"], "held", "{s}");
    let job = app.job(&id).await;
    assert_eq!(job["status"], "waiting", "{job}");
    assert_eq!(job["attempts"], 0, "{job}");
    // A new code is served, and scanning it reconnects.
    let r = app.get("/api/whatsapp/qr").await;
    assert_eq!(r.status(), StatusCode::OK);
    fake.scan();
    wait_state(&app, &["connected"], Duration::from_secs(15)).await;
    // One attempt in all: none was spent while logged out.
    let job = wait_job(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("completed"), Some(1))
    );
    assert_eq!(fake.sent_to("6281200000005"), vec!["after a new scan"]);
    app.stop().await;
}

#[tokio::test]
async fn a_conflict_shows_in_the_api_then_is_taken_over() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |_| {}).await;
    fake.open_elsewhere();
    let (s, _) = wait_state(&app, &["conflict"], Duration::from_secs(10)).await;
    assert!(
        s["whatsapp"]["detail"]
            .as_str()
            .unwrap()
            .contains("taking over"),
        "{s}"
    );
    eventually(Duration::from_secs(10), "the takeover", || async {
        (!fake.conflict()).then_some(())
    })
    .await;
    wait_state(&app, &["connected"], Duration::from_secs(10)).await;
    deliver(&app, "6281200000006", "after the takeover").await;
    // Counted once, as taken over (a single node holds its sessions' leases).
    let metrics = app.metrics().await;
    for (action, n) in [("took_over", 1), ("closed", 0), ("left", 0)] {
        let line = format!(
            "wa_gateway_session_conflicts_total{{session=\"default\",action=\"{action}\"}} {n}\n"
        );
        assert!(metrics.contains(&line), "{line} missing in:\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn without_takeover_a_conflict_holds_the_queue_and_waits_for_the_user() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| c.whatsapp.webdriver.takeover_on_conflict = false).await;
    fake.open_elsewhere();
    let (s, _) = wait_state(&app, &["conflict"], Duration::from_secs(10)).await;
    // The driver decided not to click (this detail is only set on that branch), so the other
    // window keeps the session.
    assert!(
        s["whatsapp"]["detail"]
            .as_str()
            .unwrap()
            .contains("takeover_on_conflict = true"),
        "{s}"
    );
    assert!(fake.conflict(), "the driver took the session over");
    assert_eq!(s["queue"]["state"], "held", "{s}");
    let line = "wa_gateway_session_conflicts_total{session=\"default\",action=\"left\"} 1\n";
    let metrics = app.metrics().await;
    assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    let id = app.send_ok("6281200000016", "waits for the user").await;
    // The user presses "Use here" in the gateway's window (on the stand-in: the conflict ends).
    fake.resolve_conflict();
    wait_state(&app, &["connected"], Duration::from_secs(10)).await;
    let job = wait_job(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("completed"), Some(1))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_missing_chromedriver_is_unavailable_with_how_to_install_it() {
    let fake = FakeWa::start().await;
    let app = spawn_app_with(|c| {
        use_webdriver(c, &fake);
        c.whatsapp.webdriver.chromedriver = "/nonexistent/chromedriver".into();
        c.whatsapp.webdriver.browser = "/bin/sh".into();
    })
    .await;
    let (s, _) = wait_state(&app, &["unavailable"], Duration::from_secs(10)).await;
    let detail = s["whatsapp"]["detail"].as_str().unwrap();
    assert!(detail.contains("ChromeDriver not found"), "{detail}");
    assert!(
        detail.contains("apt-get install chromium-driver"),
        "{detail}"
    );
    assert_eq!(s["queue"]["state"], "held");
    // Jobs are accepted and wait; the API stays up.
    let r = app
        .send(&json!({"number": "6281200000009", "message": "waits"}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = app.get("/api/whatsapp/qr").await;
    assert_eq!(
        crate::helpers::error_code(r, StatusCode::NOT_FOUND).await,
        "no_qr"
    );
    app.stop().await;
}
