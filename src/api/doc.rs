//! A handler documents itself from its signature: each extractor says what it adds to the
//! operation (a JSON body, query parameters, nothing) and the return type says what the handler
//! answers. So the OpenAPI document is built from the types the handlers really take and return,
//! and cannot drift from them.

use std::future::Future;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::NoContent;
use axum::response::sse::Sse;
use schemars::JsonSchema;
use schemars::generate::SchemaGenerator;

use super::extract::{AppJson, AppQuery, OptionalJson};
use super::openapi::Op;
use crate::error::ApiError;

/// What an extractor adds to an operation.
pub trait DocInput {
    fn document(_op: &mut Op, _g: &mut SchemaGenerator) {}
}

/// What a handler's answer adds to an operation: its success responses.
pub trait DocOutput {
    fn document(op: &mut Op, g: &mut SchemaGenerator);
}

/// A handler whose extractors and answer document it.
pub trait Documented<Args> {
    fn document(op: &mut Op, g: &mut SchemaGenerator);
}

macro_rules! documented {
    ($($arg:ident),*) => {
        impl<F, Fut, Out, $($arg,)*> Documented<($($arg,)*)> for F
        where
            F: FnOnce($($arg),*) -> Fut,
            Fut: Future<Output = Out>,
            Out: DocOutput,
            $($arg: DocInput,)*
        {
            fn document(op: &mut Op, g: &mut SchemaGenerator) {
                $($arg::document(op, g);)*
                Out::document(op, g);
            }
        }
    };
}

documented!();
documented!(A1);
documented!(A1, A2);
documented!(A1, A2, A3);

impl<S> DocInput for State<S> {}
impl<T> DocInput for ConnectInfo<T> {}
impl<T> DocInput for Extension<T> {}
/// Path parameters come from the route's `{name}` segments.
impl<T> DocInput for Path<T> {}
impl DocInput for HeaderMap {}

impl<T: JsonSchema> DocInput for AppJson<T> {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.body = Some(g.subschema_for::<T>());
    }
}

impl<T: JsonSchema> DocInput for OptionalJson<T> {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.body = Some(g.subschema_for::<T>());
        op.body_optional = true;
    }
}

impl<T: JsonSchema> DocInput for AppQuery<T> {
    fn document(op: &mut Op, _g: &mut SchemaGenerator) {
        op.add_query::<T>();
    }
}

impl<T: JsonSchema> DocOutput for Json<T> {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.json::<T>(g, 200, "OK");
    }
}

impl<R: DocOutput> DocOutput for Result<R, ApiError> {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        R::document(op, g);
    }
}

impl DocOutput for NoContent {
    fn document(op: &mut Op, _g: &mut SchemaGenerator) {
        op.empty(204, "done; no content");
    }
}

impl<S> DocOutput for Sse<S> {
    fn document(op: &mut Op, _g: &mut SchemaGenerator) {
        op.raw(200, "text/event-stream", "the event stream");
    }
}

/// An answer with a fixed status and a JSON body: `Answer::<202, T>(body)`.
pub struct Answer<const STATUS: u16, T>(pub T);

impl<const STATUS: u16, T: serde::Serialize> axum::response::IntoResponse for Answer<STATUS, T> {
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(STATUS).unwrap_or(axum::http::StatusCode::OK);
        (status, Json(self.0)).into_response()
    }
}

impl<const STATUS: u16, T: JsonSchema> DocOutput for Answer<STATUS, T> {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.json::<T>(g, STATUS, "OK");
    }
}

/// 201 with what was created, or 200 with what was there already: the same request again
/// changes nothing.
pub struct Created<T> {
    pub body: T,
    pub created: bool,
}

impl<T: serde::Serialize> axum::response::IntoResponse for Created<T> {
    fn into_response(self) -> axum::response::Response {
        let status = if self.created {
            axum::http::StatusCode::CREATED
        } else {
            axum::http::StatusCode::OK
        };
        (status, Json(self.body)).into_response()
    }
}

impl<T: JsonSchema> DocOutput for Created<T> {
    fn document(op: &mut Op, g: &mut SchemaGenerator) {
        op.json::<T>(g, 201, "created");
        op.json::<T>(g, 200, "it was there already; nothing changed");
    }
}
