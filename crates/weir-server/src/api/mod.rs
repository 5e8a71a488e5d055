//! HTTP handlers, one module per KFP service. Handlers extract, call one weir-service method
//! and map to wire types; the rules live in weir-service. Each carries its `#[utoipa::path]`,
//! from which `crate::openapi` builds the document.

pub mod execution;
pub mod experiments;
pub mod healthz;
pub mod pipelines;
pub mod recurring_runs;
pub mod retention;
pub mod runs;
pub mod step_config;
pub mod upload;

use axum::Json;
use weir_api_model::Empty;

/// The empty message KFP answers for deletes and custom verbs.
pub(crate) fn empty() -> Json<Empty> {
    Json(Empty {})
}
