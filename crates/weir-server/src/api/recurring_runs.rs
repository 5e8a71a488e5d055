//! RecurringRunService.

use axum::extract::{Path, State};
use axum::Json;
use weir_api_model::{self as wire, Empty, ListParams};

use super::empty;
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_verb, ApiJson, ApiQuery};
use crate::openapi::params::RecurringRunFilter;
use crate::openapi::responses::{BadRequest, NotFound, PayloadTooLarge, Unavailable};
use crate::AppState;

#[utoipa::path(
    post,
    path = "/apis/v2beta1/recurringruns",
    operation_id = "createRecurringRun",
    tag = "RecurringRunService",
    request_body = wire::requests::RecurringRunInput,
    responses(
        (status = 200, description = "OK", body = wire::RecurringRun),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<wire::RecurringRun>,
) -> ApiResult<Json<wire::RecurringRun>> {
    Ok(Json(convert::recurring_run(&state.services.recurring_runs.create(&body).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/recurringruns/{recurring_run_id}",
    operation_id = "getRecurringRun",
    tag = "RecurringRunService",
    params(("recurring_run_id" = String, Path, description = "Recurring run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = wire::RecurringRun),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<wire::RecurringRun>> {
    Ok(Json(convert::recurring_run(&state.services.recurring_runs.get(&id).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/v2beta1/recurringruns",
    operation_id = "listRecurringRuns",
    tag = "RecurringRunService",
    summary = "List recurring runs (the list key is camelCase `recurringRuns`).",
    params(RecurringRunFilter),
    responses(
        (status = 200, description = "OK", body = wire::ListRecurringRunsResponse),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<wire::ListRecurringRunsResponse>> {
    let page = state.services.recurring_runs.list(&params).await?;
    Ok(Json(wire::ListRecurringRunsResponse {
        recurring_runs: page.items.iter().map(convert::recurring_run).collect(),
        total_size: page.total_size,
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(
    delete,
    path = "/apis/v2beta1/recurringruns/{recurring_run_id}",
    operation_id = "deleteRecurringRun",
    tag = "RecurringRunService",
    params(("recurring_run_id" = String, Path, description = "Recurring run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Empty>> {
    state.services.recurring_runs.delete(&id).await?;
    Ok(empty())
}

/// `POST /recurringruns/{id}:enable` and `:disable`: KFP's custom methods reach axum as one
/// path segment, `id:verb`; each verb is documented as a path of its own.
pub async fn verb(State(state): State<AppState>, Path(segment): Path<String>) -> ApiResult<Json<Empty>> {
    match split_verb(&segment) {
        (id, Some("enable")) => enable(&state, id).await,
        (id, Some("disable")) => disable(&state, id).await,
        (_, verb) => Err(ApiError::not_found(format!("no method {verb:?} on recurring runs"))),
    }
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/recurringruns/{recurring_run_id}:enable",
    operation_id = "enableRecurringRun",
    tag = "RecurringRunService",
    summary = "Enable a recurring run.",
    params(("recurring_run_id" = String, Path, description = "Recurring run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn enable(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.recurring_runs.enable(id).await?;
    Ok(empty())
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/recurringruns/{recurring_run_id}:disable",
    operation_id = "disableRecurringRun",
    tag = "RecurringRunService",
    summary = "Disable a recurring run.",
    params(("recurring_run_id" = String, Path, description = "Recurring run id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn disable(state: &AppState, id: &str) -> ApiResult<Json<Empty>> {
    state.services.recurring_runs.disable(id).await?;
    Ok(empty())
}
