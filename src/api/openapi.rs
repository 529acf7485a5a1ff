//! The API reference: an OpenAPI 3.1 document built from the code. Every API module lists its
//! routes next to its router ([`Op`]), with request and response shapes generated from the
//! Rust types by schemars; a test checks that every `.route(...)` in `src/api/` is documented.
//! Served at `/api/openapi.json`, with a docs page at `/api/docs` (embedded, offline).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use crate::app::AppState;

const DOCS_PAGE: &str = include_str!("docs.html");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(document))
        .route("/api/docs", get(docs_page))
}

/// One operation: what a route takes and answers.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Needs `Authorization: Bearer <access token>`.
    pub auth: bool,
    pub query: Vec<(&'static str, &'static str)>,
    pub body: Option<Schema>,
    /// (status, description, JSON body shape).
    pub responses: Vec<(u16, &'static str, Option<Schema>)>,
    /// A non-JSON success body: (status, content type, description).
    pub raw: Option<(u16, &'static str, &'static str)>,
}

impl Op {
    pub fn new(method: &'static str, path: &'static str, summary: &'static str) -> Op {
        Op {
            method,
            path,
            summary,
            auth: true,
            query: Vec::new(),
            body: None,
            responses: Vec::new(),
            raw: None,
        }
    }
    pub fn public(mut self) -> Op {
        self.auth = false;
        self
    }
    pub fn query(mut self, name: &'static str, description: &'static str) -> Op {
        self.query.push((name, description));
        self
    }
    pub fn body<T: JsonSchema>(mut self, g: &mut SchemaGenerator) -> Op {
        self.body = Some(g.subschema_for::<T>());
        self
    }
    pub fn ok<T: JsonSchema>(
        mut self,
        g: &mut SchemaGenerator,
        status: u16,
        description: &'static str,
    ) -> Op {
        self.responses
            .push((status, description, Some(g.subschema_for::<T>())));
        self
    }
    pub fn empty(mut self, status: u16, description: &'static str) -> Op {
        self.responses.push((status, description, None));
        self
    }
    pub fn raw(mut self, status: u16, content_type: &'static str, description: &'static str) -> Op {
        self.raw = Some((status, content_type, description));
        self
    }
}

/// The error envelope every error response has.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct ErrorBody {
    /// A stable code, e.g. `invalid_number`, `unauthorized`, `plugin_failed`.
    code: String,
    /// What went wrong, for people.
    message: String,
}

/// Every operation of the API, from the modules that own the routes.
pub fn operations(g: &mut SchemaGenerator) -> Vec<Op> {
    let mut ops = Vec::new();
    ops.extend(super::auth::docs(g));
    ops.extend(super::jobs::docs(g));
    ops.extend(super::queue::docs(g));
    ops.extend(super::whatsapp::docs(g));
    ops.extend(super::plugins::docs(g));
    ops.extend(super::webhooks::docs(g));
    ops.extend(super::events::docs(g));
    ops.extend(super::health::docs(g));
    ops.extend(super::dashboard::docs(g));
    ops.push(
        Op::new("get", "/api/openapi.json", "This document.")
            .public()
            .raw(200, "application/json", "the OpenAPI 3.1 document"),
    );
    ops.push(
        Op::new("get", "/api/docs", "The API reference page.")
            .public()
            .raw(200, "text/html", "an HTML page"),
    );
    ops
}

/// The whole document.
pub fn build() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "#/components/schemas/".into();
    });
    let mut g = settings.into_generator();
    let error = g.subschema_for::<ErrorEnvelope>();
    let ops = operations(&mut g);
    let mut paths: Map<String, Value> = Map::new();
    for op in ops {
        let mut responses = Map::new();
        for (status, description, schema) in &op.responses {
            let mut r = json!({ "description": description });
            if let Some(s) = schema {
                r["content"] = json!({ "application/json": { "schema": s } });
            }
            responses.insert(status.to_string(), r);
        }
        if let Some((status, ct, description)) = op.raw {
            responses.insert(
                status.to_string(),
                json!({ "description": description, "content": { ct: {} } }),
            );
        }
        responses.insert(
            "default".into(),
            json!({
                "description": "an error, always this envelope: 400/422 bad input, 401 no or bad token, 404, 409, 413, 429 (Retry-After), 503",
                "content": { "application/json": { "schema": error } }
            }),
        );
        let mut operation = json!({
            "summary": op.summary,
            "operationId": format!("{} {}", op.method, op.path),
            "responses": responses,
        });
        if op.auth {
            operation["security"] = json!([{ "bearerAuth": [] }]);
        }
        let mut params: Vec<Value> = op
            .query
            .iter()
            .map(|(name, d)| {
                json!({ "name": name, "in": "query", "required": false, "description": d, "schema": { "type": "string" } })
            })
            .collect();
        for seg in op.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
            }
        }
        if !params.is_empty() {
            operation["parameters"] = json!(params);
        }
        if let Some(body) = &op.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": body } }
            });
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wa-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted WhatsApp API gateway. Log in at /api/auth/login, then send `Authorization: Bearer <accessToken>`. Every error is `{\"error\":{\"code\",\"message\"}}`."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            }
        }
    })
}

async fn document() -> impl IntoResponse {
    axum::Json(build())
}

async fn docs_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        DOCS_PAGE,
    )
}
