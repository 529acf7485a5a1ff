//! Tests that run the real `wa-gateway` binary as a child process: crash safety under
//! `kill -9`, graceful SIGTERM, start-up errors, and what the log may and may not contain.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Api, read_outbox};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wa-gateway");
const ADMIN: &str = "ops@example.com";
pub(crate) const ADMIN_PW: &str = "a long admin password";

pub(crate) struct Gateway {
    child: Child,
    log: Arc<Mutex<String>>,
    api: Api,
}

impl std::ops::Deref for Gateway {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The process tests' gateway.toml in `dir`: concurrency 3, short backoffs, pacing off, and
/// `whatsapp`, the TOML of its WhatsApp driver.
fn write_gateway_toml(dir: &Path, whatsapp: &str) {
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
[storage]
data_dir = "data"
[queue]
concurrency = 3
backoff_base = "20ms"
backoff_max = "100ms"
shutdown_grace = "5s"
[pacing]
enabled = false
{whatsapp}"#
    );
    std::fs::write(dir.join("gateway.toml"), text).unwrap();
}

/// The process tests' gateway on the sandbox, each send taking `delay`.
pub(crate) fn write_config(dir: &Path, delay: &str) {
    write_gateway_toml(
        dir,
        &format!("[whatsapp.sandbox]\ndelay = \"{delay}\"\noutbox = \"data/outbox.jsonl\"\n"),
    );
}

/// The process tests' gateway with webdriver sessions on the stand-in at `web` (short
/// watchdog timeouts, as in `webdriver.rs`), then `extra` TOML.
pub(crate) fn write_webdriver_config(dir: &Path, web: &str, extra: &str) {
    write_gateway_toml(
        dir,
        &format!(
            r#"[whatsapp]
driver = "webdriver"
[whatsapp.webdriver]
web_url = "{web}"
keepalive_interval = "1s"
session_timeout = "4s"
ready_timeout = "30s"
send_timeout = "10s"
{extra}"#
        ),
    );
}

impl Gateway {
    pub(crate) async fn start(dir: &Path) -> Gateway {
        Self::start_with_env(dir, &[]).await
    }

    pub(crate) async fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Gateway {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.join("gateway.toml"))
            .envs(crate::pg::env_for(&dir.join("gateway.toml")))
            .envs(env.iter().copied())
            .env("GATEWAY_ADMIN_EMAIL", ADMIN)
            .env("GATEWAY_ADMIN_PASSWORD", ADMIN_PW)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wa-gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("Listening on http://") {
                    let rest = &line[at + "Listening on http://".len()..];
                    let addr: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listen line; log:\n{}", log.lock().unwrap()));
        let api = Api::login_at(format!("http://{addr}"), ADMIN, ADMIN_PW).await;
        Gateway { child, log, api }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds every one of `lines` (within 10 s).
    pub(crate) async fn wait_log(&self, lines: &[&str]) -> String {
        crate::helpers::eventually(
            Duration::from_secs(10),
            &format!("log lines {lines:?}"),
            || async {
                let log = self.log();
                lines.iter().all(|l| log.contains(l)).then_some(log)
            },
        )
        .await
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    pub(crate) fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn kill_9_in_a_busy_queue_loses_no_accepted_job() {
    let dir = tempfile::tempdir().unwrap();
    // 20ms a send at concurrency 3 drains ~150 jobs/s, slower than the test posts, so a
    // backlog is certain at the kill.
    write_config(dir.path(), "20ms");
    let mut gw = Gateway::start(dir.path()).await;
    let outbox = dir.path().join("data/outbox.jsonl");

    // Keep posting while the workers drain; kill -9 once some have gone out.
    let mut accepted = Vec::new();
    let mut killed = false;
    for i in 0..2000 {
        match gw
            .try_send_text("6281234567890", &format!("crash-test {i}"))
            .await
        {
            Ok(r) if r.status() == StatusCode::ACCEPTED => {
                accepted.push(
                    r.json::<Value>().await.unwrap()["jobId"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            Ok(r) => panic!("unexpected {}", r.status()),
            Err(_) if killed => break,
            Err(e) => panic!("request failed before the kill: {e}"),
        }
        if !killed && read_outbox(&outbox).len() >= 20 {
            gw.child.kill().unwrap(); // SIGKILL
            gw.child.wait().unwrap();
            killed = true;
        }
    }
    assert!(killed, "the queue drained too fast to kill it mid-way");
    let delivered_before = read_outbox(&outbox).len();
    assert!(
        delivered_before < accepted.len(),
        "some jobs were still pending at the kill"
    );
    drop(gw);

    let gw = Gateway::start(dir.path()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = gw.get_json("/api/whatsapp/status").await;
        if s["queue"]["waiting"] == 0 && s["queue"]["active"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue did not drain after restart: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered: Vec<String> = read_outbox(&outbox)
        .iter()
        .map(|l| l["jobId"].as_str().unwrap().to_string())
        .collect();
    for id in &accepted {
        let job = gw.get_json(&format!("/api/whatsapp/jobs/{id}")).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert!(delivered.contains(id), "accepted job {id} never delivered");
    }
    // At most the sends in flight at the kill (concurrency 3) can go out twice.
    let unique: std::collections::HashSet<_> = delivered.iter().collect();
    println!(
        "kill -9: {} accepted, {} delivered before the kill, all completed after restart, {} sent twice",
        accepted.len(),
        delivered_before,
        delivered.len() - unique.len()
    );
    assert!(
        delivered.len() - unique.len() <= 3,
        "{} duplicates",
        delivered.len() - unique.len()
    );
}

/// A gateway with a `job.completed` webhook whose receiver is down, so deliveries stay pending.
async fn gateway_with_webhook_down() -> (crate::webhooks::Receiver, tempfile::TempDir, Gateway) {
    use crate::webhooks::{Receiver, SECRET};
    let receiver = Receiver::default();
    *receiver.down.lock().unwrap() = true;
    let url = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "0ms");
    let mut config = std::fs::read_to_string(dir.path().join("gateway.toml")).unwrap();
    config.push_str(&format!(
        "[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nevents = [\"job.completed\"]\n"
    ));
    std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
    let gw = Gateway::start(dir.path()).await;
    (receiver, dir, gw)
}

#[tokio::test]
async fn webhook_deliveries_pending_at_a_kill_9_are_delivered_after_restart() {
    use crate::webhooks::{unique, wait_for};
    let (receiver, dir, mut gw) = gateway_with_webhook_down().await;
    let mut jobs = Vec::new();
    for i in 0..5 {
        let r = gw
            .try_send_text("6281234567890", &format!("hooked {i}"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        jobs.push(
            r.json::<Value>().await.unwrap()["jobId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // All five completed and recorded; the receiver refused at least the first try.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = gw.get_json("/api/webhooks/deliveries?status=pending").await;
        if pending["deliveries"].as_array().unwrap().len() == 5
            && !receiver.got.lock().unwrap().is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "{pending}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();
    drop(gw);

    *receiver.down.lock().unwrap() = false;
    let _gw = Gateway::start(dir.path()).await;
    wait_for(&receiver, 5, Duration::from_secs(30)).await;
    let mut got: Vec<String> = unique(&receiver)
        .iter()
        .map(|(_, v)| v["data"]["jobId"].as_str().unwrap().to_string())
        .collect();
    // The five ran three at a time, so they completed in any order; each event arrives once.
    got.sort();
    jobs.sort();
    assert_eq!(got, jobs, "every job's completion event after the kill");
}

#[tokio::test]
async fn a_jobs_completion_event_is_stored_with_the_completion_even_at_a_kill_9() {
    let (_receiver, dir, mut gw) = gateway_with_webhook_down().await;
    let id = gw.send_ok("6281234567890", "completed, then killed").await;
    // Killed the moment the API shows the job completed: nothing else gets to run.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.get_json(&format!("/api/whatsapp/jobs/{id}")).await["status"] != "completed" {
        assert!(Instant::now() < deadline);
    }
    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();
    drop(gw);

    let gw = Gateway::start(dir.path()).await;
    assert_eq!(
        gw.get_json(&format!("/api/whatsapp/jobs/{id}")).await["status"],
        "completed"
    );
    let deliveries = gw.get_json("/api/webhooks/deliveries?limit=1000").await;
    let for_job: Vec<&Value> = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["jobId"] == id.as_str() && d["event"] == "job.completed")
        .collect();
    assert_eq!(for_job.len(), 1, "{deliveries}");
}

#[tokio::test]
async fn sigterm_lets_an_active_send_finish_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "800ms");
    let mut gw = Gateway::start(dir.path()).await;
    let id = gw.send_ok("6281234567890", "finish me").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.get_json("/api/whatsapp/status").await["queue"]["active"] != 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("-TERM");
    let status = gw.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let out = read_outbox(&dir.path().join("data/outbox.jsonl"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["jobId"], id.as_str());
    drop(gw);
    let gw = Gateway::start(dir.path()).await;
    assert_eq!(
        gw.get_json(&format!("/api/whatsapp/jobs/{id}")).await["status"],
        "completed"
    );
}
