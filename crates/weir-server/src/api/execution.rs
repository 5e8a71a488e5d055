//! Weir's read API for execution: tasks with their parameters and artifacts, artifact
//! contents, and step logs. KFP's client reads runs; these are for people, tests and tools
//! (documented in docs/api.md).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use weir_api_model::execution::{Artifact, ListTasksParams, ListTasksResponse};

use crate::convert;
use crate::error::{ApiResult, StatusBody};
use crate::extract::ApiQuery;
use crate::openapi::params::{LogsQuery, TasksQuery};
use crate::openapi::responses::{BadRequest, FileBytes, NotFound, Unavailable};
use crate::AppState;

#[utoipa::path(
    get,
    path = "/apis/weir/v1/runs/{run_id}/tasks",
    operation_id = "listRunTasks",
    tag = "weir",
    summary = "A run's tasks in creation order, with their parameters and artifacts spelled out: \
               every task without `page_size`, else a page.",
    params(("run_id" = String, Path, description = "Run id (a UUID)."), TasksQuery),
    responses(
        (status = 200, description = "OK", body = ListTasksResponse),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn tasks(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    ApiQuery(params): ApiQuery<ListTasksParams>,
) -> ApiResult<Json<ListTasksResponse>> {
    let (tasks, artifacts, next_page_token) =
        state.services.execution.tasks_page(&run_id, params.page_size, &params.page_token).await?;
    Ok(Json(ListTasksResponse {
        tasks: tasks.iter().map(|t| convert::task_full(t, &artifacts)).collect(),
        next_page_token,
    }))
}

#[utoipa::path(
    get,
    path = "/apis/weir/v1/artifacts/{artifact_id}",
    operation_id = "getArtifact",
    tag = "weir",
    params(("artifact_id" = i64, Path, description = "Artifact id (an integer).")),
    responses(
        (status = 200, description = "OK", body = Artifact),
        (status = 400, description = "The id is not a number.", body = StatusBody),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn artifact(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Artifact>> {
    Ok(Json(convert::artifact(&state.services.execution.artifact(&id).await?)))
}

#[utoipa::path(
    get,
    path = "/apis/weir/v1/artifacts/{artifact_id}/content",
    operation_id = "getArtifactContent",
    tag = "weir",
    summary = "The bytes of a file artifact kept in weir's artifact store.",
    params(("artifact_id" = i64, Path, description = "Artifact id (an integer).")),
    responses(
        (status = 200, description = "The file.", content_type = "application/octet-stream", body = inline(FileBytes)),
        (status = 400, description = "The id is not a number, or the artifact is outside weir's store.",
            body = StatusBody),
        (status = 404, description = "No such artifact, or it is not a single file.", body = StatusBody),
        (status = 503, response = Unavailable),
    )
)]
pub async fn artifact_content(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let bytes = state.services.execution.artifact_content(&id).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct LogParams {
    /// Task id or task name; all tasks when empty.
    task: String,
}

#[utoipa::path(
    get,
    path = "/apis/weir/v1/runs/{run_id}/logs",
    operation_id = "getRunLogs",
    tag = "weir",
    summary = "Output of every attempt of the run's steps (or one step), oldest first.",
    params(("run_id" = String, Path, description = "Run id (a UUID)."), LogsQuery),
    responses(
        (status = 200, description = "Each attempt after a `==> name (task ID, attempt N) <==` line.",
            content_type = "text/plain", body = String),
        (status = 400, response = BadRequest),
        (status = 404, description = "No such run, or no such step in it.", body = StatusBody),
        (status = 503, response = Unavailable),
    )
)]
pub async fn logs(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> ApiResult<Response> {
    let text = state.services.execution.logs(&run_id, &params.task).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}
