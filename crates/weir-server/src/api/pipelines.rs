//! PipelineService.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use weir_api_model::{self as wire, ListParams};

use super::{empty, list_json};
use crate::convert;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::AppState;

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::Pipeline>,
) -> ApiResult<Json<wire::Pipeline>> {
    Ok(Json(convert::pipeline(&state.services.pipelines.create(&body).await?)))
}

pub async fn create_with_version(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::CreatePipelineAndVersionRequest>,
) -> ApiResult<Json<wire::Pipeline>> {
    let (pipeline, _) = state.services.pipelines.create_with_version(&body).await?;
    Ok(Json(convert::pipeline(&pipeline)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::Pipeline>> {
    Ok(Json(convert::pipeline(&state.services.pipelines.get(&id).await?)))
}

pub async fn get_by_name(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<wire::Pipeline>> {
    Ok(Json(convert::pipeline(&state.services.pipelines.get_by_name(&name).await?)))
}

pub async fn list(State(state): State<AppState>, ApiQuery(params): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
    let page = state.services.pipelines.list(&params).await?;
    Ok(list_json(page, "pipelines", convert::pipeline))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct DeleteParams {
    cascade: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<Json<Value>> {
    let cascade = matches!(params.cascade.as_deref(), Some("true" | "1" | "True"));
    state.services.pipelines.delete(&id, cascade).await?;
    Ok(empty())
}

pub async fn create_version(
    State(state): State<AppState>,
    Path(pipeline_id): Path<String>,
    ApiJson(body): ApiJson<wire::PipelineVersion>,
) -> ApiResult<Json<wire::PipelineVersion>> {
    Ok(Json(convert::pipeline_version(&state.services.pipelines.create_version(&pipeline_id, &body).await?)))
}

pub async fn get_version(
    State(state): State<AppState>,
    Path((pipeline_id, id)): Path<(String, String)>,
) -> ApiResult<Json<wire::PipelineVersion>> {
    Ok(Json(convert::pipeline_version(&state.services.pipelines.get_version(&pipeline_id, &id).await?)))
}

pub async fn list_versions(
    State(state): State<AppState>,
    Path(pipeline_id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let page = state.services.pipelines.list_versions(&pipeline_id, &params).await?;
    Ok(list_json(page, "pipeline_versions", convert::pipeline_version))
}

pub async fn delete_version(
    State(state): State<AppState>,
    Path((pipeline_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    state.services.pipelines.delete_version(&pipeline_id, &id).await?;
    Ok(empty())
}
