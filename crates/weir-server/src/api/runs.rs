//! RunService.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use weir_api_model::{self as wire, ListParams};
use weir_store::{Entity, StorageState};

use super::{empty, list_json, list_query};
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_verb, ApiJson, ApiQuery};
use crate::AppState;

pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<wire::Run>) -> ApiResult<Json<wire::Run>> {
    Ok(Json(convert::run(&state.create_run(&body).await?)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::Run>> {
    let run = state.store.get_run(&id).await?;
    let tasks = state.store.list_tasks(&id).await?;
    let mut wire_run = convert::run(&run);
    if !tasks.is_empty() {
        wire_run.run_details = Some(wire::RunDetails {
            task_details: tasks.iter().map(|t| convert::task_detail(t, &tasks)).collect(),
            ..Default::default()
        });
    }
    Ok(Json(wire_run))
}

pub async fn list(State(state): State<AppState>, ApiQuery(params): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
    if !params.experiment_id.is_empty() {
        state.store.get_experiment(&params.experiment_id).await?;
    }
    let query = list_query(Entity::Run, &params, &[("experiment_id", &params.experiment_id)])?;
    let page = state.store.list_runs(&query).await?;
    Ok(list_json(page, "runs", convert::run))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.store.delete_run(&id).await?;
    Ok(empty())
}

/// `POST /runs/{id}:terminate`, `:retry`, `:archive`, `:unarchive`.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Value>> {
    match split_verb(&segment) {
        (id, Some("terminate")) => state.terminate_run(id).await?,
        (id, Some("retry")) => state.retry_run(id).await?,
        (id, Some("archive")) => state.store.set_run_storage_state(id, StorageState::Archived).await?,
        (id, Some("unarchive")) => state.store.set_run_storage_state(id, StorageState::Available).await?,
        (_, verb) => return Err(ApiError::not_found(format!("no method {verb:?} on runs"))),
    }
    Ok(empty())
}
