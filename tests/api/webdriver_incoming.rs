//! Received messages through WhatsApp Web in headless Chromium: messages pushed into three
//! chats while sends go on arrive once each, in order per chat; the chats end read (the page
//! opened them); a STOP through the auto-reply plugin opts its sender out and is confirmed
//! through the browser; a send waits for one look at most (counted in chats the page opened,
//! not in time); and with `mark_read = false` the chats stay unread while their last messages
//! still arrive.

use std::time::{Duration, Instant};

use serde_json::Value;
use wa_gateway::config::{Dur, PluginHook};

use crate::client::eventually_shows;
use crate::helpers::{TestApp, eventually};
use crate::plugins::plugin;
use crate::webdriver::{browser_session, connected_app, wait_job};

const UP: Duration = Duration::from_secs(60);

/// The received messages, once `want` are in; a failure shows what did arrive.
async fn wait_messages(app: &TestApp, want: usize) -> Vec<Value> {
    eventually_shows(UP, &format!("{want} received messages"), || async {
        let l = app
            .get_json("/api/sessions/default/messages?limit=1000")
            .await;
        let m = l["messages"].as_array().unwrap().clone();
        if m.len() >= want {
            Ok(m)
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await
}

fn texts_from(messages: &[Value], from: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["from"] == from)
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn messages_in_three_chats_arrive_once_in_order_while_sends_go_on() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| {
        c.whatsapp.webdriver.incoming_interval = Dur::millis(300);
        c.plugins = vec![plugin(
            "auto-reply",
            PluginHook::OnMessage,
            "auto_reply.wasm",
            &[("stop_reply", "Unsubscribed.")],
        )];
    })
    .await;
    let (a, b, c) = ("6281255540001", "6281255540002", "6281255540003");
    // Sends going on meanwhile, to a (whose chat they keep opening) and to others.
    let mut jobs = Vec::new();
    for i in 0..6 {
        let to = if i % 2 == 0 { a } else { "6281255540009" };
        jobs.push(app.send_ok(to, &format!("update {i}")).await);
    }
    let t0 = Instant::now();
    for (chat, text) in [
        (a, "a1"),
        (b, "b1"),
        (c, "c1 line one\nline two 👋"),
        (a, "a2"),
        (b, "b2"),
        (a, "a3"),
    ] {
        fake.receive(chat, text);
    }
    let got = wait_messages(&app, 6).await;
    eprintln!(
        "MEASURE 6 messages in 3 chats received in {:?} (incoming_interval 300ms)",
        t0.elapsed()
    );
    assert_eq!(texts_from(&got, a), ["a1", "a2", "a3"]);
    assert_eq!(texts_from(&got, b), ["b1", "b2"]);
    assert_eq!(texts_from(&got, c), ["c1 line one\nline two 👋"]);
    for m in &got {
        assert!(
            m["messageId"].as_str().unwrap().starts_with("false_"),
            "{m}"
        );
        assert_eq!(m["chatId"], format!("{}@c.us", m["from"].as_str().unwrap()));
    }
    for id in &jobs {
        let job = wait_job(&app, id, UP).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    // Read on the page: the senders see blue ticks.
    for chat in [a, b, c] {
        eventually(UP, "the chat is read", || async {
            (fake.unread(chat) == 0).then_some(())
        })
        .await;
    }

    // STOP: opted out, and the confirmation goes through the browser.
    fake.receive(c, "stop");
    eventually(UP, "the confirmation reached the chat", || async {
        fake.sent_to(c)
            .contains(&"Unsubscribed.".to_string())
            .then_some(())
    })
    .await;
    let list = app.get_json("/api/sessions/default/opt-outs").await;
    assert_eq!(list["optOuts"][0]["number"], c);
    let refused = app.send_ok(c, "a promotion").await;
    assert_eq!(
        wait_job(&app, &refused, UP).await["lastError"]["code"],
        "opted-out"
    );
    // Nothing came twice, after all that.
    let all = wait_messages(&app, 7).await;
    assert_eq!(all.len(), 7, "{all:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_send_waits_for_one_look_at_most() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| {
        c.whatsapp.webdriver.incoming_interval = Dur::millis(100);
    })
    .await;
    // Many chats to read, each slow to open: looks keep coming while the sends do.
    fake.set_open_delay_ms(400);
    let chats: Vec<String> = (0..8).map(|i| format!("62812555600{i:02}")).collect();
    for (i, chat) in chats.iter().enumerate() {
        fake.receive(chat, &format!("question {i}"));
    }
    let to = "6281255569999";
    let mut read_before = Vec::new();
    for i in 0..6 {
        let before = fake.opens();
        let id = app.send_ok(to, &format!("answer {i}")).await;
        assert_eq!(wait_job(&app, &id, UP).await["status"], "completed");
        let sent = fake.sent();
        let at_send = sent.last().unwrap().opens_before;
        // At most the one chat a look was opening when the send came, and the send's own.
        assert!(
            at_send - before <= 2,
            "send {i}: {} chats opened between its 202 and its send",
            at_send - before
        );
        read_before.push(at_send - before);
    }
    eprintln!(
        "MEASURE chats opened between a send's 202 and the send (its own included): {read_before:?}"
    );
    // The looks went on between the sends: every chat was read in the end.
    let got = wait_messages(&app, chats.len()).await;
    assert_eq!(got.len(), chats.len());
    app.stop().await;
}

#[tokio::test]
async fn what_arrives_in_a_chat_a_send_leaves_is_kept_without_a_look() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    // Looks so far apart that none comes during the test: only the glances around sends read.
    let app = connected_app(&fake, |c| {
        c.whatsapp.webdriver.incoming_interval = Dur::secs(600);
    })
    .await;
    let (a, x, y) = ("6281255580001", "6281255580002", "6281255580003");
    let first = app.send_ok(a, "your order shipped").await;
    wait_job(&app, &first, UP).await;
    // a answers while its chat is open: read at once, so no badge will ever tell of it.
    fake.receive(a, "thanks! when does it arrive?");
    eventually(UP, "the page showed it", || async {
        (fake.unread(a) == 0).then_some(())
    })
    .await;
    // y writes meanwhile: its badge is seen before a send opens its chat.
    fake.receive(y, "is the shop open today?");
    let next = app.send_ok(x, "a reminder").await;
    wait_job(&app, &next, UP).await;
    let third = app.send_ok(y, "yes, until 5").await;
    wait_job(&app, &third, UP).await;
    let got = wait_messages(&app, 2).await;
    assert_eq!(texts_from(&got, a), ["thanks! when does it arrive?"]);
    assert_eq!(texts_from(&got, y), ["is the shop open today?"]);
    app.stop().await;
}

#[tokio::test]
async fn a_contact_saved_under_a_name_is_opened_by_its_row_and_reported_by_number() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| {
        c.whatsapp.webdriver.incoming_interval = Dur::millis(300);
    })
    .await;
    let budi = "6281255570001";
    fake.save_contact(budi, "Budi Santoso");
    fake.receive(budi, "halo, ini Budi");
    let got = wait_messages(&app, 1).await;
    assert_eq!(texts_from(&got, budi), ["halo, ini Budi"]);
    assert_eq!(got[0]["chatId"], format!("{budi}@c.us"));
    assert_eq!(fake.unread(budi), 0);
    app.stop().await;
}

#[tokio::test]
async fn without_mark_read_the_chats_stay_unread_and_their_last_messages_arrive() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| {
        c.whatsapp.webdriver.incoming_interval = Dur::millis(300);
        c.whatsapp.webdriver.mark_read = false;
    })
    .await;
    let d = "6281255550001";
    fake.receive(d, "first question");
    let got = wait_messages(&app, 1).await;
    assert_eq!(texts_from(&got, d), ["first question"]);
    fake.receive(d, "second question");
    let got = wait_messages(&app, 2).await;
    assert_eq!(texts_from(&got, d), ["first question", "second question"]);
    assert!(
        got[0]["messageId"]
            .as_str()
            .unwrap()
            .starts_with("preview_")
    );
    assert_eq!(fake.unread(d), 2, "the chat was opened");
    app.stop().await;
}
