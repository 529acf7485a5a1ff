//! The OpenAPI document lists every route the router has, with shapes, the error envelope and
//! the security scheme; the docs page is served.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

/// Where each API module's router is mounted (see `src/api/mod.rs`).
const MOUNTS: &[(&str, &str)] = &[
    ("auth.rs", "/api/auth"),
    ("jobs.rs", "/api/whatsapp"),
    ("queue.rs", "/api/whatsapp"),
    ("whatsapp.rs", "/api/whatsapp"),
    ("plugins.rs", "/api/plugins"),
    ("webhooks.rs", "/api/webhooks"),
    ("events.rs", "/api"),
    ("health.rs", ""),
    ("dashboard.rs", ""),
    ("openapi.rs", ""),
];

/// (method, path) of every `.route("...", get(..).post(..))` in src/api.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut out = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let src: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let prefix = MOUNTS
                .iter()
                .find(|(f, _)| *f == name)
                .unwrap_or_else(|| panic!("{name} has routes but no mount in this test"))
                .1;
            let open = rest.find('"').unwrap();
            let close = open + 1 + rest[open + 1..].find('"').unwrap();
            let sub = &rest[open + 1..close];
            let full = if sub == "/" && !prefix.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}{sub}")
            };
            // The route's arguments end at the matching parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let args = &rest[close..end];
            for m in ["get", "post", "put", "patch", "delete"] {
                let call = format!("{m}(");
                let mut a = args;
                while let Some(i) = a.find(&call) {
                    let before = a[..i].chars().last();
                    if matches!(before, Some(' ' | '.' | ',' | '(' | '\n')) {
                        out.insert((m.to_string(), full.clone()));
                    }
                    a = &a[i + call.len()..];
                }
            }
        }
        files += 1;
    }
    assert!(files > 5);
    out
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_the_router_has() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let schemas = &doc["components"]["schemas"];
    for name in [
        "ErrorEnvelope",
        "SendMessageRequest",
        "JobView",
        "Status",
        "TokenPair",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    let send = &doc["paths"]["/api/whatsapp/send-message"]["post"];
    assert_eq!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SendMessageRequest"
    );
    assert!(send["responses"]["202"].is_object());
    assert_eq!(
        send["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorEnvelope"
    );
    assert!(send["security"].is_array());
    assert!(doc["paths"]["/health"]["get"]["security"].is_null());

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed = routes_in_source();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    // And the server really has each one: never the router's own 404 or 405.
    for (method, path) in &documented {
        if path == "/api/events" {
            continue; // a stream that stays open
        }
        let url = app.url(&path.replace("{job_id}", "job_none"));
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app
            .client
            .request(m, url)
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(
            !body.contains("\"not_found\"") && !body.contains("method_not_allowed"),
            "{method} {path}: {status} {body}"
        );
    }
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("/api/openapi.json"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
}
