//! ExperimentService.

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
    ApiJson(body): ApiJson<wire::Experiment>,
) -> ApiResult<Json<wire::Experiment>> {
    Ok(Json(convert::experiment(&state.create_experiment(&body).await?)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::Experiment>> {
    Ok(Json(convert::experiment(&state.store.get_experiment(&id).await?)))
}

pub async fn list(State(state): State<AppState>, ApiQuery(params): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
    let query = list_query(Entity::Experiment, &params, &[])?;
    let page = state.store.list_experiments(&query).await?;
    Ok(list_json(page, "experiments", convert::experiment))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.delete_experiment(&id).await?;
    Ok(empty())
}

/// `POST /experiments/{id}:archive` and `:unarchive`.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Value>> {
    match split_verb(&segment) {
        (id, Some("archive")) => state.archive_experiment(id).await?,
        (id, Some("unarchive")) => state.store.unarchive_experiment(id).await?,
        (_, verb) => return Err(ApiError::not_found(format!("no method {verb:?} on experiments"))),
    }
    Ok(empty())
}
