//! RunService.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use weir_api_model::{self as wire, ListParams};

use super::{empty, list_json};
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_verb, ApiJson, ApiQuery};
use crate::AppState;

pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<wire::Run>) -> ApiResult<Json<wire::Run>> {
    Ok(Json(convert::run(&state.services.runs.create(&body).await?)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::Run>> {
    let (run, tasks) = state.services.runs.get(&id).await?;
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
    let page = state.services.runs.list(&params).await?;
    Ok(list_json(page, "runs", convert::run))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.services.runs.delete(&id).await?;
    Ok(empty())
}

/// `POST /runs/{id}:terminate`, `:retry`, `:archive`, `:unarchive`.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Value>> {
    let runs = &state.services.runs;
    match split_verb(&segment) {
        (id, Some("terminate")) => runs.terminate(id).await?,
        (id, Some("retry")) => runs.retry(id).await?,
        (id, Some("archive")) => runs.archive(id).await?,
        (id, Some("unarchive")) => runs.unarchive(id).await?,
        (_, verb) => return Err(ApiError::not_found(format!("no method {verb:?} on runs"))),
    }
    Ok(empty())
}
