//! RecurringRunService.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use weir_api_model::{self as wire, ListParams};
use weir_store::Entity;

use super::{empty, list_json, list_query};
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_verb, ApiJson, ApiQuery};
use crate::AppState;

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::RecurringRun>,
) -> ApiResult<Json<wire::RecurringRun>> {
    Ok(Json(convert::recurring_run(&state.create_recurring_run(&body).await?)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::RecurringRun>> {
    Ok(Json(convert::recurring_run(&state.store.get_recurring_run(&id).await?)))
}

pub async fn list(State(state): State<AppState>, ApiQuery(params): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
    if !params.experiment_id.is_empty() {
        state.store.get_experiment(&params.experiment_id).await?;
    }
    let query = list_query(Entity::RecurringRun, &params, &[("experiment_id", &params.experiment_id)])?;
    let page = state.store.list_recurring_runs(&query).await?;
    // The one camelCase key of the API: the proto field itself is named `recurringRuns`.
    Ok(list_json(page, "recurringRuns", convert::recurring_run))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.store.delete_recurring_run(&id).await?;
    Ok(empty())
}

/// `POST /recurringruns/{id}:enable` and `:disable`.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Value>> {
    let now = state.clock.now_ms();
    match split_verb(&segment) {
        (id, Some("enable")) => {
            state.store.set_recurring_run_enabled(id, true, now).await?;
            state.wake_scheduler();
        }
        (id, Some("disable")) => state.store.set_recurring_run_enabled(id, false, now).await?,
        (_, verb) => return Err(ApiError::not_found(format!("no method {verb:?} on recurring runs"))),
    }
    Ok(empty())
}
