//! The driver keeps itself alive: Chromium killed, a frozen page, a gateway restart, a browser
//! over its memory limit each end with the session back without a new scan and no process left
//! behind; a WebDriver server already running is used and left running.

use std::time::{Duration, Instant};

use crate::helpers::{eventually, spawn_app_with, start};
use crate::webdriver::{
    browser_processes, browser_session, connected_app, deliver, profile, use_webdriver, wait_state,
};

#[tokio::test]
async fn a_killed_browser_restarts_without_a_new_qr_and_delivers_the_next_message() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |_| {}).await;
    deliver(&app, "6281200000003", "before the kill").await;

    let pids = browser_processes(&app);
    assert!(!pids.is_empty(), "no browser process found");
    let t0 = Instant::now();
    for pid in &pids {
        crate::helpers::kill9(*pid);
    }
    wait_state(
        &app,
        &["restarting", "starting", "loading"],
        Duration::from_secs(10),
    )
    .await;
    wait_state(&app, &["connected"], Duration::from_secs(30)).await;
    let recovery = t0.elapsed();
    assert_eq!(fake.scans(), 1, "a new QR scan was needed");
    deliver(&app, "6281200000003", "after the kill").await;
    assert_eq!(
        fake.sent_to("6281200000003"),
        vec!["before the kill", "after the kill"]
    );
    eprintln!("MEASURE recovery after SIGKILL of Chromium: {recovery:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_frozen_page_is_restarted_within_session_timeout() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |_| {}).await;
    let old = browser_processes(&app);
    let t0 = Instant::now();
    fake.freeze();
    // session_timeout is 4s in these tests; the stated margin is 2s (the page picks the freeze
    // up within 0.3s, the watchdog looks every 0.1s, the test polls every 50ms).
    wait_state(&app, &["restarting"], Duration::from_secs(4 + 2)).await;
    let noticed = t0.elapsed();
    wait_state(&app, &["connected"], Duration::from_secs(30)).await;
    let recovery = t0.elapsed();
    assert_eq!(fake.scans(), 1);
    assert_eq!(
        crate::webdriver_sends::alive(&old),
        Vec::<u32>::new(),
        "processes of the frozen browser outlived its restart"
    );
    deliver(&app, "6281200000004", "after the freeze").await;
    eprintln!(
        "MEASURE freeze: restart began after {noticed:?} (session_timeout 4s), connected again after {recovery:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_restarted_gateway_reconnects_without_a_qr_and_sigterm_leaves_no_browser() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |_| {}).await;
    let profile = profile(&app);
    assert!(!browser_processes(&app).is_empty());
    let (dir, config) = app.stop().await;
    assert!(
        wa_gateway::whatsapp::webdriver::profile_processes(&profile).is_empty(),
        "browser processes left after shutdown"
    );
    let t0 = Instant::now();
    let app = start(dir, config).await;
    let (_, _) = wait_state(&app, &["connected"], Duration::from_secs(30)).await;
    eprintln!("MEASURE restart→connected (no QR): {:?}", t0.elapsed());
    assert_eq!(fake.scans(), 1, "the restart needed a new scan");
    deliver(&app, "6281200000008", "after the restart").await;
    app.stop().await;
    assert!(wa_gateway::whatsapp::webdriver::profile_processes(&profile).is_empty());
}

#[tokio::test]
async fn a_gateway_killed_with_sigkill_takes_its_browser_along_and_restarted_needs_no_scan() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crate::process::write_webdriver_config(dir.path(), &fake.url, "");
    let config = wa_gateway::config::Config::load(&dir.path().join("gateway.toml")).unwrap();
    let profile = config.browser_profile("default");
    let gw = crate::process::Gateway::start(dir.path()).await;
    gw.wait_state(&["qr"], Duration::from_secs(30)).await;
    fake.scan();
    gw.wait_state(&["connected"], Duration::from_secs(20)).await;
    let id = gw.send_ok("6281200000009", "before the kill").await;
    gw.wait_finished(&id).await;
    assert!(!wa_gateway::whatsapp::webdriver::profile_processes(&profile).is_empty());

    // The gateway cannot clean up after SIGKILL; its reaper kills ChromeDriver and Chromium.
    gw.signal("-9");
    eventually(Duration::from_secs(10), "the browser gone", || async {
        wa_gateway::whatsapp::webdriver::profile_processes(&profile)
            .is_empty()
            .then_some(())
    })
    .await;
    drop(gw);
    let gw = crate::process::Gateway::start(dir.path()).await;
    gw.wait_state(&["connected"], Duration::from_secs(30)).await;
    assert_eq!(fake.scans(), 1, "the restart needed a new scan");
    let id = gw.send_ok("6281200000009", "after the kill").await;
    assert_eq!(gw.wait_finished(&id).await["status"], "completed");
    assert_eq!(
        fake.sent_to("6281200000009"),
        vec!["before the kill", "after the kill"]
    );
    // The old page was gone before the new one opened: no conflict, no page sending beside
    // another.
    let line = "wa_gateway_session_conflicts_total{session=\"default\",action=\"took_over\"} 0";
    let metrics = gw.metrics().await;
    assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    assert_eq!(fake.split_sends(), 0);
}

#[tokio::test]
async fn a_browser_over_its_memory_limit_is_restarted_and_the_cause_counted() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    // Any real Chromium holds more than 1 MiB: each check after connecting restarts it.
    let app = spawn_app_with(|c| {
        use_webdriver(c, &fake);
        c.whatsapp.webdriver.memory_limit = wa_gateway::config::ByteSize(1 << 20);
    })
    .await;
    wait_state(&app, &["qr"], Duration::from_secs(30)).await;
    fake.scan();
    // The restart says why.
    let (s, _) = wait_state(&app, &["restarting"], Duration::from_secs(30)).await;
    let detail = s["whatsapp"]["detail"].as_str().unwrap();
    assert!(detail.contains("over memory_limit (1 MiB)"), "{detail}");
    let memory_restarts = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "wa_gateway_browser_restarts_total{session=\"default\",cause=\"memory\"} ",
                )
            })
            .map(|n| n.trim().parse().unwrap())
            .unwrap_or(0)
    };
    // A second memory restart means the restarted browser got connected again, without a scan.
    eventually(
        Duration::from_secs(45),
        "a second memory restart",
        || async { (memory_restarts(&app.metrics().await) >= 2).then_some(()) },
    )
    .await;
    assert_eq!(fake.scans(), 1, "a restart needed a new scan");
    app.stop().await;
}

/// With `webdriver_url`, the gateway uses a WebDriver server that is already running instead of
/// starting ChromeDriver, and leaves that server running when it stops.

#[tokio::test]
async fn a_webdriver_server_already_running_is_used_and_left_running() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver");
    eventually(
        Duration::from_secs(10),
        "chromedriver listening",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    let app = connected_app(&fake, |c| {
        c.whatsapp.webdriver.webdriver_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    deliver(&app, "6281200000017", "through a running WebDriver server").await;
    let profile = profile(&app);
    app.stop().await;
    assert!(
        wa_gateway::whatsapp::webdriver::profile_processes(&profile).is_empty(),
        "the browser outlived the gateway"
    );
    assert!(
        server.try_wait().unwrap().is_none(),
        "the WebDriver server was stopped"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
