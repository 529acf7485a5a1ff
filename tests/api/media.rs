//! Media over the API with the sandbox: uploads (multipart and raw), stored once by their
//! bytes; sends by id with a caption; the refusals, each with its status and code; the
//! sandbox's number that refuses files; fetching by URL under `[media]`'s guard, against a
//! local file server that counts every connection, so a refused URL is shown never to have been
//! connected to; and unused files pruned while a job's file stays.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{error_code, eventually, spawn_app_with, spawn_app_with_clock};

/// A small PDF (what an invoice is).
pub fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..2000).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

/// A small JPEG: its markers and some bytes (what a ticket photo is, to the gateway).
pub fn jpeg() -> Vec<u8> {
    let mut v = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0,
    ];
    v.extend((0..3000u32).map(|i| (i * 7 % 251) as u8));
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test]
async fn an_upload_is_stored_once_and_described() {
    let app = spawn_app_with(|_| {}).await;
    let doc = pdf();
    let m = app.upload(&doc, "application/pdf", "invoice-7.pdf").await;
    assert_eq!(m["sha256"], sha256(&doc));
    assert_eq!(m["bytes"], doc.len());
    assert_eq!(m["mimeType"], "application/pdf");
    assert_eq!(m["filename"], "invoice-7.pdf");
    assert_eq!(m["sendsAs"], "document");
    let id = m["mediaId"].as_str().unwrap();
    // The same file again: the same media, answered 200.
    let again = app
        .upload_raw(&doc, "application/pdf", "invoice-7.pdf")
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["mediaId"], id);
    // The same bytes by another name: another media over the same stored bytes.
    let other = app
        .upload_raw(&doc, "application/octet-stream", "copy.pdf")
        .await;
    assert_eq!(other.status(), StatusCode::CREATED);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["mediaId"], id);
    assert_eq!(other["mimeType"], "application/pdf", "typed from the bytes");
    assert_eq!(
        app.get_json(&format!("/api/media/{id}")).await["filename"],
        "invoice-7.pdf"
    );
    let blobs = count(&app, "SELECT count(*) FROM media_blobs").await;
    assert_eq!(blobs, 1, "the bytes are stored once");
    assert_eq!(
        error_code(
            app.get("/api/media/med_00000000000000000000000000000000")
                .await,
            StatusCode::NOT_FOUND
        )
        .await,
        "media_not_found"
    );
}

async fn count(app: &crate::helpers::TestApp, sql: &str) -> i64 {
    crate::helpers::db_count(&app.config, sql).await
}

#[tokio::test]
async fn a_file_goes_with_its_caption_and_the_sandbox_shows_what_arrived() {
    let app = spawn_app_with(|_| {}).await;
    let photo = jpeg();
    let m = app.upload(&photo, "image/jpeg", "ticket.jpg").await;
    let r = app
        .send(&json!({"number": "6281234567890", "message": "Your ticket", "media": {"id": m["mediaId"]}}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    let done = app.wait_finished(job["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["media"], json!({"id": m["mediaId"], "as": "image"}));
    assert_eq!(done["message"], "Your ticket");
    let doc = pdf();
    let d = app.upload(&doc, "application/pdf", "invoice.pdf").await;
    let job = app
        .send(&json!({"number": "6281234567890", "media": {"id": d["mediaId"]}}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    app.wait_finished(job["jobId"].as_str().unwrap()).await;
    let lines = app.outbox();
    let media: Vec<&Value> = lines.iter().map(|l| &l["media"]).collect();
    assert_eq!(
        *media[0],
        json!({"as": "image", "filename": "ticket.jpg", "mimeType": "image/jpeg", "bytes": photo.len(), "sha256": sha256(&photo)})
    );
    assert_eq!(lines[0]["text"], "Your ticket");
    assert_eq!(media[1]["as"], "document");
    assert_eq!(media[1]["sha256"], sha256(&doc));
    assert_eq!(lines[1]["text"], "");
    // A template can be the caption too.
    let job = app
        .send(&json!({"number": "6281234567890", "template": "otp", "variables": {"code": 7}, "media": {"id": d["mediaId"], "as": "document"}}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    app.wait_finished(job["jobId"].as_str().unwrap()).await;
    assert_eq!(app.outbox()[2]["text"], "Your code is 7.");
    // The sandbox's ...0007 takes text but refuses files, permanently.
    let job = app
        .send(&json!({"number": "6281200000007", "media": {"id": d["mediaId"]}}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let failed = app.wait_finished(job["jobId"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["lastError"]["code"], "media-rejected");
    assert_eq!(failed["attempts"], 1);
    let text = app.send_ok("6281200000007", "text is fine").await;
    assert_eq!(app.wait_finished(&text).await["status"], "completed");
}

#[tokio::test]
async fn bad_files_and_bad_sends_get_clear_errors() {
    let app = spawn_app_with(|c| c.media.max_bytes = wa_gateway::config::ByteSize(8 << 10)).await;
    let up = |bytes: Vec<u8>, ct: &'static str| {
        let app = &app;
        async move { app.upload_raw(&bytes, ct, "f").await }
    };
    assert_eq!(
        error_code(
            up(pdf(), "image/jpeg").await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "invalid_media"
    );
    assert_eq!(
        error_code(
            up(b"MZ\x90\0\x03".to_vec(), "application/x-msdownload").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
        .await,
        "unsupported_media_type"
    );
    assert_eq!(
        error_code(
            up(vec![0; 9 << 10], "application/pdf").await,
            StatusCode::PAYLOAD_TOO_LARGE
        )
        .await,
        "payload_too_large"
    );
    assert_eq!(
        error_code(
            up(Vec::new(), "application/pdf").await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "invalid_media"
    );
    // A body far over the limit is cut off, not read whole.
    assert_eq!(
        error_code(
            up(vec![b'%'; 4 << 20], "application/pdf").await,
            StatusCode::PAYLOAD_TOO_LARGE
        )
        .await,
        "payload_too_large"
    );

    let doc = app.upload(&pdf(), "application/pdf", "a.pdf").await;
    let id = doc["mediaId"].clone();
    let send = |body: Value| {
        let app = &app;
        async move { app.send(&body).await }
    };
    let n = "6281234567890";
    assert_eq!(
        error_code(
            send(json!({"number": n, "media": {"id": "med_00000000000000000000000000000000"}}))
                .await,
            StatusCode::NOT_FOUND
        )
        .await,
        "media_not_found"
    );
    assert_eq!(
        error_code(
            send(json!({"number": n, "media": {"id": id, "as": "image"}})).await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "invalid_media"
    );
    let audio = app
        .upload(
            b"ID3\x03\0\0\0\0\0\x0fsome mp3 frames",
            "audio/mpeg",
            "v.mp3",
        )
        .await;
    assert_eq!(audio["sendsAs"], "audio");
    assert_eq!(
        error_code(
            send(json!({"number": n, "message": "hi", "media": {"id": audio["mediaId"]}})).await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "validation_failed"
    );
    assert_eq!(
        error_code(
            send(json!({"number": n, "media": {"id": id, "url": "https://example.com/a.pdf"}}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "validation_failed"
    );
    assert_eq!(
        error_code(
            send(json!({"number": n, "media": {"url": "https://example.com/a.pdf"}})).await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "url_refused",
        "url_fetch is off by default"
    );
    // The same messageId with another file is another message.
    let ok = send(json!({"number": n, "media": {"id": id}, "messageId": "m-1"})).await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    assert_eq!(
        error_code(
            send(json!({"number": n, "media": {"id": audio["mediaId"]}, "messageId": "m-1"})).await,
            StatusCode::CONFLICT
        )
        .await,
        "idempotency_conflict"
    );
    // Without a file the document offers no URL: only what this gateway does.
    let doc = app.get_json("/api/openapi.json").await;
    let m = &doc["components"]["schemas"]["MediaRequest"];
    assert!(m["properties"]["url"].is_null());
    assert_eq!(m["required"], json!(["id"]));
}

/// A local file server that counts the connections it accepted: `/f/<name>` answers a PDF,
/// `/big` more than the tests' limit, `/to?<url>` redirects there.
struct FileServer {
    base: String,
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl FileServer {
    async fn start() -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let (status, extra, body) = if let Some(to) = path.strip_prefix("/to?") {
                        ("302 Found", format!("Location: {to}\r\n"), Vec::new())
                    } else if path == "/big" {
                        (
                            "200 OK",
                            "Content-Type: application/pdf\r\n".into(),
                            vec![b'%'; 64 << 10],
                        )
                    } else if path.starts_with("/f/") {
                        ("200 OK", "Content-Type: application/pdf\r\n".into(), pdf())
                    } else {
                        ("404 Not Found", String::new(), Vec::new())
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        FileServer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            connections,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn send_url(app: &crate::helpers::TestApp, url: &str) -> reqwest::Response {
    app.send(&json!({"number": "6281234567890", "message": "from a URL", "media": {"url": url}}))
        .await
}

#[tokio::test]
async fn urls_to_loopback_are_refused_without_a_connection() {
    let files = FileServer::start().await;
    let app = spawn_app_with(|c| {
        c.media.url_fetch = true;
        c.media.url_allow_http = true;
    })
    .await;
    let port = files.port;
    for url in [
        format!("http://127.0.0.1:{port}/f/a.pdf"),
        format!("http://[::1]:{port}/f/a.pdf"),
        format!("http://localhost:{port}/f/a.pdf"),
        format!("http://0x7f000001:{port}/f/a.pdf"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/f/a.pdf".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let r = send_url(&app, &url).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["code"], "url_refused", "{url}: {body}");
    }
    let body: Value = send_url(&app, &format!("http://localhost:{port}/f/a.pdf"))
        .await
        .json()
        .await
        .unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("localhost resolves to") && msg.contains("url_allow_private"),
        "{msg}"
    );
    assert_eq!(
        files.connections(),
        0,
        "a refused URL is never connected to"
    );
    // The document offers `url` where the gateway fetches.
    let doc = app.get_json("/api/openapi.json").await;
    assert!(doc["components"]["schemas"]["MediaRequest"]["properties"]["url"].is_object());
}

#[tokio::test]
async fn an_allowed_host_is_fetched_once_and_its_redirects_are_checked() {
    let files = FileServer::start().await;
    let elsewhere = FileServer::start().await;
    let app = spawn_app_with(|c| {
        c.media.url_fetch = true;
        c.media.url_allow_http = true;
        c.media.url_allow_private = true;
        c.media.url_allow_hosts = vec!["127.0.0.1".into()];
        c.media.max_bytes = wa_gateway::config::ByteSize(32 << 10);
    })
    .await;
    let r = send_url(&app, &format!("{}/f/statement%20may.pdf", files.base)).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    let done = app.wait_finished(job["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    let line = &app.outbox()[0]["media"];
    assert_eq!(line["sha256"], sha256(&pdf()));
    assert_eq!(line["filename"], "statement may.pdf");
    assert_eq!(files.connections(), 1, "fetched once, at enqueue");
    // A redirect to a host not on the list is refused, and that host never hears of it.
    let via = format!(
        "{}/to?http://localhost:{}/f/b.pdf",
        files.base, elsewhere.port
    );
    let r = send_url(&app, &via).await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "url_refused"
    );
    assert_eq!(elsewhere.connections(), 0);
    // A host not on the list, directly.
    let r = send_url(
        &app,
        &format!("http://localhost:{}/f/c.pdf", elsewhere.port),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "url_refused"
    );
    assert_eq!(elsewhere.connections(), 0);
    // Too large, and a missing file.
    let r = send_url(&app, &format!("{}/big", files.base)).await;
    assert_eq!(
        error_code(r, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    let r = send_url(&app, &format!("{}/nothing", files.base)).await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "url_fetch_failed"
    );
}

#[tokio::test]
async fn unused_files_are_pruned_and_a_jobs_file_is_kept() {
    let clock = wa_gateway::time::Clock::manual(1_800_000_000_000);
    let app = spawn_app_with_clock(clock.clone(), |c| {
        c.queue.prune_interval = wa_gateway::config::Dur::millis(20);
        c.queue.keep_completed = wa_gateway::config::Dur(Duration::from_secs(7 * 86400));
        c.media.keep_unused = wa_gateway::config::Dur(Duration::from_secs(3600));
    })
    .await;
    let used = app.upload(&pdf(), "application/pdf", "kept.pdf").await;
    let unused = app.upload(&jpeg(), "image/jpeg", "gone.jpg").await;
    let job = app
        .send(&json!({"number": "6281234567890", "media": {"id": used["mediaId"]}}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    app.wait_finished(job["jobId"].as_str().unwrap()).await;
    clock.advance(Duration::from_secs(2 * 3600));
    let gone = format!("/api/media/{}", unused["mediaId"].as_str().unwrap());
    eventually(
        Duration::from_secs(10),
        "the unused file is pruned",
        || async { (app.get(&gone).await.status() == StatusCode::NOT_FOUND).then_some(()) },
    )
    .await;
    assert_eq!(count(&app, "SELECT count(*) FROM media_blobs").await, 1);
    app.get_json(&format!("/api/media/{}", used["mediaId"].as_str().unwrap()))
        .await;
}
