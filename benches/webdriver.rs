//! The WebDriver driver end to end, in the real gateway (`run()` in this process) against the
//! local stand-in for WhatsApp Web, in headless Chromium: time to the QR code, scan to
//! connected, per-message latency (API accept → job completed, one at a time, p50/p95), and
//! the memory of Chromium and of the gateway after many sends through the queue.
//! Run: `cargo bench --bench webdriver` (500 sends); a debug build sends 10, as a smoke test.
//! `OPEN_CHATS_IN_APP=false` loads the app for every send (the old way), `LOADING_MS=3000`
//! makes the stand-in's app load as slow as the real one, `SENDS=40` sends fewer,
//! `RECEIPT_INTERVAL=0s` watches no receipts (to see what watching them costs the sends),
//! `INCOMING=200` has people write 200 messages into 20 chats while the queue sends (one every
//! 100 ms), `INCOMING_INTERVAL=0s` reads none (to see what reading them costs the sends).

#[path = "../tests/api/fake_pages.rs"]
mod fake_pages;
#[path = "../tests/api/fake_whatsapp.rs"]
#[expect(dead_code, reason = "the bench uses a part of the test stand-in")]
mod fake_whatsapp;

#[path = "../tests/api/client.rs"]
#[expect(dead_code, reason = "the bench uses a part of the tests' client")]
mod client;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wa_gateway::config::Config;
use wa_gateway::whatsapp::webdriver::{profile_processes, pss_bytes, rss_bytes, which};

const DEFAULT_SENDS: usize = if cfg!(debug_assertions) { 10 } else { 500 };

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    if which("chromium").is_none() || which("chromedriver").is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and chromium/chromedriver missing");
        }
        eprintln!("skipped: chromium or chromedriver not on PATH");
        return;
    }
    let sends: usize = env_or("SENDS", DEFAULT_SENDS);
    let latency_sample = (sends / 10).max(5).min(sends);
    let in_app: bool = env_or("OPEN_CHATS_IN_APP", true);
    let loading_ms: u64 = env_or("LOADING_MS", 300);
    let receipt_interval: String = env_or("RECEIPT_INTERVAL", "2s".to_string());
    let incoming: usize = env_or("INCOMING", 0);
    let incoming_interval: String = env_or("INCOMING_INTERVAL", "2s".to_string());
    let fake = fake_whatsapp::FakeWa::start().await;
    fake.set_loading_ms(loading_ms);
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
driver = "webdriver"
[whatsapp.webdriver]
web_url = "{}"
open_chats_in_app = {in_app}
receipt_interval = "{receipt_interval}"
incoming_interval = "{incoming_interval}"
"#,
        fake.url
    );
    let config = Config::parse(&toml, "bench.toml", dir.path(), std::iter::empty()).unwrap();
    let profile = config.browser_profile("default");
    wa_gateway::cli::add_user(&config, "bench@example.com", "bench password 123".into())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let t0 = Instant::now();
    let server = tokio::spawn(wa_gateway::run(config, listener, shutdown.clone()));
    let api = client::Api::login_at(base, "bench@example.com", "bench password 123").await;
    api.wait_state(&["qr"], Duration::from_secs(60)).await;
    let to_qr = t0.elapsed();
    fake.scan();
    let (_, to_connected) = api
        .wait_state(&["connected"], Duration::from_secs(30))
        .await;
    let text = |i: usize| format!("Benchmark message {i} ✓ with an emoji 🚀\nand a second line");
    let number = |i: usize| format!("62812{:08}", i % 50);

    // Latency: one message at a time, from the API's 202 to the job completed.
    let mut latencies = Vec::new();
    for i in 0..latency_sample {
        let t = Instant::now();
        let id = api.send_ok(&number(i), &text(i)).await;
        assert_eq!(
            api.wait_finished_within(&id, Duration::from_secs(60)).await["status"],
            "completed"
        );
        latencies.push(t.elapsed());
    }
    // The rest through the queue at once (concurrency 3; the browser takes them in turn), while
    // people write in (INCOMING).
    let writers = {
        let fake = fake.clone();
        tokio::spawn(async move {
            for i in 0..incoming {
                fake.receive(&format!("62813{:08}", i % 20), &format!("question {i}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in latency_sample..sends {
        ids.push(api.send_ok(&number(i), &text(i)).await);
    }
    for id in &ids {
        assert_eq!(
            api.wait_finished_within(id, Duration::from_secs(600)).await["status"],
            "completed"
        );
    }
    let queued = started.elapsed();
    assert_eq!(fake.sent().len(), sends);
    writers.await.unwrap();
    let read_all = if incoming > 0 && incoming_interval != "0s" {
        let t = Instant::now();
        client::eventually(
            Duration::from_secs(300),
            "every message written in is read",
            || async {
                let l = api
                    .get_json("/api/sessions/default/messages?limit=1000")
                    .await;
                (l["messages"].as_array().unwrap().len() >= incoming).then_some(())
            },
        )
        .await;
        Some(t.elapsed())
    } else {
        None
    };
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    let procs = profile_processes(&profile);
    let chromium_pss: u64 = procs.iter().map(|p| pss_bytes(*p)).sum::<u64>() >> 20;
    let chromium_rss: u64 = procs.iter().map(|p| rss_bytes(*p)).sum::<u64>() >> 20;
    let gateway_rss = rss_bytes(std::process::id()) >> 20;
    let build = if cfg!(debug_assertions) {
        "debug build: run `cargo bench --bench webdriver` for real figures"
    } else {
        "release build"
    };
    println!(
        "The gateway with the WebDriver driver, against the local WhatsApp Web stand-in ({build}); \
         app load {loading_ms} ms, receipts looked at every {receipt_interval}, received messages every {incoming_interval} ({incoming} written in), chats opened {}:",
        if in_app {
            "in the running app"
        } else {
            "by loading the app"
        }
    );
    println!("start → QR                   {to_qr:.2?}");
    println!("scan → connected             {to_connected:.2?}");
    println!(
        "latency, {} sends one at a time (202 → completed): p50 {:.0?}  p95 {:.0?}",
        latencies.len(),
        pct(50),
        pct(95)
    );
    println!(
        "{} more through the queue in {queued:.1?} ({:.2}/s)",
        ids.len(),
        ids.len() as f64 / queued.as_secs_f64()
    );
    println!(
        "after {sends} sends ({} app loads): Chromium {} processes, PSS {chromium_pss} MiB (RSS summed {chromium_rss} MiB); gateway process RSS {gateway_rss} MiB",
        fake.loads(),
        procs.len()
    );
    if let Some(t) = read_all {
        println!(
            "received: all {incoming} messages written into 20 chats during the sends were read, the last {t:.1?} after the last send"
        );
    }
    // Receipts: every message reached its phone (delivered); now every chat reads them all.
    let watching = receipt_interval != "0s";
    if watching {
        let statuses = |want: &'static str| {
            let api = &api;
            async move {
                let list = api.get_json("/api/whatsapp/jobs?limit=500").await;
                list["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|j| j["receipt"]["status"] == want)
                    .count()
            }
        };
        let t = Instant::now();
        for i in 0..50.min(sends) {
            fake.read_chat(&number(i));
        }
        let newest = sends.min(500);
        client::eventually(
            Duration::from_secs(120),
            "every message shows read",
            || async { (statuses("read").await >= newest).then_some(()) },
        )
        .await;
        println!(
            "receipts: {sends} messages in watch (delivered); all 50 chats read → the newest {newest} jobs read in {:.1?} (looks every {receipt_interval})",
            t.elapsed()
        );
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert!(
        profile_processes(&profile).is_empty(),
        "browser left running"
    );
}
