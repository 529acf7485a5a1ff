//! An area's routes and their operations, registered together: a route cannot exist without its
//! entry in the OpenAPI document, and the entry is derived from the handler ([`Documented`]).
//! Areas are merged and nested where the API is assembled (`api/mod.rs`).

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use schemars::generate::SchemaGenerator;

use super::doc::Documented;
use super::openapi::Op;
use crate::app::AppState;

/// How to write one operation into the document.
type OpFn = Arc<dyn Fn(&mut SchemaGenerator) -> Op + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Patch => MethodFilter::PATCH,
            Method::Delete => MethodFilter::DELETE,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// Routes with their operations.
pub struct ApiRouter {
    router: Router<AppState>,
    ops: Vec<OpFn>,
    /// The routes need `Authorization: Bearer <access token>`.
    auth: bool,
}

impl ApiRouter {
    /// Routes behind a bearer token (the caller adds the check with `route_layer`).
    pub fn authenticated() -> ApiRouter {
        ApiRouter {
            router: Router::new(),
            ops: Vec::new(),
            auth: true,
        }
    }

    /// Routes anyone may call.
    pub fn public() -> ApiRouter {
        ApiRouter {
            auth: false,
            ..ApiRouter::authenticated()
        }
    }

    /// `method path` served by `handler`, documented from its signature under `summary`.
    pub fn route<H, T, Args>(
        self,
        method: Method,
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> ApiRouter
    where
        H: Handler<T, AppState> + Documented<Args>,
        T: 'static,
    {
        self.route_with(method, path, summary, handler, |r| r)
    }

    /// As [`ApiRouter::route`], with layers for this route only (e.g. its own body limit).
    pub fn route_with<H, T, Args>(
        mut self,
        method: Method,
        path: &'static str,
        summary: &'static str,
        handler: H,
        layers: impl FnOnce(MethodRouter<AppState>) -> MethodRouter<AppState>,
    ) -> ApiRouter
    where
        H: Handler<T, AppState> + Documented<Args>,
        T: 'static,
    {
        self.router = self
            .router
            .route(path, layers(on(method.filter(), handler)));
        let auth = self.auth;
        self.ops.push(Arc::new(move |g| {
            let mut op = Op::new(method.name(), path, summary);
            op.auth = auth;
            H::document(&mut op, g);
            op
        }));
        self
    }

    /// Adds to the operation registered last (links, more responses).
    pub fn describe(
        mut self,
        more: impl Fn(&mut Op, &mut SchemaGenerator) + Send + Sync + 'static,
    ) -> ApiRouter {
        if let Some(last) = self.ops.pop() {
            self.ops.push(Arc::new(move |g| {
                let mut op = last(g);
                more(&mut op, g);
                op
            }));
        }
        self
    }

    /// A layer on every route so far, run only when a route matched (e.g. the token check).
    pub fn route_layer(
        mut self,
        layer: impl FnOnce(Router<AppState>) -> Router<AppState>,
    ) -> ApiRouter {
        self.router = layer(self.router);
        self
    }

    /// `other`'s routes under `prefix`.
    pub fn nest(mut self, prefix: &'static str, other: ApiRouter) -> ApiRouter {
        self.router = self.router.nest(prefix, other.router);
        self.ops.extend(other.ops.into_iter().map(|f| {
            Arc::new(move |g: &mut SchemaGenerator| {
                let mut op = f(g);
                // axum serves a nested "/" at the prefix itself.
                op.path = if op.path == "/" {
                    prefix.to_string()
                } else {
                    format!("{prefix}{}", op.path)
                };
                op
            }) as OpFn
        }));
        self
    }

    pub fn merge(mut self, other: ApiRouter) -> ApiRouter {
        self.router = self.router.merge(other.router);
        self.ops.extend(other.ops);
        self
    }

    /// The router, and every operation written out.
    pub fn finish(self, g: &mut SchemaGenerator) -> (Router<AppState>, Vec<Op>) {
        let ops = self.ops.iter().map(|f| f(g)).collect();
        (self.router, ops)
    }
}
