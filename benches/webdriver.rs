//! The WebDriver driver against the local stand-in for WhatsApp Web, in headless Chromium:
//! time to the QR code, scan to connected, per-message send latency (p50/p95), and the RSS of
//! Chromium and of this process (the driver, the fake page's server) after many sends.
//! Run: `cargo bench --bench webdriver` (500 sends); a debug build sends 10, as a smoke test.

#[path = "../tests/api/fake_whatsapp.rs"]
#[allow(dead_code)]
mod fake_whatsapp;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wa_gateway::config::{Dur, WebDriverConfig};
use wa_gateway::whatsapp::webdriver::{WebDriver, profile_processes, pss_bytes, which};
use wa_gateway::whatsapp::{MessageSender, Outbound};

const SENDS: usize = if cfg!(debug_assertions) { 10 } else { 500 };
const LATENCY_SAMPLE: usize = if cfg!(debug_assertions) { 10 } else { 50 };

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn wait_for(driver: &WebDriver, state: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    while driver.status().state != state {
        assert!(t0.elapsed() < within, "not {state}: {:?}", driver.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
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
    let fake = fake_whatsapp::FakeWa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = WebDriverConfig {
        web_url: fake.url.clone(),
        keepalive_interval: Dur::secs(5),
        ..WebDriverConfig::default()
    };
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let profile = dir.path().join("profile");
    let t0 = Instant::now();
    let driver = WebDriver::start(cfg, profile.clone(), shutdown.clone(), &tracker);
    wait_for(&driver, "qr", Duration::from_secs(60)).await;
    let to_qr = t0.elapsed();
    fake.scan();
    let to_connected = wait_for(&driver, "connected", Duration::from_secs(30)).await;

    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..SENDS {
        let m = Outbound {
            job_id: format!("bench-{i}"),
            message_id: format!("bench-{i}"),
            chat_id: String::new(),
            number: format!("62812{:08}", i % 50),
            text: format!("Benchmark message {i} ✓ with an emoji 🚀\nand a second line"),
            attempt: 1,
        };
        let t = Instant::now();
        driver.send(&m).await.expect("send");
        if i < LATENCY_SAMPLE {
            latencies.push(t.elapsed());
        }
    }
    let total = started.elapsed();
    assert_eq!(fake.sent().len(), SENDS);
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    let procs = profile_processes(&profile);
    let chromium_rss_kib: u64 = procs.iter().map(|p| rss_kib(*p)).sum();
    let chromium_pss_kib: u64 = procs.iter().map(|p| pss_bytes(*p) / 1024).sum();
    let own_kib = rss_kib(std::process::id());
    let build = if cfg!(debug_assertions) {
        "debug build: run `cargo bench --bench webdriver` for real figures"
    } else {
        "release build"
    };
    println!("WebDriver driver against the local WhatsApp Web stand-in ({build}):");
    println!("start → QR                 {to_qr:?}");
    println!("scan → connected           {to_connected:?}");
    println!(
        "send latency over {} sends  p50 {:?}  p95 {:?}",
        latencies.len(),
        pct(50),
        pct(95)
    );
    println!(
        "{SENDS} sends in {total:?} ({:.1}/s, one browser page, serialised)",
        SENDS as f64 / total.as_secs_f64()
    );
    println!(
        "after {SENDS} sends: Chromium {} processes, PSS {} MiB (RSS summed {} MiB); driver process RSS {} MiB",
        procs.len(),
        chromium_pss_kib / 1024,
        chromium_rss_kib / 1024,
        own_kib / 1024
    );
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    assert!(
        profile_processes(&profile).is_empty(),
        "browser left running"
    );
}
