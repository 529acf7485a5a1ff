//! Messages both ways with the sandbox: its `0008` numbers answer, its `0009` numbers answer
//! STOP. What arrives is stored once, listed, announced as `message.received` (event and
//! webhook, once each); the auto-reply plugin answers (once per chat, so two bots cannot
//! ping-pong) and puts a STOP on the opt-out list, after which sends to that number fail
//! `opted-out` unless they say to send anyway; the list is an API resource.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wa_gateway::config::PluginHook;

use crate::helpers::{TestApp, error_code, eventually, spawn_app_with, unheard_webhook};
use crate::plugins::plugin;

const UP: Duration = Duration::from_secs(10);

async fn received(app: &TestApp, from: &str, n: usize) -> Vec<Value> {
    eventually(UP, &format!("{n} message(s) from {from}"), || async {
        let list = app.get_json("/api/sessions/default/messages").await;
        let mine: Vec<Value> = list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["from"] == from)
            .cloned()
            .collect();
        (mine.len() >= n).then_some(mine)
    })
    .await
}

/// The outbox's texts to a number, in order.
fn sent_to(app: &TestApp, number: &str) -> Vec<String> {
    app.outbox()
        .iter()
        .filter(|l| l["chatId"] == format!("{number}@c.us"))
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_reply_is_stored_once_listed_and_announced_once() {
    let app = spawn_app_with(|c| c.webhooks = vec![unheard_webhook(&["message.received"])]).await;
    let from = "6281255500008";
    let events = crate::events::collect(
        &app,
        |evs| evs.iter().any(|(k, _)| k == "message.received"),
        async {
            app.send_ok(from, "hello there").await;
        },
    )
    .await;
    let (_, e) = events
        .iter()
        .find(|(k, _)| k == "message.received")
        .unwrap();
    assert_eq!(e["session"], "default");
    assert_eq!(e["from"], from);
    assert_eq!(e["chatId"], format!("{from}@c.us"));
    assert_eq!(e["text"], "Got it: hello there");
    assert!(e["mediaType"].is_null());
    assert!(e["messageId"].as_str().unwrap().starts_with("false_"));
    let list = received(&app, from, 1).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["messageId"], e["messageId"]);
    assert_eq!(list[0]["text"], "Got it: hello there");
    let d = app.get_json("/api/webhooks/deliveries?limit=100").await;
    let hooks: Vec<&Value> = d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"] == "message.received")
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert!(
        app.metrics()
            .await
            .contains("wa_gateway_messages_received_total{session=\"default\"} 1\n")
    );
    // `since` filters; a bad one is a clear error.
    let later = app
        .get_json("/api/sessions/default/messages?since=2100-01-01T00:00:00Z")
        .await;
    assert_eq!(later["messages"], json!([]));
    let r = app
        .get("/api/sessions/default/messages?since=yesterday")
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let r = app.get("/api/sessions/nobody/messages").await;
    assert_eq!(
        error_code(r, StatusCode::NOT_FOUND).await,
        "session_not_found"
    );
}

#[tokio::test]
async fn the_auto_reply_plugin_answers_once_and_stop_opts_out() {
    let app = spawn_app_with(|c| {
        c.plugins = vec![plugin(
            "auto-reply",
            PluginHook::OnMessage,
            "auto_reply.wasm",
            &[("reply", "Thanks, we got your message.")],
        )];
    })
    .await;
    // 0008 answers everything, the plugin answers that: one automatic reply per chat.
    let chatty = "6281255510008";
    app.send_ok(chatty, "first").await;
    received(&app, chatty, 2).await;
    // Messages are handled in order: once a later one is stored, the earlier ones were answered.
    app.send_ok(chatty, "third").await;
    received(&app, chatty, 3).await;
    let texts = eventually(UP, "the reply went out", || async {
        let t = sent_to(&app, chatty);
        t.contains(&"Thanks, we got your message.".to_string())
            .then_some(t)
    })
    .await;
    assert_eq!(
        texts
            .iter()
            .filter(|t| *t == "Thanks, we got your message.")
            .count(),
        1,
        "{texts:?}"
    );

    // 0009 answers STOP: on the list, with the plugin's confirmation sent.
    let stopper = "6281255510009";
    app.send_ok(stopper, "a promotion").await;
    let list = eventually(UP, "the opt-out", || async {
        let l = app.get_json("/api/sessions/default/opt-outs").await;
        (!l["optOuts"].as_array().unwrap().is_empty()).then_some(l)
    })
    .await;
    assert_eq!(list["optOuts"][0]["number"], stopper);
    assert_eq!(list["optOuts"][0]["reason"], "STOP");
    eventually(UP, "the STOP confirmed", || async {
        sent_to(&app, stopper)
            .contains(&"You will get no more messages from us.".to_string())
            .then_some(())
    })
    .await;
    let blocked = app.send_ok(stopper, "another promotion").await;
    let job = app.wait_finished(&blocked).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["lastError"]["code"], "opted-out");
    assert_eq!(job["attempts"], 1);
    let r = app
        .send(&json!({"number": stopper, "message": "your receipt", "ignoreOptOut": true}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.wait_finished(&id).await["status"], "completed");

    // Its STOPs that keep coming (0009 answers every message, the confirmation too) are not
    // answered again: once a later message of another chat is stored, they were all handled.
    received(&app, stopper, 3).await;
    app.send_ok(chatty, "after the stops").await;
    received(&app, chatty, 4).await;
    let confirmations = sent_to(&app, stopper)
        .iter()
        .filter(|t| *t == "You will get no more messages from us.")
        .count();
    assert_eq!(confirmations, 1);

    // The list through the API, a number in any common form.
    let n = "6281255511111";
    let r = app
        .post(
            "/api/sessions/default/opt-outs",
            &json!({"number": "+62 812-5551-1111", "reason": "asked by phone"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["number"], n);
    let r = app
        .post("/api/sessions/default/opt-outs", &json!({"number": n}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let failed = app.send_ok(n, "hi").await;
    assert_eq!(
        app.wait_finished(&failed).await["lastError"]["code"],
        "opted-out"
    );
    let r = app
        .delete(&format!("/api/sessions/default/opt-outs/{n}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .delete(&format!("/api/sessions/default/opt-outs/{n}"))
        .await;
    assert_eq!(
        error_code(r, StatusCode::NOT_FOUND).await,
        "opt_out_not_found"
    );
    let ok = app.send_ok(n, "welcome back").await;
    assert_eq!(app.wait_finished(&ok).await["status"], "completed");
}
