//! Domain rules behind the API: validation, id and time assignment, ordering of writes
//! between the two stores. HTTP handlers (and later the UI) call these; nothing here knows
//! about HTTP beyond the error codes.

pub mod experiments;
pub mod pipelines;
pub mod recurring_runs;
pub mod runs;

use serde_json::Value;
use weir_spec::Package;

use crate::error::{ApiError, ApiResult};

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Name of the experiment runs land in when they name none (created at start-up, as KFP does).
pub const DEFAULT_EXPERIMENT: &str = "Default";

/// Reads and validates a spec given inline in a request.
pub(crate) fn inline_spec(value: &Value) -> ApiResult<Package> {
    let package = weir_spec::split_run_spec(value)?;
    weir_spec::validate(&package.pipeline_spec)?;
    Ok(package)
}

pub(crate) fn require(value: &str, what: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(format!("{what} is required")));
    }
    Ok(())
}
