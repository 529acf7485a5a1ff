//! Files through WhatsApp Web in headless Chromium: a PDF and a JPEG reach the right chats with
//! the right bytes (as the page read them from the file the driver chose) and captions, under
//! both orders of the attach menu; the caption never lands in the chat's compose box; the
//! temporary files are gone after the sends; and a retry finds its file already in the chat
//! (by its caption, its document name, or the bubble its first attempt saw) and does not send
//! it again.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_whatsapp::Render;
use crate::helpers::TestApp;
use crate::media::{jpeg, pdf, sha256};
use crate::webdriver::{browser_session, connected_app, profile, wait_job};
use crate::webdriver_sends::{retrying_app, wait_failed_attempt};

async fn send_file(app: &TestApp, number: &str, media: &Value, caption: Option<&str>) -> String {
    let mut body = json!({"number": number, "media": {"id": media["mediaId"]}});
    if let Some(c) = caption {
        body["message"] = json!(c);
    }
    let r = app.send(&body).await;
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    r.json::<Value>().await.unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn uploads_left(app: &TestApp) -> usize {
    let dir = wa_gateway::whatsapp::webdriver::uploads_dir(&profile(app));
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test]
async fn a_pdf_and_a_jpeg_arrive_with_their_bytes_and_captions_whatever_the_menus_order() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |_| {}).await;
    let (doc, photo) = (pdf(), jpeg());
    let d = app.upload(&doc, "application/pdf", "invoice-7.pdf").await;
    let p = app.upload(&photo, "image/jpeg", "ticket.jpg").await;
    let (a, b) = ("6281255520001", "6281255520002");
    fake.render(a, Render::default());
    fake.render(
        b,
        Render {
            attach_order: "photos-first",
            ..Render::default()
        },
    );
    let jobs = [
        send_file(&app, a, &d, Some("Invoice 7 📄\ndue Friday")).await,
        send_file(&app, b, &p, Some("Your ticket 🎫")).await,
        send_file(&app, b, &d, None).await,
        send_file(&app, a, &p, None).await,
    ];
    let text = app.send_ok(a, "and a text after the files").await;
    for id in jobs.iter().chain([&text]) {
        let job = wait_job(&app, id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert!(job["receipt"]["bubbleId"].is_string(), "{job}");
        assert_eq!(job["receipt"]["alreadySent"], false, "{job}");
    }
    let got = |phone| fake.media_sent_to(phone);
    let (ga, gb) = (got(a), got(b));
    assert_eq!(ga.len(), 2, "{ga:?}");
    assert_eq!(gb.len(), 2, "{gb:?}");
    let pdf_seen = |m: &crate::fake_whatsapp::SentMedia| {
        m.name == "invoice-7.pdf"
            && m.mime == "application/pdf"
            && m.size == doc.len()
            && m.sha256 == sha256(&doc)
            && m.kind == "document"
    };
    let jpeg_seen = |m: &crate::fake_whatsapp::SentMedia| {
        m.name == "ticket.jpg"
            && m.mime == "image/jpeg"
            && m.size == photo.len()
            && m.sha256 == sha256(&photo)
            && m.kind == "photo"
    };
    assert!(
        pdf_seen(&ga[0].0) && ga[0].1 == "Invoice 7 📄\ndue Friday",
        "{ga:?}"
    );
    assert!(jpeg_seen(&ga[1].0) && ga[1].1.is_empty(), "{ga:?}");
    assert!(jpeg_seen(&gb[0].0) && gb[0].1 == "Your ticket 🎫", "{gb:?}");
    assert!(pdf_seen(&gb[1].0) && gb[1].1.is_empty(), "{gb:?}");
    // The captions went with the files, never through the chat's compose box.
    assert_eq!(
        fake.sent_to(a),
        vec![
            "Invoice 7 📄\ndue Friday".to_string(),
            String::new(),
            "and a text after the files".to_string()
        ]
    );
    assert_eq!(uploads_left(&app), 0, "a temporary file outlived its send");
    app.stop().await;
}

#[tokio::test]
async fn a_retried_file_is_found_in_the_chat_and_not_sent_again() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = retrying_app(&fake).await;
    let d = app.upload(&pdf(), "application/pdf", "statement.pdf").await;
    let p = app.upload(&jpeg(), "image/jpeg", "photo.jpg").await;
    // Found by its caption, by its document name, and (no caption, no name shown) by the bubble
    // the first attempt saw appear.
    let cases = [
        ("6281255530001", &d, Some("Statement for May")),
        ("6281255530002", &d, None),
        ("6281255530003", &p, None),
    ];
    let mut jobs = Vec::new();
    for (number, media, caption) in cases {
        fake.hold_ticks(number);
        jobs.push((number, send_file(&app, number, media, caption).await));
    }
    for (number, id) in &jobs {
        wait_failed_attempt(&app, id, "timeout").await;
        fake.release_ticks(number);
    }
    for (number, id) in &jobs {
        let job = wait_job(&app, id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "completed", "{number}: {job}");
        assert!(job["attempts"].as_i64().unwrap() >= 2, "{number}: {job}");
        assert_eq!(job["receipt"]["alreadySent"], true, "{number}: {job}");
        assert_eq!(fake.media_sent_to(number).len(), 1, "{number}: sent twice");
    }
    assert_eq!(uploads_left(&app), 0);
    app.stop().await;
}
