//! The edge under attack and abuse: login throttling that holds when attempts come at once,
//! bounded password hashing, slow and idle connections, event-stream and request limits, the
//! largest valid message, and HTTP-correct errors in the JSON envelope everywhere.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wa_gateway::config::Dur;

use crate::helpers::{EMAIL, TestApp, error_code, eventually, spawn_app, spawn_app_with};

/// `n` wrong-password logins for `email` at once, from `from`; their statuses.
async fn wrong_logins(app: &TestApp, email: &str, n: usize, from: IpAddr) -> Vec<StatusCode> {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let url = app.url("/api/auth/login");
    join_all((0..n).map(|_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client
                .post(url)
                .json(&json!({"email": email, "password": "wrong password"}))
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                assert!(r.headers().contains_key("retry-after"));
            }
            r.status()
        }
    }))
    .await
}

fn count(statuses: &[StatusCode], s: StatusCode) -> usize {
    statuses.iter().filter(|x| **x == s).count()
}

#[tokio::test]
async fn parallel_wrong_logins_get_at_most_the_limit_checked() {
    // login_max_failures is 3 in the test config: 3 per email, 12 per client address.
    let app = spawn_app().await;
    let me = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let first = wrong_logins(&app, EMAIL, 12, me).await;
    assert_eq!(count(&first, StatusCode::UNAUTHORIZED), 3, "{first:?}");
    assert_eq!(count(&first, StatusCode::TOO_MANY_REQUESTS), 9, "{first:?}");

    // 200 at once against other emails from one address: at most the address's 12 (3 of
    // them already spent above) are checked.
    let other = me;
    let all: Vec<StatusCode> = join_all((0..20).map(|i| {
        let app = &app;
        async move { wrong_logins(app, &format!("nobody{i}@example.com"), 10, other).await }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(all.len(), 200);
    assert_eq!(count(&all, StatusCode::UNAUTHORIZED), 12 - 3, "{all:?}");
    assert_eq!(count(&all, StatusCode::TOO_MANY_REQUESTS), 200 - 9);

    // Another address may still try another email.
    let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let r = wrong_logins(&app, "someone@example.com", 1, elsewhere).await;
    assert_eq!(r, vec![StatusCode::UNAUTHORIZED]);
    // The attacked email stays locked for the window, even with the right password.
    let good = app.login(EMAIL, crate::helpers::PASSWORD).await;
    assert_eq!(
        good.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the email is locked out"
    );
}

#[tokio::test]
async fn a_login_flood_from_many_addresses_is_answered_without_server_errors() {
    // Spread over 50 loopback addresses, past every per-address limit: the hashing bound, not
    // the throttle, decides; each answer is 401, 429 or 503 overloaded with Retry-After.
    let app = spawn_app_with(|c| c.auth.login_max_failures = 100).await;
    let statuses: Vec<StatusCode> = join_all((0..50u8).map(|i| {
        let app = &app;
        async move {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, i + 1));
            wrong_logins(app, &format!("flood{i}@example.com"), 4, from).await
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(statuses.len(), 200);
    for s in &statuses {
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(s),
            "{s}"
        );
    }
    let h = app.get("/health").await;
    assert_eq!(h.status(), StatusCode::OK);
    let (peak, bound) = (
        wa_gateway::auth::password::peak_concurrent_hashes(),
        wa_gateway::auth::password::max_concurrent_hashes(),
    );
    assert!(
        peak >= 1 && peak <= bound,
        "{peak} hashes ran at once; the bound is {bound}"
    );
}

/// Reads from a raw connection until the server closes it; what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .expect("the server closed the connection in time")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn slow_header_and_idle_connections_are_closed_and_others_still_served() {
    let app = spawn_app_with(|c| {
        c.server.header_timeout = Dur::millis(500);
        c.server.max_connections = 16;
    })
    .await;
    // Half a request header, never finished.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut slow, Duration::from_secs(10)).await;

    // A keep-alive connection that goes quiet after its answer.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Every connection slot held by a slow client: they are dropped, and a real client gets in.
    let mut hogs = Vec::new();
    for _ in 0..16 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        hogs.push(s);
    }
    let r = tokio::time::timeout(Duration::from_secs(10), app.get("/health"))
        .await
        .expect("served once the slow connections were closed");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_ends_at_request_timeout() {
    // Long enough for the test's own login (argon2 in a debug build, on a busy machine).
    let app = spawn_app_with(|c| c.server.request_timeout = Dur::secs(3)).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/whatsapp/send-message HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"number\":",
        app.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test]
async fn event_streams_past_the_limit_get_503_until_one_closes() {
    let app = spawn_app_with(|c| c.server.max_event_streams = 2).await;
    let open = || async {
        app.client
            .get(app.url("/api/events"))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap()
    };
    let one = open().await;
    let two = open().await;
    assert_eq!(
        (one.status(), two.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(
        error_code(open().await, StatusCode::SERVICE_UNAVAILABLE).await,
        "too_many_streams"
    );
    drop(one);
    eventually(
        Duration::from_secs(10),
        "a closed stream frees its place",
        || async {
            let r = open().await;
            (r.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    drop(two);
}

#[tokio::test]
async fn the_longest_valid_message_is_accepted_and_one_more_character_is_422() {
    let app = spawn_app().await;
    for (what, text) in [
        ("ascii", "x".repeat(65_536)),
        ("emoji", "😀".repeat(65_536)),
    ] {
        let r = app
            .send(&json!({"number": "6281234567890", "message": text}))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{what}");
    }
    // As JSON encoders that escape every non-ASCII character send it: 12 bytes a character.
    let escaped = format!(
        "{{\"number\":\"6281234567890\",\"message\":\"{}\"}}",
        "\\ud83d\\ude00".repeat(65_536)
    );
    let r = app
        .client
        .post(app.url("/api/whatsapp/send-message"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = app
        .send(&json!({"number": "6281234567890", "message": "x".repeat(65_537)}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/api/whatsapp/send-message", "POST"),
        (reqwest::Method::DELETE, "/api/whatsapp/status", "GET"),
        (reqwest::Method::GET, "/api/auth/login", "POST"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap();
        let got = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            got.as_deref().is_some_and(|a| a.contains(allow)),
            "{method} {path}: {got:?}"
        );
        assert_eq!(
            error_code(r, StatusCode::METHOD_NOT_ALLOWED).await,
            "method_not_allowed"
        );
    }
}

#[tokio::test]
async fn every_error_is_the_json_envelope_and_empty_query_values_mean_absent() {
    let app = spawn_app().await;
    // Formerly text/plain.
    for (path, status, code) in [
        (
            "/api/webhooks/deliveries?foo=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/webhooks/deliveries?limit=x",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/webhooks/deliveries?limit=0",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/whatsapp/jobs?limit=501",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/whatsapp/jobs/%ff%fe",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let r = app.get(path).await;
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/json",
            "{path}"
        );
        assert_eq!(error_code(r, status).await, code, "{path}");
    }
    // An empty value is the same as leaving the parameter out, on every route.
    for path in [
        "/api/webhooks/deliveries?limit=&status=",
        "/api/whatsapp/jobs?limit=&status=&cursor=",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // Bodies are JSON objects.
    let r = app.post_auth("/api/auth/logout", &json!([])).await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let r = app.post("/api/whatsapp/queue/config", &json!(["x"])).await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
}

#[tokio::test]
async fn the_document_carries_the_bounds_and_enums_the_server_enforces() {
    let app = spawn_app().await;
    let doc: Value = app.get_json("/api/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    let config = &schemas["ConfigRequest"]["properties"];
    assert_eq!(config["concurrency"]["minimum"], 1);
    assert_eq!(config["concurrency"]["maximum"], 256);
    assert_eq!(config["maxRetries"]["maximum"], 100);
    let send = &schemas["SendMessageRequest"]["properties"];
    assert_eq!(send["priority"]["enum"], json!(["high", "normal", "low"]));
    assert_eq!(send["message"]["maxLength"], 65_536);
    assert_eq!(send["messageId"]["maxLength"], 128);
    let list = &doc["paths"]["/api/whatsapp/jobs"]["get"]["parameters"];
    let param = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(param("limit")["maximum"], 500);
    assert_eq!(
        param("status")["enum"],
        json!(["waiting", "active", "completed", "failed"])
    );
    let clear = &doc["paths"]["/api/whatsapp/queue/clear"]["post"]["requestBody"];
    assert_eq!(clear["required"], false, "clear works without a body");
    // And the server refuses what the document excludes.
    let r = app
        .post("/api/whatsapp/queue/config", &json!({"concurrency": 257}))
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
}
