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

/// A delete's `cascade` query parameter, as KFP's gateway reads a bool (`true`, `True`, `1`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct DeleteParams {
    cascade: Option<String>,
}

impl DeleteParams {
    pub fn cascade(&self) -> bool {
        matches!(self.cascade.as_deref(), Some("true" | "1" | "True"))
    }
}

/// The empty message KFP answers for deletes and custom verbs.
pub(crate) fn empty() -> Json<Empty> {
    Json(Empty {})
}
