use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app, spawn_app_with};

#[tokio::test]
async fn send_message_queues_a_job_and_answers_202_at_once() {
    let app = spawn_app().await;
    let r = app.send(&json!({"number": "+62 812-3456-7890", "message": "Hello 👋\nsecond line", "priority": "high"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert!(body["jobId"].as_str().unwrap().starts_with("job_"));
    assert!(body["messageId"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["chatId"], "6281234567890@c.us");
    assert_eq!(body["status"], "waiting");
    assert_eq!(body["priority"], "high");

    let job = app.wait_finished(body["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["message"], "Hello 👋\nsecond line");
    assert_eq!(job["lastError"], Value::Null);
    for key in ["createdAt", "updatedAt", "finishedAt"] {
        assert!(job[key].as_str().unwrap().ends_with('Z'), "{key}: {job}");
    }
    let out = app.outbox();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["text"], "Hello 👋\nsecond line");
    assert_eq!(out[0]["jobId"], body["jobId"]);
    assert_eq!(out[0]["chatId"], "6281234567890@c.us");
}

#[tokio::test]
async fn invalid_numbers_get_400_invalid_number() {
    let app = spawn_app().await;
    for number in ["12345", "0812-abc-7890", "1234567890123456", ""] {
        let r = app.send(&json!({"number": number, "message": "x"})).await;
        assert_eq!(
            error_code(r, StatusCode::BAD_REQUEST).await,
            "invalid_number",
            "{number:?}"
        );
    }
}

#[tokio::test]
async fn templates_render_and_bad_ones_are_rejected() {
    let app = spawn_app().await;
    let r = app
        .send(&json!({"number": "6281234567890", "template": "otp", "variables": {"code": 4321}}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    let job = app.job(body["jobId"].as_str().unwrap()).await;
    assert_eq!(job["message"], "Your code is 4321.");
    assert_eq!(job["template"], "otp");

    let r = app
        .send(&json!({"number": "6281234567890", "template": "nope", "variables": {}}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "unknown_template"
    );
    let r = app
        .send(&json!({"number": "6281234567890", "template": "otp", "variables": {}}))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "template_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("code"));
}

#[tokio::test]
async fn malformed_bodies_get_clear_json_errors() {
    let app = spawn_app().await;
    let url = app.url("/api/whatsapp/send-message");
    let raw = |body: &'static str, ctype: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&app.token)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    assert_eq!(
        error_code(
            raw("{\"number\":", "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_json"
    );
    assert_eq!(
        error_code(
            raw("{\"message\":\"hi\"}", "application/json")
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "validation_failed"
    );
    assert_eq!(
        error_code(
            raw("{\"number\":5,\"message\":\"hi\"}", "application/json")
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "validation_failed"
    );
    assert_eq!(
        error_code(
            raw("{}", "text/plain").await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
        .await,
        "unsupported_media_type"
    );

    for body in [
        json!({"number": "6281234567890"}),
        json!({"number": "6281234567890", "message": "a", "template": "otp"}),
        json!({"number": "6281234567890", "message": "   "}),
        json!({"number": "6281234567890", "message": "a", "priority": "urgent"}),
        json!({"number": "6281234567890", "message": "a", "unknownField": 1}),
    ] {
        let r = app.send(&body).await;
        assert_eq!(
            error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
            "validation_failed",
            "{body}"
        );
    }

    // Past send-message's own limit (what a 65,536-character text needs, escaped).
    let huge = json!({"number": "6281234567890", "message": "x".repeat(1_000_000)});
    let r = app.send(&huge).await;
    assert_eq!(
        error_code(r, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );

    // Nothing of the above was queued, and the server still answers.
    let counts: Value = app.get_json("/api/whatsapp/retry-queue").await;
    assert_eq!(
        counts["counts"],
        json!({"waiting": 0, "active": 0, "completed": 0, "failed": 0})
    );
}

#[tokio::test]
async fn the_same_message_id_returns_the_same_job_and_sends_once() {
    let app = spawn_app().await;
    let body = json!({"number": "6281234567890", "message": "pay 10", "messageId": "order-77"});
    let r1 = app.send(&body).await;
    assert_eq!(r1.status(), StatusCode::ACCEPTED);
    let first: Value = r1.json().await.unwrap();
    app.wait_finished(first["jobId"].as_str().unwrap()).await;

    let r2 = app.send(&body).await;
    assert_eq!(r2.status(), StatusCode::OK);
    let second: Value = r2.json().await.unwrap();
    assert_eq!(second["jobId"], first["jobId"]);
    assert_eq!(second["messageId"], "order-77");
    assert_eq!(second["status"], "completed");
    assert_eq!(app.outbox().len(), 1, "sent once");

    let r3 = app
        .send(&json!({"number": "6281234567890", "message": "pay 99", "messageId": "order-77"}))
        .await;
    assert_eq!(
        error_code(r3, StatusCode::CONFLICT).await,
        "idempotency_conflict"
    );
}

#[tokio::test]
async fn concurrent_duplicates_of_one_message_id_make_one_job() {
    let app = spawn_app().await;
    let body = json!({"number": "6281234567890", "message": "once", "messageId": "dup-1"});
    let results = futures::future::join_all((0..20).map(|_| app.send(&body))).await;
    let mut ids = std::collections::HashSet::new();
    let mut accepted = 0;
    for r in results {
        if r.status() == StatusCode::ACCEPTED {
            accepted += 1;
        }
        let v: Value = r.json().await.unwrap();
        ids.insert(v["jobId"].as_str().unwrap().to_string());
    }
    assert_eq!(accepted, 1);
    assert_eq!(ids.len(), 1);
    app.wait_finished(ids.iter().next().unwrap()).await;
    assert_eq!(app.outbox().len(), 1);
}

#[tokio::test]
async fn jobs_list_filters_by_status_and_pages_with_a_cursor() {
    let app = spawn_app_with(|c| c.queue.concurrency = 1).await;
    app.set_queue(json!({"paused": true})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.send_ok("6281234567890", &format!("m{i}")).await);
    }
    let page1: Value = app
        .get_json("/api/whatsapp/jobs?status=waiting&limit=2")
        .await;
    let got: Vec<&str> = page1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()], "newest first");
    let cursor = page1["nextCursor"].as_str().unwrap();
    let page2: Value = app
        .get_json(&format!(
            "/api/whatsapp/jobs?status=waiting&limit=2&cursor={cursor}"
        ))
        .await;
    let got: Vec<&str> = page2["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let page3: Value = app
        .get_json(&format!(
            "/api/whatsapp/jobs?status=waiting&limit=2&cursor={}",
            page2["nextCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page3["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page3["nextCursor"], Value::Null);

    let none: Value = app.get_json("/api/whatsapp/jobs?status=completed").await;
    assert_eq!(none["jobs"].as_array().unwrap().len(), 0);
    for bad in ["status=done", "limit=0", "limit=abc", "cursor=xyz"] {
        let r = app.get(&format!("/api/whatsapp/jobs?{bad}")).await;
        assert_eq!(
            error_code(r, StatusCode::BAD_REQUEST).await,
            "invalid_query",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn unknown_jobs_and_routes_get_404_json() {
    let app = spawn_app().await;
    let r = app.get("/api/whatsapp/jobs/job_nope").await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "job_not_found");
    let r = app
        .post("/api/whatsapp/jobs/job_nope/retry", &json!({}))
        .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "job_not_found");
    let r = app.delete("/api/whatsapp/jobs/job_nope").await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "job_not_found");
    let r = app.get("/api/nothing-here").await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
}

#[tokio::test]
async fn a_failed_job_can_be_retried_and_a_waiting_one_cancelled() {
    let app = spawn_app().await;
    let failed = app.send_ok("6281200000003", "blocked one").await;
    let job = app.wait_finished(&failed).await;
    assert_eq!(job["status"], "failed");

    let r = app
        .post(&format!("/api/whatsapp/jobs/{failed}/retry"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let requeued: Value = r.json().await.unwrap();
    assert_eq!(requeued["status"], "waiting");
    assert_eq!(requeued["attempts"], 0);
    let job = app.wait_finished(&failed).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 1, "ran again after the retry");

    app.set_queue(json!({"paused": true})).await;
    let waiting = app.send_ok("6281234567890", "to cancel").await;
    let r = app.delete(&format!("/api/whatsapp/jobs/{waiting}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "failed");
    assert_eq!(cancelled["lastError"]["code"], "cancelled");

    let r = app.delete(&format!("/api/whatsapp/jobs/{waiting}")).await;
    assert_eq!(error_code(r, StatusCode::CONFLICT).await, "invalid_state");
    let r = app
        .post(&format!("/api/whatsapp/jobs/{waiting}/retry"), &json!({}))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a cancelled job is failed, so it can be retried"
    );
    let again = app
        .post(&format!("/api/whatsapp/jobs/{waiting}/retry"), &json!({}))
        .await;
    assert_eq!(
        error_code(again, StatusCode::CONFLICT).await,
        "invalid_state"
    );
    app.set_queue(json!({"paused": false})).await;
    assert_eq!(app.wait_finished(&waiting).await["status"], "completed");
    assert_eq!(app.outbox().len(), 1);
}
