//! Receipts in the sandbox: a message goes sent → delivered → read as the recipient's phone
//! gets and reads it, the job keeps each step with its time, and each step's event and webhook
//! fire once.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{eventually, spawn_app_with};

const UP: Duration = Duration::from_secs(10);

async fn deliveries_for(app: &crate::helpers::TestApp, job: &str) -> Vec<String> {
    let d = app.get_json("/api/webhooks/deliveries?limit=1000").await;
    d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["jobId"] == job)
        .map(|d| d["event"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_ack(app: &crate::helpers::TestApp, job: &str, want: &str) -> Value {
    eventually(UP, &format!("job {job} {want}"), || async {
        let j = app.job(job).await;
        (j["receipt"]["status"] == want).then_some(j)
    })
    .await
}

#[tokio::test]
async fn a_message_goes_sent_delivered_read_and_each_step_fires_once() {
    let app = spawn_app_with(|c| {
        c.whatsapp.sandbox.delay = wa_gateway::config::Dur::millis(50);
        c.webhooks = vec![crate::helpers::unheard_webhook(&[
            "message.delivered",
            "message.read",
        ])];
    })
    .await;
    // Sandbox: ...0005 reads, ...0006 is never delivered, others are delivered.
    let (mut read, mut delivered, mut offline) = (String::new(), String::new(), String::new());
    let stream = crate::events::collect(
        &app,
        |evs| {
            let n = |k: &str| evs.iter().filter(|(kind, _)| kind == k).count();
            n("message.read") >= 1 && n("message.delivered") >= 2
        },
        async {
            read = app.send_ok("6281255500005", "read me").await;
            delivered = app.send_ok("6281255501234", "deliver me").await;
            offline = app.send_ok("6281255500006", "nobody home").await;
        },
    )
    .await;
    let steps = |job: &str| -> Vec<String> {
        stream
            .iter()
            .filter(|(k, d)| k.starts_with("message.") && d["jobId"] == job)
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(steps(&read), ["message.delivered", "message.read"]);
    assert_eq!(steps(&delivered), ["message.delivered"]);
    assert!(steps(&offline).is_empty());

    let j = wait_ack(&app, &read, "read").await;
    let (d, r) = (
        j["deliveredAt"].as_str().unwrap(),
        j["readAt"].as_str().unwrap(),
    );
    assert!(d <= r, "{j}");
    let j = wait_ack(&app, &delivered, "delivered").await;
    assert!(j["readAt"].is_null() && j["deliveredAt"].is_string(), "{j}");
    let j = app.wait_finished(&offline).await;
    assert_eq!(j["receipt"]["status"], "sent", "{j}");
    assert!(j["deliveredAt"].is_null(), "{j}");

    // A second message to the reading chat gets its own steps; the first's stay as they were.
    let again = app.send_ok("6281255500005", "read me too").await;
    wait_ack(&app, &again, "read").await;
    for job in [&read, &again] {
        let mut got = deliveries_for(&app, job).await;
        got.sort();
        assert_eq!(got, ["message.delivered", "message.read"], "{job}");
    }
    assert_eq!(
        deliveries_for(&app, &delivered).await,
        ["message.delivered"]
    );
    assert!(deliveries_for(&app, &offline).await.is_empty());
}
