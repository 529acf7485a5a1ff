//! The sandbox's documented test numbers, with their exact attempt counts.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn each_sandbox_test_number_behaves_as_documented() {
    let app = spawn_app().await; // max_retries 5, backoff 20ms..160ms
    let cases = [
        ("6281200000000", "failed", 1, Some("not-registered")),
        ("6281200000001", "completed", 3, Some("timeout")),
        ("6281200000002", "failed", 6, Some("session-closed")),
        ("6281200000003", "failed", 1, Some("blocked")),
        ("6281200000004", "failed", 1, Some("rate-limited")),
        ("6281234567890", "completed", 1, None),
    ];
    let mut ids = Vec::new();
    for (number, ..) in cases {
        ids.push(app.send_ok(number, &format!("to {number}")).await);
    }
    for ((number, status, attempts, code), id) in cases.iter().zip(&ids) {
        let job = app.wait_finished(id).await;
        assert_eq!(job["status"], *status, "{number}: {job}");
        assert_eq!(job["attempts"], *attempts, "{number}: {job}");
        match code {
            Some(code) => assert_eq!(job["lastError"]["code"], *code, "{number}"),
            None => assert_eq!(job["lastError"], serde_json::Value::Null),
        }
    }
    let delivered: Vec<String> = app
        .outbox()
        .iter()
        .map(|l| l["chatId"].as_str().unwrap().to_string())
        .collect();
    let mut delivered_sorted = delivered.clone();
    delivered_sorted.sort();
    assert_eq!(
        delivered_sorted,
        vec!["6281200000001@c.us", "6281234567890@c.us"]
    );
}

#[tokio::test]
async fn retries_wait_the_backoff_between_attempts() {
    let app = spawn_app().await; // 20ms, 40ms, 80ms, 160ms, 160ms
    let r = app
        .send(&json!({"number": "6281200000002", "message": "x"}))
        .await;
    let id = r.json::<serde_json::Value>().await.unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = std::time::Instant::now();
    let job = app.wait_finished(&id).await;
    let took = t0.elapsed();
    assert_eq!(job["attempts"], 6);
    assert!(
        took >= std::time::Duration::from_millis(460),
        "retries came too early: {took:?}"
    );
}
