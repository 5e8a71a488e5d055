//! Weir's read API for execution: tasks with their parameters and artifacts, artifact
//! contents, and step logs. KFP's client reads runs; these are for people, tests and tools
//! (documented in docs/api.md).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::convert;
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::AppState;

/// `GET /apis/weir/v1/runs/{id}/tasks`.
pub async fn tasks(State(state): State<AppState>, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    let (tasks, artifacts) = state.services.execution.tasks(&run_id).await?;
    let list: Vec<Value> = tasks.iter().map(|t| convert::task_full(t, &artifacts)).collect();
    Ok(Json(json!({ "tasks": list })))
}

/// `GET /apis/weir/v1/artifacts/{id}`.
pub async fn artifact(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(convert::artifact(&state.services.execution.artifact(&id).await?)))
}

/// `GET /apis/weir/v1/artifacts/{id}/content`: the bytes of a file artifact kept by weir.
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

/// `GET /apis/weir/v1/runs/{id}/logs?task=…`: the output of every attempt, oldest first.
pub async fn logs(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> ApiResult<Response> {
    let text = state.services.execution.logs(&run_id, &params.task).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}
