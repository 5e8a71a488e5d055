//! ExperimentService.

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
    ApiJson(body): ApiJson<wire::Experiment>,
) -> ApiResult<Json<wire::Experiment>> {
    Ok(Json(convert::experiment(&state.services.experiments.create(&body).await?)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::Experiment>> {
    Ok(Json(convert::experiment(&state.services.experiments.get(&id).await?)))
}

pub async fn list(State(state): State<AppState>, ApiQuery(params): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
    let page = state.services.experiments.list(&params).await?;
    Ok(list_json(page, "experiments", convert::experiment))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.services.experiments.delete(&id).await?;
    Ok(empty())
}

/// `POST /experiments/{id}:archive` and `:unarchive`.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Value>> {
    let experiments = &state.services.experiments;
    match split_verb(&segment) {
        (id, Some("archive")) => experiments.archive(id).await?,
        (id, Some("unarchive")) => experiments.unarchive(id).await?,
        (_, verb) => return Err(ApiError::not_found(format!("no method {verb:?} on experiments"))),
    }
    Ok(empty())
}
