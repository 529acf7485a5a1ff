//! `GET /api/events`: Server-Sent Events of job and WhatsApp state changes.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, error_code, spawn_app};

/// Reads SSE frames into (event, data) pairs until `done` says so, or 10 s pass.
pub(crate) async fn collect(
    app: &TestApp,
    mut done: impl FnMut(&[(String, Value)]) -> bool,
    during: impl std::future::Future<Output = ()>,
) -> Vec<(String, Value)> {
    let r = app
        .client
        .get(app.url("/api/events"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = r.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let mut during = Box::pin(during);
    let mut started = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::select! {
            _ = &mut during, if !started => { started = true; }
            chunk = stream.next() => {
                let chunk = chunk.expect("stream open").unwrap();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    let mut event = String::new();
                    let mut data = String::new();
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("event:") { event = v.trim().to_string(); }
                        if let Some(v) = line.strip_prefix("data:") { data.push_str(v.trim()); }
                    }
                    if !data.is_empty() {
                        out.push((event, serde_json::from_str(&data).unwrap()));
                    }
                }
                if done(&out) { return out; }
            }
            _ = tokio::time::sleep_until(deadline) => panic!("events so far: {out:?}"),
        }
    }
}

#[tokio::test]
async fn job_events_follow_a_message_from_waiting_to_completed_and_failed() {
    let app = spawn_app().await;
    let mut ids = (String::new(), String::new());
    let events = collect(
        &app,
        |evs| {
            evs.iter().any(|(k, _)| k == "job.completed")
                && evs.iter().any(|(k, _)| k == "job.failed")
        },
        async {
            ids.0 = app.send_ok("6281234567890", "watch me").await;
            ids.1 = app.send_ok("6281200000000", "not on whatsapp").await;
        },
    )
    .await;
    // The WhatsApp state comes first.
    assert_eq!(events[0].0, "whatsapp.state");
    assert_eq!(events[0].1["state"], "connected");
    assert_eq!(events[0].1["session"], "default");
    let of = |id: &str| -> Vec<String> {
        events
            .iter()
            .filter(|(k, v)| v["jobId"] == id && k.starts_with("job."))
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(
        of(&ids.0),
        ["job.waiting", "job.active", "job.completed"],
        "{events:?}"
    );
    assert_eq!(
        of(&ids.1),
        ["job.waiting", "job.active", "job.failed"],
        "{events:?}"
    );
    let failed = events.iter().find(|(k, _)| k == "job.failed").unwrap();
    assert_eq!(failed.1["error"]["code"], "not-registered");
    assert!(failed.1["messageId"].is_string());
    let job = app.job(&ids.0).await;
    let done = events.iter().find(|(k, _)| k == "job.completed").unwrap();
    assert_eq!(done.1["messageId"], job["messageId"]);
    assert_eq!(done.1["attempts"], 1);
    assert!(
        events
            .iter()
            .filter(|(kind, _)| kind.starts_with("job."))
            .all(|(_, e)| e["session"] == "default"),
        "every job event names its session: {events:?}"
    );
}

#[tokio::test]
async fn events_need_a_token() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/api/events")).send().await.unwrap();
    let code = error_code(r, StatusCode::UNAUTHORIZED).await;
    assert!(!code.is_empty());
}
