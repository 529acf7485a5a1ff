//! Pacing over HTTP, with the real dispatcher and a clock the test moves: a session's own rules
//! set through the sessions API, what a held job and session show, the metrics, and a cooldown
//! that fires its event and webhook and outlasts a restart.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wa_gateway::time::Clock;

use crate::helpers::{eventually, spawn_app_with_clock, start_with_clock};

/// 2026-12-01T12:00:00Z.
const T0: i64 = 1_796_126_400_000;
const UP: Duration = Duration::from_secs(10);

/// Every rule off but one cap a minute.
fn one_a_minute() -> Value {
    json!({"pacing": {
        "enabled": true, "gap": "0s", "perMinute": 1, "perHour": 0, "perDay": 0,
        "perRecipientPerHour": 0, "firstContactPerDay": 0, "warmup": [],
        "quietHours": "off", "typing": "off", "cooldown": "1h"
    }})
}

#[tokio::test]
async fn a_session_s_own_rules_hold_its_jobs_and_show_when_they_will_go() {
    let clock = Clock::manual(T0);
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    // Bad rules are refused, naming the rule; nothing changes.
    for (bad, word) in [
        (json!({"pacing": {"gap": "fast"}}), "gap"),
        (json!({"pacing": {"timezone": "Mars/Olympus"}}), "timezone"),
        (json!({"pacing": {"typing": "quickly"}}), "typing"),
        (json!({"pacing": [null, null]}), "object"),
        (json!({"pacing": {"typing": ""}}), "typing"),
    ] {
        let r = app.patch("/api/sessions/default", &bad).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{bad}: {status} {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(word),
            "{body}"
        );
    }
    let r = app.patch("/api/sessions/default", &one_a_minute()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["pacingRules"]["perMinute"], 1);
    assert_eq!(s["pacing"]["state"], "ready");

    let first = app.send_ok("6281234567890", "one").await;
    let second = app.send_ok("6281234567891", "two").await;
    app.wait_finished(&first).await;
    let job = eventually(UP, "the second job held by per_minute", || async {
        let j = app.job(&second).await;
        (j["pacedBy"] == "per_minute").then_some(j)
    })
    .await;
    assert_eq!(job["status"], "waiting");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["nextAttemptAt"], wa_gateway::time::rfc3339(T0 + 60_000));
    let s = app.session("default").await;
    let p = &s["pacing"];
    assert_eq!(
        (p["state"].as_str(), p["reason"].as_str()),
        (Some("held"), Some("per_minute"))
    );
    assert_eq!(p["nextSendAt"], wa_gateway::time::rfc3339(T0 + 60_000));
    assert_eq!(
        (p["sentLastHour"].as_u64(), p["sentToday"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(p["capToday"].is_null(), "no daily cap: {p}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "wa_gateway_pacing_deferrals_total{session=\"default\",rule=\"per_minute\"} 1"
        ),
        "{metrics}"
    );
    // A minute later by the gateway's clock, the dispatcher wakes and sends it.
    clock.advance(Duration::from_secs(60));
    let done = app.wait_finished(&second).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["finishedAt"], wa_gateway::time::rfc3339(T0 + 60_000));
    // Clearing the session's own rules brings back [pacing] (off in the test config).
    let r = app
        .patch("/api/sessions/default", &json!({"pacing": {}}))
        .await;
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["pacing"]["state"], "off");
    assert_eq!(s["pacingRules"], json!({}));
}

#[tokio::test]
async fn a_cooldown_fires_its_event_and_webhook_and_outlasts_a_restart() {
    let clock = Clock::manual(T0);
    let app = spawn_app_with_clock(clock.clone(), |c| {
        c.webhooks = vec![crate::helpers::unheard_webhook(&["session.cooldown"])];
    })
    .await;
    app.patch("/api/sessions/default", &one_a_minute()).await;
    // Sandbox: ...0004 is rate-limited.
    let limited = app.send_ok("6281200000004", "too many").await;
    let failed = app.wait_finished(&limited).await;
    assert_eq!(failed["lastError"]["code"], "rate-limited");
    let until = wa_gateway::time::rfc3339(T0 + 3_600_000);
    let s = eventually(UP, "the session cools down", || async {
        let s = app.session("default").await;
        (s["pacing"]["state"] == "cooldown").then_some(s)
    })
    .await;
    assert_eq!(s["pacing"]["nextSendAt"], until);
    assert!(
        s["pacing"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("rate-limited")
    );
    let next = app.send_ok("6281234567890", "after the rest").await;
    let deliveries = eventually(UP, "a session.cooldown delivery", || async {
        let d = app.get_json("/api/webhooks/deliveries").await;
        let n = d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["event"] == "session.cooldown")
            .count();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(deliveries, 1);

    let (dir, config, clock) = app.stop_keeping_clock().await;
    let app = start_with_clock(dir, config, clock.clone()).await;
    let s = app.session("default").await;
    assert_eq!(s["pacing"]["state"], "cooldown", "{s}");
    assert_eq!(s["pacing"]["nextSendAt"], until);
    let job = app.job(&next).await;
    assert_eq!(
        (job["status"].as_str(), job["nextAttemptAt"].as_str()),
        (Some("waiting"), Some(until.as_str()))
    );
    clock.advance(Duration::from_secs(3600));
    assert_eq!(app.wait_finished(&next).await["status"], "completed");
    assert_eq!(app.session("default").await["pacing"]["state"], "ready");
}
