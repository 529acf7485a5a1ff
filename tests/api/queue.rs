use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app, spawn_app_with, start};

#[tokio::test]
async fn jobs_are_claimed_by_priority_then_oldest_first() {
    let app = spawn_app_with(|c| c.queue.concurrency = 1).await;
    app.set_queue(json!({"paused": true})).await;
    let mut expected = Vec::new();
    let plan = [
        ("low", "l1"),
        ("normal", "n1"),
        ("high", "h1"),
        ("low", "l2"),
        ("high", "h2"),
        ("normal", "n2"),
    ];
    for (priority, text) in plan {
        let r = app
            .send(&json!({"number": "6281234567890", "message": text, "priority": priority}))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    for text in ["h1", "h2", "n1", "n2", "l1", "l2"] {
        expected.push(text.to_string());
    }
    app.set_queue(json!({"paused": false})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.outbox().len() < 6 {
        assert!(Instant::now() < deadline, "not all sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent: Vec<String> = app
        .outbox()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn concurrency_changes_take_effect_at_once_and_survive_a_restart() {
    // Each send takes 200ms, so the number of sends in flight is observable.
    let app = spawn_app_with(|c| {
        c.queue.concurrency = 1;
        c.whatsapp.sandbox.delay = wa_gateway::config::Dur::millis(200);
    })
    .await;
    for i in 0..12 {
        app.send_ok("6281234567890", &format!("m{i}")).await;
    }
    let max_active = |app: &crate::helpers::TestApp| {
        let app_url = app.url("/api/whatsapp/status");
        let client = app.client.clone();
        let token = app.token.clone();
        async move {
            let mut max = 0;
            for _ in 0..15 {
                let s: Value = client
                    .get(&app_url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                max = max.max(s["queue"]["active"].as_u64().unwrap());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            max
        }
    };
    assert_eq!(max_active(&app).await, 1);
    let now = app
        .set_queue(json!({"concurrency": 4, "maxRetries": 2}))
        .await;
    assert_eq!(
        now,
        json!({"concurrency": 4, "maxRetries": 2, "paused": false})
    );
    assert_eq!(max_active(&app).await, 4);

    let r = app
        .post("/api/whatsapp/queue/config", &json!({"concurrency": 0}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );

    app.set_queue(json!({"paused": true})).await;
    let (dir, config) = app.stop().await;
    let app = start(dir, config).await;
    let s = app.status().await;
    assert_eq!(s["queue"]["concurrency"], 4);
    assert_eq!(s["queue"]["maxRetries"], 2);
    assert_eq!(s["queue"]["state"], "paused");
}

/// That a paused queue claims nothing is tested step by step (`steps.rs`); here, that the API
/// pauses and resumes the running gateway.
#[tokio::test]
async fn the_api_pauses_and_resumes_the_queue() {
    let app = spawn_app().await;
    app.set_queue(json!({"paused": true})).await;
    let s = app.status().await;
    assert_eq!(s["queue"]["state"], "paused", "{s}");
    let id = app.send_ok("6281234567890", "held").await;
    assert_eq!(app.job(&id).await["attempts"], 0);
    app.set_queue(json!({"paused": false})).await;
    let job = app.wait_finished(&id).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("completed"), Some(1))
    );
}

#[tokio::test]
async fn retry_queue_lists_failed_jobs_and_jobs_waiting_for_a_retry() {
    let app = spawn_app_with(|c| {
        c.queue.backoff_base = wa_gateway::config::Dur::secs(30);
        c.queue.backoff_max = wa_gateway::config::Dur::secs(30);
    })
    .await;
    let failed = app.send_ok("6281200000000", "nobody").await;
    let retrying = app.send_ok("6281200000002", "session").await;
    let done = app.send_ok("6281234567890", "ok").await;
    app.wait_finished(&failed).await;
    app.wait_finished(&done).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let j = app.job(&retrying).await;
        if j["attempts"] == 1 && j["status"] == "waiting" {
            assert_eq!(j["lastError"]["code"], "session-closed");
            assert!(j["nextAttemptAt"].is_string());
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rq: Value = app.get_json("/api/whatsapp/retry-queue").await;
    assert_eq!(
        rq["counts"],
        json!({"waiting": 1, "active": 0, "completed": 1, "failed": 1})
    );
    let mut ids: Vec<&str> = rq["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![failed.as_str(), retrying.as_str()];
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn clear_removes_finished_jobs_by_default_and_waiting_only_when_named() {
    let app = spawn_app().await;
    let a = app.send_ok("6281234567890", "done").await;
    let b = app.send_ok("6281200000003", "fails").await;
    app.wait_finished(&a).await;
    app.wait_finished(&b).await;
    app.set_queue(json!({"paused": true})).await;
    let w = app.send_ok("6281234567890", "waits").await;

    let r = app
        .client
        .post(app.url("/api/whatsapp/queue/clear"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"cleared": 2}));
    assert_eq!(app.job(&w).await["status"], "waiting");

    let r = app
        .post("/api/whatsapp/queue/clear", &json!({"status": ["active"]}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let r = app
        .post("/api/whatsapp/queue/clear", &json!({"status": ["bogus"]}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );

    let r = app
        .post("/api/whatsapp/queue/clear", &json!({"status": ["waiting"]}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"cleared": 1}));
    let r = app.get(&format!("/api/whatsapp/jobs/{w}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn status_shows_whatsapp_and_queue_figures() {
    let app = spawn_app().await;
    let s = app.status().await;
    assert_eq!(s["whatsapp"]["state"], "connected");
    assert_eq!(s["whatsapp"]["driver"], "sandbox");
    assert_eq!(s["queue"]["state"], "idle");
    assert_eq!(s["queue"]["concurrency"], 3);
    assert_eq!(s["queue"]["successRate"], Value::Null);

    for n in [
        "6281234567890",
        "6281234567891",
        "6281234567892",
        "6281200000000",
    ] {
        let id = app.send_ok(n, "x").await;
        app.wait_finished(&id).await;
    }
    let s = app.status().await;
    assert_eq!(s["queue"]["completed"], 3);
    assert_eq!(s["queue"]["failed"], 1);
    assert_eq!(s["queue"]["waiting"], 0);
    assert_eq!(s["queue"]["successRate"], 75.0);

    app.set_queue(json!({"paused": true})).await;
    assert_eq!(app.status().await["queue"]["state"], "paused");
}

#[tokio::test]
async fn health_answers_without_auth() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn live_status_counts_agree_with_the_database_after_every_kind_of_transition() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in [
        "6281200000000",
        "6281200000001",
        "6281200000002",
        "6281200000003",
        "6281234567890",
        "6281234567891",
    ] {
        ids.push(app.send_ok(n, "mixed").await);
    }
    for id in &ids {
        app.wait_finished(id).await;
    }
    let r = app
        .post(&format!("/api/whatsapp/jobs/{}/retry", ids[0]), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.wait_finished(&ids[0]).await;
    app.set_queue(json!({"paused": true})).await;
    let w1 = app.send_ok("6281234567892", "w1").await;
    app.send_ok("6281234567893", "w2").await;
    assert_eq!(
        app.delete(&format!("/api/whatsapp/jobs/{w1}"))
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .post(
            "/api/whatsapp/queue/clear",
            &json!({"status": ["completed"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let s = app.status().await;
    let db: Value = app.get_json("/api/whatsapp/retry-queue").await;
    for key in ["waiting", "completed", "failed"] {
        assert_eq!(
            s["queue"][key], db["counts"][key],
            "{key}: status {s} vs database {db}"
        );
    }
    assert_eq!(
        db["counts"],
        json!({"waiting": 1, "active": 0, "completed": 0, "failed": 4})
    );
}

#[tokio::test]
async fn a_pause_during_a_drain_holds_the_jobs_not_yet_claimed() {
    // One slot, 200ms a send. How many go before the pause lands depends on the machine; what
    // may not depend on it: once the pause is in force, at most the one send in flight ends.
    let app = spawn_app_with(|c| {
        c.queue.concurrency = 1;
        c.whatsapp.sandbox.delay = wa_gateway::config::Dur::millis(200);
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.send_ok("6281234567890", &format!("m{i}")).await);
    }
    crate::helpers::eventually(Duration::from_secs(10), "three sent", || async {
        (app.outbox().len() >= 3).then_some(())
    })
    .await;
    app.set_queue(json!({"paused": true})).await;
    let sent_at_pause = app.outbox().len() as i64;
    // The send in flight ends and its outcome is recorded (a slot is freed before its outcome
    // is written); the worker then claims nothing more.
    let s = crate::helpers::eventually(Duration::from_secs(10), "nothing active", || async {
        let s = app.status().await;
        let q = &s["queue"];
        let settled = q["waiting"].as_i64().unwrap() + q["completed"].as_i64().unwrap() == 20;
        (q["active"] == 0 && settled).then_some(s)
    })
    .await;
    let waiting = s["queue"]["waiting"].as_i64().unwrap();
    assert!(
        20 - waiting <= sent_at_pause + 1,
        "{sent_at_pause} sent when the pause took effect; only the one in flight may follow: {s}"
    );
    assert!(
        sent_at_pause >= 19 || waiting > 0,
        "the pause held the rest: {s}"
    );
    assert_eq!(
        waiting + s["queue"]["completed"].as_i64().unwrap(),
        20,
        "{s}"
    );
    assert_eq!(app.outbox().len() as i64, 20 - waiting);
    app.set_queue(json!({"paused": false})).await;
    for id in &ids {
        assert_eq!(app.wait_finished(id).await["status"], "completed");
    }
}
