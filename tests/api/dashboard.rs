//! The dashboard in real headless Chromium: log in, watch a job go from waiting to completed
//! live, cancel and retry a job, pause and resume the queue, see the QR code; add, stop and
//! delete sessions, and filter jobs by session.

use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use wa_gateway::config::Dur;

use crate::fake_whatsapp::FakeWa;
use crate::helpers::{EMAIL, PASSWORD, TestApp, eventually, spawn_app_with};
use crate::webdriver::{ONE_BROWSER_AT_A_TIME, browser_available, use_webdriver, wait_state};

struct Browser {
    client: Client,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver");
        let t0 = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "chromedriver did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--window-size=1200,1000".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            args.push("--no-sandbox".into());
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": wa_gateway::whatsapp::webdriver::which("chromium").unwrap(), "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("browser session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    async fn text(&self, css: &str) -> Option<String> {
        self.client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await
            .unwrap()
            .as_str()
            .map(str::to_string)
    }

    /// Waits until the text of `css` satisfies `ok`.
    async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(t) = self.text(css).await
                && ok(&t)
            {
                return t;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "{css}: {:?}",
                self.text(css).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nothing matches `css`.
    async fn wait_gone(&self, css: &str, what: &str) {
        crate::helpers::eventually(Duration::from_secs(15), what, || async {
            self.text(css).await.is_none().then_some(())
        })
        .await;
    }

    /// Clicks `css`. The page re-renders its tables as data arrives, so an element found a
    /// moment ago may be gone: find it again then.
    async fn click(&self, css: &str) {
        let t0 = Instant::now();
        loop {
            let r = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.click().await,
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => return,
                Err(_) if t0.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    async fn log_in(&self, app: &TestApp) {
        self.client.goto(&app.url("/")).await.unwrap();
        self.client
            .find(Locator::Css("#email"))
            .await
            .unwrap()
            .send_keys(EMAIL)
            .await
            .unwrap();
        self.client
            .find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        self.click("#login-btn").await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::write(dir.join(name), png).unwrap();
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Even when a test fails: ChromeDriver's process group, and the browser on our profile.
impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: the process group of the ChromeDriver this test started.
        unsafe { libc::killpg(self.driver.id() as i32, libc::SIGKILL) };
        let _ = self.driver.wait();
        for pid in wa_gateway::whatsapp::webdriver::profile_processes(self._profile.path()) {
            crate::helpers::kill9(pid);
        }
    }
}

fn row(id: &str, cell: &str) -> String {
    format!("tr[data-job-id='{id}'] {cell}")
}

#[tokio::test]
async fn the_dashboard_logs_in_shows_jobs_live_and_drives_the_queue() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = spawn_app_with(|c| c.whatsapp.sandbox.delay = Dur::millis(300)).await;
    let b = Browser::start().await;
    b.log_in(&app).await;
    b.wait_text("#wa-state", |t| t == "connected").await;
    b.wait_text("#q-state", |t| t.starts_with("idle")).await;

    // Pause from the dashboard; a job sent meanwhile shows up waiting, by itself.
    b.click("#pause-btn").await;
    b.wait_text("#q-state", |t| t.starts_with("paused")).await;
    let id = app.send_ok("6281234567890", "watched live").await;
    b.wait_text(&row(&id, ".status"), |t| t == "waiting").await;
    b.wait_text("#q-waiting", |t| t == "1").await;
    b.screenshot("dashboard.png").await;

    // Resume: the same row turns completed without a reload.
    b.wait_text("#pause-btn", |t| t == "Resume").await;
    b.click("#pause-btn").await;
    b.wait_text(&row(&id, ".status"), |t| t == "completed")
        .await;
    b.wait_text("#q-success", |t| t == "100 %").await;

    // Cancel a waiting job, then retry it: it goes out.
    b.click("#pause-btn").await;
    b.wait_text("#q-state", |t| t.starts_with("paused")).await;
    let id2 = app
        .send_ok("6281234567891", "cancelled, then retried")
        .await;
    b.wait_text(&row(&id2, ".status"), |t| t == "waiting").await;
    b.click(&row(&id2, "button.cancel")).await;
    b.wait_text(&row(&id2, ".status"), |t| t == "failed").await;
    assert_eq!(app.job(&id2).await["lastError"]["code"], "cancelled");
    b.click(&row(&id2, "button.retry")).await;
    b.wait_text(&row(&id2, ".status"), |t| t == "waiting").await;
    b.wait_text("#pause-btn", |t| t == "Resume").await;
    b.click("#pause-btn").await;
    b.wait_text(&row(&id2, ".status"), |t| t == "completed")
        .await;
    assert_eq!(app.job(&id2).await["status"], "completed");

    // Concurrency from the dashboard.
    // The live refresh may write the setting back into the field between clearing and typing:
    // type until the field holds exactly what was typed.
    eventually(Duration::from_secs(15), "the field holds 5", || async {
        let input = b.client.find(Locator::Css("#concurrency")).await.ok()?;
        input.clear().await.ok()?;
        input.send_keys("5").await.ok()?;
        (input.prop("value").await.ok()?? == "5").then_some(())
    })
    .await;
    b.click("#apply-concurrency").await;
    b.wait_text("#q-active", |t| t.ends_with("/ 5")).await;
    assert_eq!(
        app.get_json("/api/whatsapp/queue/config").await["concurrency"],
        5
    );

    // What people write in shows up (the sandbox's ...0008 answers).
    app.send_ok("6281255500008", "where is my parcel?").await;
    b.wait_text("#inbox", |t| t.contains("Got it: where is my parcel?"))
        .await;

    // The API reference page renders the OpenAPI document, offline.
    b.client.goto(&app.url("/api/docs")).await.unwrap();
    b.wait_text("#ops", |t| t.contains("/api/whatsapp/send-message"))
        .await;
    let n = b
        .client
        .execute(
            "return document.querySelectorAll('#ops details').length;",
            vec![],
        )
        .await
        .unwrap();
    assert!(n.as_u64().unwrap() >= 20, "{n}");
    b.click("details[id='post /api/whatsapp/send-message'] summary")
        .await;
    b.wait_text("details[id='post /api/whatsapp/send-message'] pre", |t| {
        t.contains("\"number\"")
    })
    .await;
    b.screenshot("api-docs.png").await;

    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_shows_the_qr_code_while_a_scan_is_awaited() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let fake = FakeWa::start().await;
    let app = spawn_app_with(|c| use_webdriver(c, &fake)).await;
    wait_state(&app, &["qr"], Duration::from_secs(30)).await;
    let b = Browser::start().await;
    b.log_in(&app).await;
    b.wait_text("#wa-state", |t| t == "qr").await;
    let t0 = Instant::now();
    loop {
        let v = b
            .client
            .execute(
                "const q = document.getElementById('qr'); return [q.classList.contains('hidden'), q.src || '', q.dataset.qr || ''];",
                vec![],
            )
            .await
            .unwrap();
        if v[0] == false && v[1].as_str().unwrap().starts_with("data:image/png;base64,") {
            assert_eq!(v[2].as_str().unwrap(), fake.current_ref());
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sessions view shows the same code under the session's row.
    crate::helpers::eventually(Duration::from_secs(15), "the QR under default's row", || async {
        let v = b
            .client
            .execute(
                "const i = document.querySelector(\"tr[data-login-for='default'] img.session-qr\"); return i && !i.closest('tr').classList.contains('hidden') ? i.dataset.qr || '' : '';",
                vec![],
            )
            .await
            .unwrap();
        (v.as_str() == Some(fake.current_ref().as_str())).then_some(())
    })
    .await;
    b.screenshot("dashboard-qr.png").await;
    fake.scan();
    b.wait_text("#wa-state", |t| t == "connected").await;
    let hidden = b
        .client
        .execute(
            "return document.getElementById('qr').classList.contains('hidden');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(hidden, true);
    b.close().await;
    app.stop().await;
}

fn session_cell(name: &str, cell: &str) -> String {
    format!("tr[data-session='{name}'] {cell}")
}

#[tokio::test]
async fn the_dashboard_adds_stops_and_deletes_sessions_and_filters_jobs_by_session() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let app = spawn_app_with(|_| {}).await;
    let b = Browser::start().await;
    b.log_in(&app).await;
    b.wait_text(&session_cell("default", ".state"), |t| t == "connected")
        .await;

    // Add a session from the form.
    let name = b.client.find(Locator::Css("#new-session")).await.unwrap();
    name.send_keys("sales").await.unwrap();
    b.click("#add-session-btn").await;
    b.wait_text(&session_cell("sales", ".state"), |t| t == "connected")
        .await;
    assert_eq!(app.session("sales").await["driver"], "sandbox");

    // Its jobs show with their session, and the table filters by session.
    let sales_job = app.send_via("sales", "6281234567890", "from sales").await;
    let default_job = app.send_ok("6281234567891", "from default").await;
    b.wait_text(&row(&sales_job, ".status"), |t| t == "completed")
        .await;
    b.wait_text(&row(&default_job, ".status"), |t| t == "completed")
        .await;
    assert_eq!(
        b.text(&row(&sales_job, ".session")).await.as_deref(),
        Some("sales")
    );
    b.wait_text(&session_cell("sales", ".completed"), |t| t == "1")
        .await;
    b.client
        .execute(
            "const s = document.getElementById('job-session'); s.value = 'sales'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .unwrap();
    b.wait_gone(
        &row(&default_job, ".status"),
        "the filter hides default's jobs",
    )
    .await;
    assert!(b.text(&row(&sales_job, ".status")).await.is_some());

    // Stop, then delete (confirmed).
    b.click(&session_cell("sales", "button.stop")).await;
    b.wait_text(&session_cell("sales", ".state"), |t| t == "stopped")
        .await;
    assert_eq!(app.session("sales").await["state"], "stopped");
    b.client
        .execute("window.confirm = () => true;", vec![])
        .await
        .unwrap();
    b.click(&session_cell("sales", "button.delete")).await;
    b.wait_gone(&session_cell("sales", ".state"), "the deleted row goes")
        .await;
    let r = app.get("/api/sessions/sales").await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);

    // Pacing: off in the test config; a cap of one a minute holds the second message.
    b.wait_text(&session_cell("default", ".pacing"), |t| t == "off")
        .await;
    let one_a_minute =
        serde_json::json!({"pacing": {"enabled": true, "gap": "0s", "perMinute": 1}});
    assert!(
        app.patch("/api/sessions/default", &one_a_minute)
            .await
            .status()
            .is_success()
    );
    app.send_ok("6281234567892", "paced one").await;
    app.send_ok("6281234567893", "paced two").await;
    let shown = b
        .wait_text(&session_cell("default", ".pacing"), |t| {
            t.starts_with("held by per_minute")
        })
        .await;
    assert!(shown.contains("1/h") && shown.contains("today"), "{shown}");
    b.screenshot("dashboard-sessions.png").await;
    b.close().await;
    app.stop().await;
}
