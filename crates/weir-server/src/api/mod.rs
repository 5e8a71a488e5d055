//! HTTP handlers, one module per KFP service. Handlers extract, call one weir-service method
//! and map to wire types; the rules live in weir-service.

pub mod execution;
pub mod experiments;
pub mod healthz;
pub mod pipelines;
pub mod recurring_runs;
pub mod runs;
pub mod upload;

use axum::Json;
use serde_json::{json, Value};
use weir_api_model::ListResponse;
use weir_store::Page;

/// The empty message KFP answers for deletes and custom verbs.
pub(crate) fn empty() -> Json<Value> {
    Json(json!({}))
}

pub(crate) fn list_json<T, W: serde::Serialize>(page: Page<T>, key: &str, convert: impl Fn(&T) -> W) -> Json<Value> {
    let response = ListResponse {
        items: page.items.iter().map(convert).collect(),
        total_size: page.total_size,
        next_page_token: page.next_page_token,
    };
    Json(response.to_json(key))
}
