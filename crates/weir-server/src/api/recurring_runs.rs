//! RecurringRunService.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use weir_api_model::{self as wire, ListParams};

use super::{empty, list_json};
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_verb, ApiJson, ApiQuery};
use crate::AppState;

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::RecurringRun>,
) -> ApiResult<Json<wire::RecurringRun>> {
    Ok(Json(convert::recurring_run(&state.services.recurring_runs.create(&body).await?)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::RecurringRun>> {
    Ok(Json(convert::recurring_run(&state.services.recurring_runs.get(&id).await?)))
}

pub async fn list(State(state): State<AppState>, ApiQuery(params): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
    let page = state.services.recurring_runs.list(&params).await?;
    // The one camelCase key of the API: the proto field itself is named `recurringRuns`.
    Ok(list_json(page, "recurringRuns", convert::recurring_run))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.services.recurring_runs.delete(&id).await?;
    Ok(empty())
}

/// `POST /recurringruns/{id}:enable` and `:disable`.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Value>> {
    let recurring_runs = &state.services.recurring_runs;
    match split_verb(&segment) {
        (id, Some("enable")) => recurring_runs.enable(id).await?,
        (id, Some("disable")) => recurring_runs.disable(id).await?,
        (_, verb) => return Err(ApiError::not_found(format!("no method {verb:?} on recurring runs"))),
    }
    Ok(empty())
}
