//! Many WhatsApp accounts in one gateway, in headless Chromium against the local WhatsApp Web
//! stand-in: the time from `POST /api/sessions` to its QR code, and the memory of the gateway
//! and of each session's Chromium with 1, 3 and 6 connected sessions (each has sent a few
//! messages). Run: `cargo bench --bench sessions`; a debug build stops at 2 sessions, as a
//! smoke test.

#[path = "../tests/api/fake_pages.rs"]
mod fake_pages;
#[path = "../tests/api/fake_whatsapp.rs"]
#[expect(dead_code, reason = "the bench uses a part of the test stand-in")]
mod fake_whatsapp;

#[path = "../tests/api/client.rs"]
#[expect(dead_code, reason = "the bench uses a part of the tests' client")]
mod client;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wa_gateway::config::Config;
use wa_gateway::whatsapp::webdriver::{profile_processes, pss_bytes, rss_bytes, which};

const STEPS: &[usize] = if cfg!(debug_assertions) {
    &[1, 2]
} else {
    &[1, 3, 6]
};
const SENDS_EACH: usize = 5;
const UP: Duration = Duration::from_secs(90);

#[tokio::main]
async fn main() {
    if which("chromium").is_none() || which("chromedriver").is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and chromium/chromedriver missing");
        }
        eprintln!("skipped: chromium or chromedriver not on PATH");
        return;
    }
    let fake = fake_whatsapp::FakeWa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[storage]
data_dir = "data"
[auth]
jwt_secret = "bench-secret-bench-secret-bench-secret"
[log]
level = "warn"
# The driver's own speed: pacing's gaps would set it instead.
[pacing]
enabled = false
[whatsapp]
driver = "sandbox"
max_browsers = 6
[whatsapp.webdriver]
web_url = "{}"
"#,
        fake.url
    );
    let config = Config::parse(&toml, "bench.toml", dir.path(), std::iter::empty()).unwrap();
    wa_gateway::cli::add_user(&config, "bench@example.com", "bench password 123".into())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(wa_gateway::run(config.clone(), listener, shutdown.clone()));
    let api = client::Api::login_at(base, "bench@example.com", "bench password 123").await;
    let idle_rss = rss_bytes(std::process::id()) >> 20;

    let mut to_qr = Vec::new();
    let mut rows = Vec::new();
    let mut created = 0;
    for &n in STEPS {
        while created < n {
            created += 1;
            let name = format!("s{created}");
            let account = format!("62811000{created:05}");
            let t = Instant::now();
            let r = api
                .post(
                    "/api/sessions",
                    &json!({"name": name, "driver": "webdriver"}),
                )
                .await;
            assert_eq!(r.status(), 201);
            let qr = client::eventually(UP, "a QR code", || async {
                let r = api.get(&format!("/api/sessions/{name}/qr")).await;
                if r.status() != 200 {
                    return None;
                }
                r.json::<Value>().await.unwrap()["qr"]
                    .as_str()
                    .map(str::to_string)
            })
            .await;
            to_qr.push(t.elapsed());
            assert!(fake.scan_code(&qr, &account), "the code on {name}'s page");
            api.wait_session_state(&name, &["connected"], UP).await;
            let texts: Vec<String> = (0..SENDS_EACH).map(|i| format!("{name} #{i}")).collect();
            let ids: Vec<String> = futures_util::future::join_all(
                texts
                    .iter()
                    .map(|t| api.send_via(&name, "6281234500001", t)),
            )
            .await;
            for id in ids {
                assert_eq!(
                    api.wait_finished_within(&id, UP).await["status"],
                    "completed"
                );
            }
        }
        let per_session: Vec<u64> = (1..=n)
            .map(|i| {
                let procs = profile_processes(&config.browser_profile(&format!("s{i}")));
                procs.iter().map(|p| pss_bytes(*p)).sum::<u64>() >> 20
            })
            .collect();
        let gateway = rss_bytes(std::process::id()) >> 20;
        rows.push((n, gateway, per_session));
    }
    let build = if cfg!(debug_assertions) {
        "debug build: run `cargo bench --bench sessions` for real figures"
    } else {
        "release build"
    };
    println!("Sessions in one gateway, headless Chromium on the stand-in ({build}):");
    to_qr.sort();
    println!(
        "POST /api/sessions → QR: min {:.2?}, median {:.2?}, max {:.2?} ({} sessions)",
        to_qr[0],
        to_qr[to_qr.len() / 2],
        to_qr[to_qr.len() - 1],
        to_qr.len()
    );
    println!("gateway RSS before any session: {idle_rss} MiB");
    println!(
        "| sessions | gateway RSS | Chromium PSS per session (min–max) | Chromium PSS total |"
    );
    println!("| --- | --- | --- | --- |");
    for (n, gateway, per) in rows {
        let total: u64 = per.iter().sum();
        println!(
            "| {n} | {gateway} MiB | {}–{} MiB | {total} MiB |",
            per.iter().min().unwrap(),
            per.iter().max().unwrap()
        );
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
    for i in 1..=created {
        assert!(
            profile_processes(&config.browser_profile(&format!("s{i}"))).is_empty(),
            "browser s{i} left running"
        );
    }
}
