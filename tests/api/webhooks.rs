//! Webhooks: signed, at least once with stable delivery ids, in order per job, retried while the
//! receiver fails, and kept across a restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use wa_gateway::config::{Config, WebhookConfig};

use crate::helpers::{spawn_app_with, start};

pub(crate) const SECRET: &str = "whsec-test-0123456789";

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    /// Answer 500 to this many requests first.
    pub(crate) fail_first: Arc<Mutex<u32>>,
    /// Answer 500 to everything while set.
    pub(crate) down: Arc<Mutex<bool>>,
    /// Every request: (delivery id, body), and whether its signature checked out.
    pub(crate) got: Arc<Mutex<Vec<(String, Value, bool)>>>,
    accepted: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    pub(crate) async fn start(&self) -> String {
        let me = self.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    let id = headers["x-wagateway-delivery"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    let sig = headers["x-wagateway-signature"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    let t: i64 = sig
                        .split(',')
                        .find_map(|p| p.strip_prefix("t="))
                        .unwrap()
                        .parse()
                        .unwrap();
                    let fresh = (wa_gateway::time::now_ms() / 1000 - t).abs() < 300;
                    let valid = fresh && wa_gateway::webhooks::signature(SECRET, t, &body) == sig;
                    let v: Value = serde_json::from_str(&body).unwrap();
                    me.got.lock().unwrap().push((id.clone(), v.clone(), valid));
                    let mut fail = me.fail_first.lock().unwrap();
                    if *fail > 0 || *me.down.lock().unwrap() {
                        *fail = fail.saturating_sub(1);
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    me.accepted.lock().unwrap().push((id, v));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }
}

fn hook(c: &mut Config, url: &str) {
    c.webhooks = vec![WebhookConfig {
        url: url.to_string(),
        events: vec![
            "job.waiting".into(),
            "job.active".into(),
            "job.completed".into(),
            "job.failed".into(),
        ],
        secret: SECRET.into(),
        max_attempts: 20,
    }];
}

/// Accepted deliveries, once each (by delivery id), in arrival order.
pub(crate) fn unique(r: &Receiver) -> Vec<(String, Value)> {
    let mut seen = std::collections::HashSet::new();
    r.accepted
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .cloned()
        .collect()
}

pub(crate) async fn wait_for(r: &Receiver, n: usize, within: Duration) {
    let t0 = Instant::now();
    while unique(r).len() < n {
        assert!(
            t0.elapsed() < within,
            "got {} of {n}: {:?}",
            unique(r).len(),
            r.got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_then_succeeds_gets_every_event_in_order_per_job() {
    let receiver = Receiver::default();
    *receiver.fail_first.lock().unwrap() = 3;
    let url = receiver.start().await;
    let app = spawn_app_with(|c| hook(c, &url)).await;
    let a = app.send_ok("6281234567890", "first").await;
    let b = app.send_ok("6281200000000", "not registered").await;
    app.wait_finished(&a).await;
    app.wait_finished(&b).await;
    wait_for(&receiver, 6, Duration::from_secs(30)).await;
    let got = unique(&receiver);
    for (job, last) in [(&a, "job.completed"), (&b, "job.failed")] {
        let events: Vec<&str> = got
            .iter()
            .filter(|(_, v)| v["data"]["jobId"] == **job)
            .map(|(_, v)| v["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["job.waiting", "job.active", last], "job {job}");
    }
    for (id, v) in &got {
        assert_eq!(v["id"], *id);
        assert!(v["data"]["messageId"].is_string(), "{v}");
        assert_eq!(v["data"]["session"], "default", "{v}");
    }
    let all = receiver.got.lock().unwrap().clone();
    assert!(all.iter().all(|(_, _, valid)| *valid), "a bad signature");
    // The three failures were retries of the first delivery, with the same id.
    assert_eq!(all[0].0, all[3].0);
    // The outcome of the last delivery is stored just after the receiver answered.
    let t0 = Instant::now();
    let list = loop {
        let list = app.get_json("/api/webhooks/deliveries").await;
        let ds = list["deliveries"].as_array().unwrap();
        if ds.len() == 6 && ds.iter().all(|d| d["status"] == "delivered") {
            break list;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ds = list["deliveries"].as_array().unwrap();
    assert_eq!(ds.last().unwrap()["attempts"], 4, "{list}");
    app.stop().await;
}

#[tokio::test]
async fn deliveries_pending_at_shutdown_are_delivered_after_a_restart() {
    let receiver = Receiver::default();
    *receiver.down.lock().unwrap() = true;
    let url = receiver.start().await;
    let app = spawn_app_with(|c| hook(c, &url)).await;
    let id = app.send_ok("6281234567890", "across a restart").await;
    app.wait_finished(&id).await;
    // Wait until all three deliveries are recorded (the recorder runs beside the queue) and
    // the first was tried and refused.
    let t0 = Instant::now();
    loop {
        let pending = app
            .get_json("/api/webhooks/deliveries?status=pending")
            .await;
        if pending["deliveries"].as_array().unwrap().len() == 3
            && !receiver.got.lock().unwrap().is_empty()
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{pending}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tried: String = receiver.got.lock().unwrap()[0].0.clone();
    let (dir, config) = app.stop().await;

    *receiver.down.lock().unwrap() = false;
    let app = start(dir, config).await;
    wait_for(&receiver, 3, Duration::from_secs(30)).await;
    let got = unique(&receiver);
    assert_eq!(
        got[0].0, tried,
        "the delivery id is stable across the restart"
    );
    let events: Vec<&str> = got
        .iter()
        .map(|(_, v)| v["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["job.waiting", "job.active", "job.completed"]);
    app.stop().await;
}
