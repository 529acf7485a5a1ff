//! The OpenAPI document lists every route the router has (each route is registered with its
//! operation), with shapes from the handlers' types, the error envelope and the security
//! scheme; the docs page is served.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

/// Routes are added only through `ApiRouter` (src/api/routes.rs), which registers each one with
/// its operation: no file of src/api adds an axum route of its own.
fn routes_only_through_api_router() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs")
            || path.file_name().unwrap() == "routes.rs"
        {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        for line in src.lines().filter(|l| !l.trim_start().starts_with("//")) {
            assert!(
                !line.contains(".route(\"")
                    && !line.contains("routing::{")
                    && !line.contains("routing::get")
                    && !line.contains("routing::post"),
                "{}: a route outside ApiRouter: {line}",
                path.display()
            );
        }
    }
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
    routes_only_through_api_router();
    assert_eq!(documented.len(), 44, "{documented:?}");

    // And the server really has each one: never the router's own 404 or 405.
    for (method, path) in &documented {
        if path == "/api/events" {
            continue; // a stream that stays open
        }
        let url = app.url(
            &path
                .replace("{job_id}", "job_none")
                .replace("{name}", "nobody")
                .replace("{number}", "6281234567890"),
        );
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
