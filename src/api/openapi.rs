//! The API reference: an OpenAPI 3.1 document built from the code. Each route registers its
//! operation with it (`routes.rs`), derived from the handler's extractors and answer
//! (`doc.rs`), with request and response shapes generated from the Rust types by schemars.
//! Served at `/api/openapi.json`, with a docs page at `/api/docs` (embedded, offline).

use std::sync::{Arc, OnceLock};

use axum::extract::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::doc::DocOutput;
use super::routes::{ApiRouter, Method};

const DOCS_PAGE: &str = include_str!("docs.html");

/// The document, built once the whole API is assembled.
pub type DocumentCell = Arc<OnceLock<Value>>;

pub fn routes() -> ApiRouter {
    ApiRouter::public()
        .route(Method::Get, "/api/openapi.json", "This document.", document)
        .route(
            Method::Get,
            "/api/docs",
            "The API reference page.",
            docs_page,
        )
}

/// The generator every schema of the document comes from.
pub fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "#/components/schemas/".into();
        })
        .into_generator()
}

/// One operation: what a route takes and answers.
pub struct Op {
    pub method: &'static str,
    pub path: String,
    pub summary: &'static str,
    /// Needs `Authorization: Bearer <access token>`.
    pub auth: bool,
    /// Query parameters, from the struct the handler parses them into.
    pub query: Vec<Value>,
    pub body: Option<Schema>,
    /// The body may be left out.
    pub body_optional: bool,
    /// A body that is not JSON: its `content` map (media type → schema).
    pub body_content: Option<Value>,
    /// (status, description, JSON body shape).
    pub responses: Vec<(u16, &'static str, Option<Schema>)>,
    /// A non-JSON success body: (status, content type, description).
    pub raw: Option<(u16, &'static str, &'static str)>,
    /// OpenAPI links from a response to other operations: (status, name, operationId,
    /// parameter, runtime expression), so clients and testers can follow a created resource.
    pub links: Vec<(u16, &'static str, String, &'static str, &'static str)>,
}

impl Op {
    pub fn new(method: &'static str, path: impl Into<String>, summary: &'static str) -> Op {
        Op {
            method,
            path: path.into(),
            summary,
            auth: true,
            query: Vec::new(),
            body: None,
            body_optional: false,
            body_content: None,
            responses: Vec::new(),
            raw: None,
            links: Vec::new(),
        }
    }

    /// The query parameters of `T` (the handler's `AppQuery<T>`), with their types, enums,
    /// bounds and descriptions.
    pub fn add_query<T: JsonSchema>(&mut self) {
        let root = SchemaSettings::openapi3()
            .into_generator()
            .into_root_schema_for::<T>();
        let required: Vec<&str> = root
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let props = root.get("properties").and_then(Value::as_object);
        for (name, prop) in props.into_iter().flatten() {
            let mut schema = plain(prop, root.as_value());
            let description = schema
                .as_object_mut()
                .and_then(|o| o.remove("description"))
                .unwrap_or(Value::Null);
            // An empty value (`?limit=`) means the parameter was left out, on every route.
            self.query.push(json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "allowEmptyValue": true,
                "description": description,
                "schema": schema,
            }));
        }
    }

    /// A JSON answer with status `status`; a later call for the same status replaces it.
    pub fn json<T: JsonSchema>(
        &mut self,
        g: &mut SchemaGenerator,
        status: u16,
        description: &'static str,
    ) {
        self.responses.retain(|r| r.0 != status);
        self.responses
            .push((status, description, Some(g.subschema_for::<T>())));
    }

    pub fn empty(&mut self, status: u16, description: &'static str) {
        self.responses.retain(|r| r.0 != status);
        self.responses.push((status, description, None));
    }

    pub fn raw(&mut self, status: u16, content_type: &'static str, description: &'static str) {
        self.raw = Some((status, content_type, description));
    }

    /// The response `status` leads to `method path`, with `param` taken from `expression`
    /// (e.g. `$response.body#/jobId`).
    pub fn link(
        &mut self,
        status: u16,
        name: &'static str,
        (method, path): (&'static str, &'static str),
        param: &'static str,
        expression: &'static str,
    ) {
        self.links
            .push((status, name, operation_id(method, path), param, expression));
    }
}

/// A query parameter's schema as a client needs it: an optional value is left out rather than
/// null, and a named type is written out in place.
fn plain(prop: &Value, root: &Value) -> Value {
    let mut schema = prop.clone();
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let real: Vec<&Value> = any
            .iter()
            .filter(|s| s.get("nullable").is_none() && s.get("type").is_none_or(|t| t != "null"))
            .collect();
        if let [only] = real.as_slice() {
            let mut merged = (*only).clone();
            if let (Some(m), Some(d)) = (merged.as_object_mut(), schema.get("description")) {
                m.insert("description".into(), d.clone());
            }
            schema = merged;
        }
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = target.trim_start_matches('#');
        if let Some(found) = root.pointer(pointer) {
            let description = schema.get("description").cloned();
            schema = found.clone();
            if let (Some(m), Some(d)) = (schema.as_object_mut(), description) {
                m.insert("description".into(), d);
            }
        }
    }
    if let Some(o) = schema.as_object_mut() {
        o.remove("nullable");
    }
    schema
}

/// For request bodies: an optional field may be left out, but not sent as `null` (which the
/// handlers would read as left out, so the document should not offer it). Use as
/// `#[schemars(transform = openapi::absent_not_null)]`.
pub fn absent_not_null(schema: &mut Schema) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for prop in props.values_mut() {
        if let Some(types) = prop.get_mut("type").and_then(Value::as_array_mut) {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                prop["type"] = types[0].clone();
            }
        }
        if let Some(any) = prop.get_mut("anyOf").and_then(Value::as_array_mut) {
            any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
            if any.len() == 1 {
                let only = any[0].clone();
                let obj = prop
                    .as_object_mut()
                    .expect("a property schema is an object");
                obj.remove("anyOf");
                if let Some(o) = only.as_object() {
                    for (k, v) in o {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
}

fn operation_id(method: &str, path: &str) -> String {
    format!("{method} {path}")
}

/// The whole document from the operations the routes registered; `templates` are the names
/// `send-message` takes in `template`; `media_urls`: whether it takes files by URL.
pub fn build(ops: Vec<Op>, mut g: SchemaGenerator, templates: &[&str], media_urls: bool) -> Value {
    let error = g.subschema_for::<crate::error::ErrorEnvelope>();
    let mut paths: Map<String, Value> = Map::new();
    for op in ops {
        let mut responses = Map::new();
        for (status, description, schema) in &op.responses {
            let mut r = json!({ "description": description });
            if let Some(s) = schema {
                r["content"] = json!({ "application/json": { "schema": s } });
            }
            for (_, name, target, param, expr) in op.links.iter().filter(|l| l.0 == *status) {
                r["links"][*name] =
                    json!({ "operationId": target, "parameters": { *param: expr } });
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
            "operationId": operation_id(op.method, &op.path),
            "responses": responses,
        });
        if op.auth {
            operation["security"] = json!([{ "bearerAuth": [] }]);
        }
        let mut params: Vec<Value> = op.query.clone();
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
                "required": !op.body_optional,
                "content": { "application/json": { "schema": body } }
            });
        } else if let Some(content) = &op.body_content {
            operation["requestBody"] = json!({ "required": true, "content": content });
        }
        let entry = paths.entry(op.path.clone()).or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    if let Some(t) = schemas
        .get_mut("SendMessageRequest")
        .and_then(|s| s.pointer_mut("/properties/template"))
    {
        t["enum"] = json!(templates);
    }
    // A send's file: by id, or, where the gateway fetches URLs, by url (exactly one). Where it
    // does not, `url` is not offered at all.
    if let Some(m) = schemas.get_mut("MediaRequest") {
        if media_urls {
            m["oneOf"] = json!([
                {"required": ["id"], "not": {"required": ["url"]}},
                {"required": ["url"], "not": {"required": ["id"]}}
            ]);
        } else {
            if let Some(props) = m.get_mut("properties").and_then(Value::as_object_mut) {
                props.remove("url");
            }
            m["required"] = json!(["id"]);
        }
    }
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

/// The document, served as built.
pub struct OpenApiJson(Value);

impl IntoResponse for OpenApiJson {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

impl DocOutput for OpenApiJson {
    fn document(op: &mut Op, _g: &mut SchemaGenerator) {
        op.raw(200, "application/json", "the OpenAPI 3.1 document");
    }
}

async fn document(Extension(doc): Extension<DocumentCell>) -> OpenApiJson {
    OpenApiJson(doc.get().cloned().unwrap_or(Value::Null))
}

/// An embedded page, with a strict Content-Security-Policy.
pub struct Page {
    pub html: &'static str,
    pub csp: &'static str,
}

impl IntoResponse for Page {
    fn into_response(self) -> axum::response::Response {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, self.csp),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            self.html,
        )
            .into_response()
    }
}

impl DocOutput for Page {
    fn document(op: &mut Op, _g: &mut SchemaGenerator) {
        op.raw(200, "text/html", "an HTML page");
    }
}

async fn docs_page() -> Page {
    Page {
        html: DOCS_PAGE,
        csp: "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
    }
}
