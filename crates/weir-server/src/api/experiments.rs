//! ExperimentService.

use axum::extract::{Path, State};
use axum::Json;
use weir_api_model::{self as wire, Empty, ListParams};

use super::{empty, DeleteParams};
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_verb, ApiJson, ApiQuery};
use crate::openapi::params::{DeleteExperimentQuery, ExperimentFilter};
use crate::openapi::responses::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable};
use crate::AppState;

#[utoipa::path(
    post,
    path = "/apis/v2beta1/experiments",
    operation_id = "createExperiment",
    tag = "ExperimentService",
    request_body = wire::requests::ExperimentInput,
    responses(
        (status = 200, description = "OK", body = wire::Experiment),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::Experiment>,
) -> ApiResult<Json<wire::Experiment>> {
    Ok(Json(convert::experiment(&state.services.experiments.create(&body).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/experiments/{experiment_id}",
    operation_id = "getExperiment",
    tag = "ExperimentService",
    params(("experiment_id" = String, Path, description = "Experiment id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = wire::Experiment),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::Experiment>> {
    Ok(Json(convert::experiment(&state.services.experiments.get(&id).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/experiments",
    operation_id = "listExperiments",
    tag = "ExperimentService",
    params(ExperimentFilter),
    responses(
        (status = 200, description = "OK", body = wire::ListExperimentsResponse),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<wire::ListExperimentsResponse>> {
    let page = state.services.experiments.list(&params).await?;
    Ok(Json(wire::ListExperimentsResponse {
        experiments: page.items.iter().map(convert::experiment).collect(),
        total_size: page.total_size,
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(
    delete,
    path = "/apis/v2beta1/experiments/{experiment_id}",
    operation_id = "deleteExperiment",
    tag = "ExperimentService",
    summary = "Delete an experiment (not `Default`).",
    params(("experiment_id" = String, Path, description = "Experiment id (a UUID)."), DeleteExperimentQuery),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<Json<Empty>> {
    state.services.experiments.delete(&id, params.cascade()).await?;
    Ok(empty())
}

/// `POST /experiments/{id}:archive` and `:unarchive`: KFP's custom methods reach axum as one
/// path segment, `id:verb`; each verb is documented as a path of its own.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Empty>> {
    match split_verb(&segment) {
        (id, Some("archive")) => archive(&state, id).await,
        (id, Some("unarchive")) => unarchive(&state, id).await,
        (_, verb) => Err(ApiError::not_found(format!("no method {verb:?} on experiments"))),
    }
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/experiments/{experiment_id}:archive",
    operation_id = "archiveExperiment",
    tag = "ExperimentService",
    summary = "Archive an experiment and its runs.",
    params(("experiment_id" = String, Path, description = "Experiment id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn archive(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.experiments.archive(id).await?;
    Ok(empty())
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/experiments/{experiment_id}:unarchive",
    operation_id = "unarchiveExperiment",
    tag = "ExperimentService",
    summary = "Unarchive an experiment.",
    params(("experiment_id" = String, Path, description = "Experiment id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn unarchive(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.experiments.unarchive(id).await?;
    Ok(empty())
}
