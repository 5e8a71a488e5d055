//! RunService.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use weir_api_model::{self as wire, Empty, ListParams};

use super::empty;
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_verb, ApiJson, ApiQuery};
use crate::openapi::params::RunFilter;
use crate::openapi::responses::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable};
use crate::AppState;

#[utoipa::path(
    post,
    path = "/apis/v2beta1/runs",
    operation_id = "createRun",
    tag = "RunService",
    request_body = wire::requests::RunInput,
    responses(
        (status = 200, description = "OK", body = wire::Run),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<wire::Run>) -> ApiResult<Json<wire::Run>> {
    Ok(Json(convert::run(&state.services.runs.create(&body).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/runs/{run_id}",
    operation_id = "getRun",
    tag = "RunService",
    summary = "A run, with `run_details.task_details` once it has tasks.",
    params(("run_id" = String, Path, description = "Run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = wire::Run),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let parts =
        state.run_details.answer(&id, |after| state.services.runs.get_with_task_changes(&id, after)).await.map_err(
            |e| {
                // Deleted, or the store failed: the next read starts over.
                state.run_details.forget(&id);
                weir_service::ServiceError::from(e)
            },
        )?;
    let runs = state.services.runs.clone();
    state.run_details.keep_fresh(move |id, after| {
        let runs = runs.clone();
        async move { runs.task_changes(&id, after).await }
    });
    let length: usize = parts.iter().map(|p| p.len()).sum();
    // A small answer is one write; a big one is sent as its shared parts, not copied.
    let body = if length <= 1 << 20 {
        axum::body::Body::from(parts.concat())
    } else {
        axum::body::Body::from_stream(futures::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>)))
    };
    Ok(([(header::CONTENT_TYPE, "application/json".to_string()), (header::CONTENT_LENGTH, length.to_string())], body)
        .into_response())
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/runs",
    operation_id = "listRuns",
    tag = "RunService",
    params(RunFilter),
    responses(
        (status = 200, description = "OK", body = wire::ListRunsResponse),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<wire::ListRunsResponse>> {
    let page = state.services.runs.list(&params).await?;
    Ok(Json(wire::ListRunsResponse {
        runs: page.items.iter().map(convert::run).collect(),
        total_size: page.total_size,
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(
    delete,
    path = "/apis/v2beta1/runs/{run_id}",
    operation_id = "deleteRun",
    tag = "RunService",
    params(("run_id" = String, Path, description = "Run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Empty>> {
    state.services.runs.delete(&id).await?;
    state.run_details.forget(&id);
    Ok(empty())
}

/// `POST /runs/{id}:terminate`, `:retry`, `:archive`, `:unarchive`: KFP's custom methods reach
/// axum as one path segment, `id:verb`; each verb is documented as a path of its own.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Empty>> {
    match split_verb(&segment) {
        (id, Some("terminate")) => terminate(&state, id).await,
        (id, Some("retry")) => retry(&state, id).await,
        (id, Some("archive")) => archive(&state, id).await,
        (id, Some("unarchive")) => unarchive(&state, id).await,
        (_, verb) => Err(ApiError::not_found(format!("no method {verb:?} on runs"))),
    }
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/runs/{run_id}:terminate",
    operation_id = "terminateRun",
    tag = "RunService",
    summary = "Stop a run: one not started ends CANCELED, a running one goes CANCELING. A finished run answers 400.",
    params(("run_id" = String, Path, description = "Run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn terminate(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.runs.terminate(id).await?;
    Ok(empty())
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/runs/{run_id}:retry",
    operation_id = "retryRun",
    tag = "RunService",
    summary = "Run a FAILED or CANCELED run again; other states answer 409.",
    params(("run_id" = String, Path, description = "Run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
async fn retry(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.runs.retry(id).await?;
    Ok(empty())
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/runs/{run_id}:archive",
    operation_id = "archiveRun",
    tag = "RunService",
    summary = "Archive a run.",
    params(("run_id" = String, Path, description = "Run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn archive(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.runs.archive(id).await?;
    Ok(empty())
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/runs/{run_id}:unarchive",
    operation_id = "unarchiveRun",
    tag = "RunService",
    summary = "Unarchive a run.",
    params(("run_id" = String, Path, description = "Run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn unarchive(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.runs.unarchive(id).await?;
    Ok(empty())
}
