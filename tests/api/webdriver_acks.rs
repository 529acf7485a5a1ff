//! Receipts through WhatsApp Web, without a page load per message: the chat list shows the
//! ticks of each chat's last message, the open chat each bubble's; both as today's builds draw a
//! read (a blue double tick labelled "Read") and as older ones did (`msg-dblcheck-ack`).

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, eventually};
use crate::webdriver::{browser_session, connected_app, deliver};

const UP: Duration = Duration::from_secs(20);

async fn job_of(app: &TestApp, number: &str) -> Value {
    let list = app.get_json("/api/whatsapp/jobs?limit=100").await;
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["chatId"] == format!("{number}@c.us"))
        .cloned()
        .expect("a job to that number")
}

async fn wait_status(app: &TestApp, number: &str, want: &str) -> Value {
    eventually(UP, &format!("{number} {want}"), || async {
        let j = job_of(app, number).await;
        (j["receipt"]["status"] == want).then_some(j)
    })
    .await
}

#[tokio::test]
async fn receipts_progress_from_the_chat_list_and_the_open_chat_once_each() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| {
        c.webhooks = vec![crate::helpers::unheard_webhook(&[
            "message.delivered",
            "message.read",
        ])];
    })
    .await;
    let (a, b, c, d) = (
        "6281255510001",
        "6281255510002",
        "6281255510003",
        "6281255510004",
    );
    deliver(&app, a, "to be read").await;
    deliver(&app, b, "to be delivered").await;
    fake.phone_off(c);
    deliver(&app, c, "phone off").await;
    // a and b through the chat list; c, the open chat, through its bubble.
    fake.read_chat(a);
    let ja = wait_status(&app, a, "read").await;
    assert!(
        ja["deliveredAt"].as_str().unwrap() <= ja["readAt"].as_str().unwrap(),
        "{ja}"
    );
    let jb = wait_status(&app, b, "delivered").await;
    assert!(jb["readAt"].is_null(), "{jb}");
    assert_eq!(job_of(&app, c).await["receipt"]["status"], "sent");
    fake.phone_on(c);
    wait_status(&app, c, "delivered").await;
    // Read as older builds draw it.
    fake.set_old_read_icon(true);
    deliver(&app, d, "older read icon").await;
    fake.read_chat(d);
    wait_status(&app, d, "read").await;

    // Each step once: one delivery per step and job.
    let list = app.get_json("/api/webhooks/deliveries?limit=1000").await;
    let mut steps: Vec<(String, String)> = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["jobId"].as_str().unwrap().to_string(),
                d["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    steps.sort();
    let n = steps.len();
    steps.dedup();
    assert_eq!(n, steps.len(), "a step fired twice: {steps:?}");
    let id = |v: &Value| v["jobId"].as_str().unwrap().to_string();
    let (ja, jb, jc, jd) = (
        job_of(&app, a).await,
        job_of(&app, b).await,
        job_of(&app, c).await,
        job_of(&app, d).await,
    );
    let of = |job: &Value| -> Vec<&str> {
        steps
            .iter()
            .filter(|(j, _)| *j == id(job))
            .map(|(_, e)| e.as_str())
            .collect()
    };
    assert_eq!(of(&ja), ["message.delivered", "message.read"]);
    assert_eq!(of(&jb), ["message.delivered"]);
    assert_eq!(of(&jc), ["message.delivered"]);
    assert_eq!(of(&jd), ["message.delivered", "message.read"]);
}
