//! Sessions with the sandbox driver (no browser): the API's lifecycle, per-session pause and
//! idempotency, per-session counts against the totals, one session held while another sends,
//! sessions across a restart, and the old routes acting on `default`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with, start};

async fn create(app: &TestApp, body: Value) -> Value {
    let r = app.post("/api/sessions", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED, "create {body}");
    r.json().await.unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_session_is_created_changed_paused_stopped_and_deleted_through_the_api() {
    let app = spawn_app().await;
    let list = app.get_json("/api/sessions").await;
    assert_eq!(names(&list), ["default"]);
    assert_eq!(list["sessions"][0]["state"], "connected");
    assert_eq!(list["sessions"][0]["driver"], "sandbox");

    let sales = create(&app, json!({"name": "sales", "driver": "sandbox"})).await;
    assert_eq!(sales["state"], "connected");
    assert_eq!(sales["started"], true);
    assert_eq!(sales["queue"]["waiting"], 0);
    let again = app
        .post(
            "/api/sessions",
            &json!({"name": "sales", "driver": "sandbox"}),
        )
        .await;
    assert_eq!(
        error_code(again, StatusCode::CONFLICT).await,
        "session_exists"
    );
    for bad in [
        json!({"name": "Sales"}),
        json!({"name": "-x"}),
        json!({"name": "x".repeat(33)}),
        json!({"name": "ok", "concurrency": 0}),
        json!({"name": "ok", "browserArgs": ["no-dashes"]}),
        json!({"name": "ok", "driver": "telegram"}),
    ] {
        let r = app.post("/api/sessions", &bad).await;
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad} should be refused"
        );
    }
    assert_eq!(
        names(&app.get_json("/api/sessions").await),
        ["default", "sales"]
    );

    // Unknown names: 404 session_not_found everywhere a name is taken.
    for (method, path) in [
        ("GET", "/api/sessions/nobody"),
        ("PATCH", "/api/sessions/nobody"),
        ("DELETE", "/api/sessions/nobody"),
        ("POST", "/api/sessions/nobody/start"),
        ("POST", "/api/sessions/nobody/stop"),
        ("POST", "/api/sessions/nobody/restart"),
        ("POST", "/api/sessions/nobody/logout"),
        ("GET", "/api/sessions/nobody/qr"),
    ] {
        let r = match method {
            "GET" => app.get(path).await,
            "PATCH" => app.patch(path, &json!({})).await,
            "DELETE" => app.delete(path).await,
            _ => app.post(path, &json!({})).await,
        };
        assert_eq!(
            error_code(r, StatusCode::NOT_FOUND).await,
            "session_not_found",
            "{method} {path}"
        );
    }
    let r = app
        .send(&json!({"session": "nobody", "number": "6281234567890", "message": "hi"}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::NOT_FOUND).await,
        "session_not_found"
    );

    // Paused: the job is accepted and waits; the other session goes on.
    let r = app
        .patch(
            "/api/sessions/sales",
            &json!({"paused": true, "concurrency": 2}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let s: Value = r.json().await.unwrap();
    assert_eq!(
        (s["paused"].clone(), s["concurrency"].clone()),
        (json!(true), json!(2))
    );
    let held = app
        .send_via("sales", "6281234567890", "held by the pause")
        .await;
    let free = app.send_ok("6281234567891", "default is not paused").await;
    assert_eq!(app.wait_finished(&free).await["status"], "completed");
    assert_eq!(app.job(&held).await["status"], "waiting");
    let status = app.status().await;
    let sales_line = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sales")
        .unwrap()
        .clone();
    assert_eq!(sales_line["queue"]["state"], "held");
    assert_eq!(status["queue"]["state"], "processing");
    app.patch("/api/sessions/sales", &json!({"paused": false}))
        .await;
    let done = app.wait_finished(&held).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["session"], "sales");
    let line = app
        .outbox()
        .into_iter()
        .find(|l| l["jobId"] == held.as_str())
        .expect("delivered");
    assert_eq!(line["session"], "sales");

    // Stopped: jobs wait; started again, they go.
    let stopped = app.session_action("sales", "stop").await;
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(stopped["started"], false);
    let waiting = app
        .send_via("sales", "6281234567892", "waits for start")
        .await;
    let other = app.send_ok("6281234567893", "default goes on").await;
    assert_eq!(app.wait_finished(&other).await["status"], "completed");
    assert_eq!(app.job(&waiting).await["status"], "waiting");
    app.session_action("sales", "start").await;
    assert_eq!(app.wait_finished(&waiting).await["status"], "completed");

    // Deleted: its waiting jobs fail with session_deleted, and its name is free again.
    app.session_action("sales", "stop").await;
    let orphan = app.send_via("sales", "6281234567894", "never sent").await;
    let r = app.delete("/api/sessions/sales").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["failedJobs"], 1);
    let job = app.job(&orphan).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["lastError"]["code"], "session_deleted");
    assert_eq!(
        error_code(app.get("/api/sessions/sales").await, StatusCode::NOT_FOUND).await,
        "session_not_found"
    );
    assert!(!app.config.session_dir("sales").exists());
    assert_eq!(names(&app.get_json("/api/sessions").await), ["default"]);
}

#[tokio::test]
async fn a_message_id_is_unique_per_session() {
    let app = spawn_app().await;
    create(&app, json!({"name": "b", "driver": "sandbox"})).await;
    let body = |session: &str| json!({"session": session, "number": "6281234567890", "message": "same", "messageId": "order-1"});
    let a1 = app.send(&body("default")).await;
    assert_eq!(a1.status(), StatusCode::ACCEPTED);
    let b1 = app.send(&body("b")).await;
    assert_eq!(
        b1.status(),
        StatusCode::ACCEPTED,
        "another session, another job"
    );
    let b2 = app.send(&body("b")).await;
    assert_eq!(
        b2.status(),
        StatusCode::OK,
        "the same session: the first job"
    );
    let (a1, b1, b2): (Value, Value, Value) = (
        a1.json().await.unwrap(),
        b1.json().await.unwrap(),
        b2.json().await.unwrap(),
    );
    assert_ne!(a1["jobId"], b1["jobId"]);
    assert_eq!(b1["jobId"], b2["jobId"]);
    // Without `session`, the key belongs to `default`.
    let again = app
        .send(&json!({"number": "6281234567890", "message": "same", "messageId": "order-1"}))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["jobId"], a1["jobId"]);
}

#[tokio::test]
async fn a_held_session_never_blocks_another_and_counts_per_session_add_up() {
    // Each sandbox send takes 150ms, so sends overlap and the lane's concurrency shows.
    let app =
        spawn_app_with(|c| c.whatsapp.sandbox.delay = wa_gateway::config::Dur::millis(150)).await;
    create(
        &app,
        json!({"name": "held", "driver": "sandbox", "start": false}),
    )
    .await;
    create(
        &app,
        json!({"name": "busy", "driver": "sandbox", "concurrency": 5, "paused": true}),
    )
    .await;
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(
            app.send_via("held", "6281234567890", &format!("held {i}"))
                .await,
        );
    }
    let mut busy = Vec::new();
    for i in 0..10 {
        busy.push(
            app.send_via("busy", "6281234567891", &format!("busy {i}"))
                .await,
        );
    }
    // A failing one, to have a failed count.
    busy.push(
        app.send_via("busy", "6281200000000", "not on WhatsApp")
            .await,
    );
    // While `held` holds its jobs, `busy` sends at its own concurrency (5, not the queue's 3):
    // 5 at once, never more.
    app.patch("/api/sessions/busy", &json!({"paused": false}))
        .await;
    let peak = std::cell::Cell::new(0);
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "busy sending 5 at once",
        || async {
            let active = app.session("busy").await["queue"]["active"]
                .as_i64()
                .unwrap();
            assert!(active <= 5, "busy has {active} active at concurrency 5");
            peak.set(peak.get().max(active));
            (peak.get() == 5).then_some(())
        },
    )
    .await;
    for id in &busy {
        app.wait_finished(id).await;
    }
    for id in &held {
        assert_eq!(app.job(id).await["status"], "waiting");
    }
    let list = app.get_json("/api/sessions").await;
    let by: std::collections::BTreeMap<String, Value> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["queue"].clone()))
        .collect();
    assert_eq!(
        by["held"],
        json!({"waiting": 5, "active": 0, "completed": 0, "failed": 0})
    );
    assert_eq!(
        by["busy"],
        json!({"waiting": 0, "active": 0, "completed": 10, "failed": 1})
    );
    assert_eq!(by["default"]["waiting"], 0);
    let status = app.status().await;
    for key in ["waiting", "completed", "failed"] {
        let sum: i64 = by.values().map(|q| q[key].as_i64().unwrap()).sum();
        assert_eq!(status["queue"][key].as_i64().unwrap(), sum, "{key}");
    }
    let retry = app.get_json("/api/whatsapp/retry-queue").await;
    assert_eq!(retry["bySession"]["busy"]["failed"], 1);
    assert_eq!(retry["bySession"]["held"]["waiting"], 5);
    assert_eq!(retry["counts"]["waiting"], 5);
    // The jobs list filters by session.
    let jobs = app
        .get_json("/api/whatsapp/jobs?session=held&limit=100")
        .await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 5);
    assert!(jobs.iter().all(|j| j["session"] == "held"));
    // Started, the held jobs go too.
    app.session_action("held", "start").await;
    for id in &held {
        assert_eq!(app.wait_finished(id).await["status"], "completed");
    }
}

#[tokio::test]
async fn sessions_come_back_after_a_restart_as_they_were() {
    let app = spawn_app_with(|c| {
        c.sessions = vec![
            toml::from_str(
                r#"name = "declared"
               driver = "sandbox"
               concurrency = 4"#,
            )
            .unwrap(),
        ];
    })
    .await;
    let declared = app.session("declared").await;
    assert_eq!(declared["state"], "connected");
    assert_eq!(declared["concurrency"], 4);
    create(&app, json!({"name": "kept", "driver": "sandbox"})).await;
    create(&app, json!({"name": "parked", "driver": "sandbox"})).await;
    app.session_action("parked", "stop").await;
    app.patch("/api/sessions/declared", &json!({"concurrency": 2}))
        .await;
    let queued = app
        .send_via("parked", "6281234567890", "after the restart")
        .await;

    let (dir, config) = app.stop().await;
    let app = start(dir, config).await;
    assert_eq!(
        names(&app.get_json("/api/sessions").await),
        ["declared", "default", "kept", "parked"]
    );
    assert_eq!(app.session("kept").await["state"], "connected");
    let parked = app.session("parked").await;
    assert_eq!(parked["state"], "stopped");
    assert_eq!(parked["queue"]["waiting"], 1);
    // What the API changed wins over the file.
    assert_eq!(app.session("declared").await["concurrency"], 2);
    app.session_action("parked", "start").await;
    assert_eq!(app.wait_finished(&queued).await["status"], "completed");

    // `[whatsapp] driver` is the default session's: switching it switches that session.
    let (dir, mut config) = app.stop().await;
    config.whatsapp.driver = wa_gateway::config::DriverKind::Webdriver;
    config.whatsapp.max_browsers = Some(0);
    let app = start(dir, config).await;
    let default = app.session("default").await;
    assert_eq!(default["driver"], "webdriver");
    assert_eq!(default["state"], "failed", "{default}");
    assert!(
        default["detail"].as_str().unwrap().contains("max_browsers"),
        "{default}"
    );
    assert_eq!(app.session("kept").await["driver"], "sandbox");
}

#[tokio::test]
async fn without_a_default_session_the_old_routes_say_so() {
    let app = spawn_app().await;
    let r = app.delete("/api/sessions/default").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .send(&json!({"number": "6281234567890", "message": "hi"}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::NOT_FOUND).await,
        "session_not_found"
    );
    assert_eq!(
        error_code(app.get("/api/whatsapp/qr").await, StatusCode::NOT_FOUND).await,
        "session_not_found"
    );
    let status = app.status().await;
    assert_eq!(status["whatsapp"]["state"], "stopped");
    // The name can be taken again.
    create(&app, json!({"name": "default", "driver": "sandbox"})).await;
    let id = app.send_ok("6281234567890", "back").await;
    assert_eq!(app.wait_finished(&id).await["status"], "completed");
}

#[tokio::test]
async fn browsers_past_max_browsers_are_refused_with_409() {
    let app = spawn_app_with(|c| c.whatsapp.max_browsers = Some(0)).await;
    let r = app
        .post(
            "/api/sessions",
            &json!({"name": "wd", "driver": "webdriver"}),
        )
        .await;
    assert_eq!(
        error_code(r, StatusCode::CONFLICT).await,
        "capacity_reached"
    );
    // Created stopped, it exists; starting it is refused the same way.
    create(
        &app,
        json!({"name": "wd", "driver": "webdriver", "start": false}),
    )
    .await;
    let r = app.post("/api/sessions/wd/start", &json!({})).await;
    assert_eq!(
        error_code(r, StatusCode::CONFLICT).await,
        "capacity_reached"
    );
    assert_eq!(app.session("wd").await["state"], "stopped");
    // Sandbox sessions run no browser: never counted.
    create(&app, json!({"name": "sb", "driver": "sandbox"})).await;
    let r = app
        .post(
            "/api/sessions/wd/pairing-code",
            &json!({"phone": "6281234567890"}),
        )
        .await;
    assert_eq!(error_code(r, StatusCode::CONFLICT).await, "session_stopped");
}

#[tokio::test]
async fn a_number_check_asks_the_sessions_driver_once_then_answers_from_the_cache() {
    let app = spawn_app().await;
    let check = |path: &'static str| app.get(path);
    let r = check("/api/whatsapp/check/6281234567890").await;
    assert_eq!(r.status(), StatusCode::OK);
    let on: Value = r.json().await.unwrap();
    assert_eq!(on["exists"], true);
    assert_eq!(on["chatId"], "6281234567890@c.us");
    assert_eq!(on["cached"], false);
    // The sandbox's test number ending 0000 is not on WhatsApp.
    let off = app
        .get_json("/api/sessions/default/contacts/6281200000000/exists")
        .await;
    assert_eq!(
        (off["exists"].clone(), off["cached"].clone()),
        (json!(false), json!(false))
    );
    let again = app.get_json("/api/whatsapp/check/6281234567890").await;
    assert_eq!(again["cached"], true);
    assert_eq!(again["checkedAt"], on["checkedAt"]);
    assert!(app.outbox().is_empty(), "a check sends nothing");
    let metrics = app.metrics().await;
    for line in [
        "wa_gateway_number_checks_total{session=\"default\",result=\"exists\",source=\"driver\"} 1",
        "wa_gateway_number_checks_total{session=\"default\",result=\"exists\",source=\"cache\"} 1",
        "wa_gateway_number_checks_total{session=\"default\",result=\"not_exists\",source=\"driver\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    assert_eq!(
        error_code(
            check("/api/whatsapp/check/12ab").await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_number"
    );
    assert_eq!(
        error_code(
            check("/api/sessions/nobody/contacts/6281234567890/exists").await,
            StatusCode::NOT_FOUND
        )
        .await,
        "session_not_found"
    );
    app.session_action("default", "stop").await;
    assert_eq!(
        error_code(
            check("/api/whatsapp/check/6281234567891").await,
            StatusCode::CONFLICT
        )
        .await,
        "session_stopped"
    );
}
