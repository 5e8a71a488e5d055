//! PipelineService.

use axum::extract::{Path, State};
use axum::Json;
use weir_api_model::{self as wire, Empty, ListParams};

use super::{empty, DeleteParams};
use crate::convert;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::params::{DeletePipelineQuery, NamespaceQuery, PipelineFilter, PipelineVersionFilter};
use crate::openapi::responses::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable};
use crate::AppState;

#[utoipa::path(
    post,
    path = "/apis/v2beta1/pipelines",
    operation_id = "createPipeline",
    tag = "PipelineService",
    summary = "Create a pipeline without versions.",
    request_body = wire::requests::PipelineInput,
    responses(
        (status = 200, description = "OK", body = wire::Pipeline),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::Pipeline>,
) -> ApiResult<Json<wire::Pipeline>> {
    Ok(Json(convert::pipeline(&state.services.pipelines.create(&body).await?)))
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/pipelines/create",
    operation_id = "createPipelineAndVersion",
    tag = "PipelineService",
    summary = "Create a pipeline and its first version (inline spec) at once.",
    request_body = wire::CreatePipelineAndVersionRequest,
    responses(
        (status = 200, description = "OK", body = wire::Pipeline),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_with_version(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::CreatePipelineAndVersionRequest>,
) -> ApiResult<Json<wire::Pipeline>> {
    let (pipeline, _) = state.services.pipelines.create_with_version(&body).await?;
    Ok(Json(convert::pipeline(&pipeline)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/pipelines/{pipeline_id}",
    operation_id = "getPipeline",
    tag = "PipelineService",
    params(("pipeline_id" = String, Path, description = "Pipeline id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = wire::Pipeline),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::Pipeline>> {
    Ok(Json(convert::pipeline(&state.services.pipelines.get(&id).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/pipelines/names/{name}",
    operation_id = "getPipelineByName",
    tag = "PipelineService",
    summary = "A pipeline by its name.",
    params(("name" = String, Path, description = "The pipeline's name."), NamespaceQuery),
    responses(
        (status = 200, description = "OK", body = wire::Pipeline),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get_by_name(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<wire::Pipeline>> {
    Ok(Json(convert::pipeline(&state.services.pipelines.get_by_name(&name).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/pipelines",
    operation_id = "listPipelines",
    tag = "PipelineService",
    params(PipelineFilter),
    responses(
        (status = 200, description = "OK", body = wire::ListPipelinesResponse),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<wire::ListPipelinesResponse>> {
    let page = state.services.pipelines.list(&params).await?;
    Ok(Json(wire::ListPipelinesResponse {
        pipelines: page.items.iter().map(convert::pipeline).collect(),
        total_size: page.total_size,
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(
    delete,
    path = "/apis/v2beta1/pipelines/{pipeline_id}",
    operation_id = "deletePipeline",
    tag = "PipelineService",
    summary = "Delete a pipeline; one with versions only with `cascade`.",
    params(("pipeline_id" = String, Path, description = "Pipeline id (a UUID)."), DeletePipelineQuery),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<Json<Empty>> {
    state.services.pipelines.delete(&id, params.cascade()).await?;
    Ok(empty())
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/pipelines/{pipeline_id}/versions",
    operation_id = "createPipelineVersion",
    tag = "PipelineService",
    params(("pipeline_id" = String, Path, description = "Pipeline id (a UUID).")),
    request_body = wire::requests::PipelineVersionInput,
    responses(
        (status = 200, description = "OK", body = wire::PipelineVersion),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create_version(
    State(state): State<AppState>,
    Path(pipeline_id): Path<String>,
    ApiJson(body): ApiJson<wire::PipelineVersion>,
) -> ApiResult<Json<wire::PipelineVersion>> {
    Ok(Json(convert::pipeline_version(&state.services.pipelines.create_version(&pipeline_id, &body).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/pipelines/{pipeline_id}/versions/{pipeline_version_id}",
    operation_id = "getPipelineVersion",
    tag = "PipelineService",
    params(
        ("pipeline_id" = String, Path, description = "Pipeline id (a UUID)."),
        ("pipeline_version_id" = String, Path, description = "Pipeline version id (a UUID)."),
    ),
    responses(
        (status = 200, description = "OK", body = wire::PipelineVersion),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get_version(
    State(state): State<AppState>,
    Path((pipeline_id, id)): Path<(String, String)>,
) -> ApiResult<Json<wire::PipelineVersion>> {
    Ok(Json(convert::pipeline_version(&state.services.pipelines.get_version(&pipeline_id, &id).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/pipelines/{pipeline_id}/versions",
    operation_id = "listPipelineVersions",
    tag = "PipelineService",
    params(("pipeline_id" = String, Path, description = "Pipeline id (a UUID)."), PipelineVersionFilter),
    responses(
        (status = 200, description = "OK", body = wire::ListPipelineVersionsResponse),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_versions(
    State(state): State<AppState>,
    Path(pipeline_id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<wire::ListPipelineVersionsResponse>> {
    let page = state.services.pipelines.list_versions(&pipeline_id, &params).await?;
    Ok(Json(wire::ListPipelineVersionsResponse {
        pipeline_versions: page.items.iter().map(convert::pipeline_version).collect(),
        total_size: page.total_size,
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(
    delete,
    path = "/apis/v2beta1/pipelines/{pipeline_id}/versions/{pipeline_version_id}",
    operation_id = "deletePipelineVersion",
    tag = "PipelineService",
    params(
        ("pipeline_id" = String, Path, description = "Pipeline id (a UUID)."),
        ("pipeline_version_id" = String, Path, description = "Pipeline version id (a UUID)."),
    ),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete_version(
    State(state): State<AppState>,
    Path((pipeline_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    state.services.pipelines.delete_version(&pipeline_id, &id).await?;
    Ok(empty())
}
