//! Weir's read API for execution: tasks with their parameters and artifacts, artifact
//! contents, and step logs. KFP's client reads runs; these are for people, tests and tools
//! (documented in docs/api.md).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use weir_store::Task;

use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::AppState;

/// `GET /apis/weir/v1/runs/{id}/tasks`.
pub async fn tasks(State(state): State<AppState>, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    state.store.get_run(&run_id).await?;
    let tasks = state.store.list_tasks(&run_id).await?;
    let artifacts = artifacts_for(&state, &run_id, &tasks).await?;
    let list: Vec<Value> = tasks.iter().map(|t| convert::task_full(t, &artifacts)).collect();
    Ok(Json(json!({ "tasks": list })))
}

async fn artifacts_for(
    state: &AppState,
    run_id: &str,
    tasks: &[Task],
) -> ApiResult<HashMap<i64, weir_store::Artifact>> {
    let mut artifacts: HashMap<i64, weir_store::Artifact> =
        state.store.list_artifacts(run_id).await?.into_iter().map(|a| (a.id, a)).collect();
    let mut missing = Vec::new();
    for task in tasks {
        for section in [&task.inputs, &task.outputs] {
            for ids in section.get("artifacts").and_then(Value::as_object).into_iter().flat_map(|m| m.values()) {
                missing.extend(
                    ids.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_i64)
                        .filter(|id| !artifacts.contains_key(id)),
                );
            }
        }
    }
    missing.sort_unstable();
    missing.dedup();
    for a in state.store.get_artifacts(&missing).await? {
        artifacts.insert(a.id, a);
    }
    Ok(artifacts)
}

fn parse_artifact_id(text: &str) -> ApiResult<i64> {
    text.parse().map_err(|_| ApiError::invalid(format!("artifact id {text:?} is not a number")))
}

async fn find_artifact(state: &AppState, id: &str) -> ApiResult<weir_store::Artifact> {
    let id = parse_artifact_id(id)?;
    state.store.get_artifacts(&[id]).await?.pop().ok_or_else(|| ApiError::not_found(format!("artifact {id} not found")))
}

/// `GET /apis/weir/v1/artifacts/{id}`.
pub async fn artifact(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(convert::artifact(&find_artifact(&state, &id).await?)))
}

/// `GET /apis/weir/v1/artifacts/{id}/content`: the bytes of a file artifact kept by weir.
pub async fn artifact_content(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let artifact = find_artifact(&state, &id).await?;
    let key = weir_engine::launch::key_for_uri(state.artifacts.url(), &artifact.uri).ok_or_else(|| {
        ApiError::invalid(format!("artifact {} lives at {}, outside weir's artifact store", artifact.id, artifact.uri))
    })?;
    let bytes = state.artifacts.get(&key).await.map_err(|e| match e {
        weir_artifacts::ArtifactError::NotFound(_) => ApiError::not_found(format!(
            "artifact {} has no single file (it may be a folder, or metadata only)",
            artifact.id
        )),
        other => other.into(),
    })?;
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
    state.store.get_run(&run_id).await?;
    let tasks = state.store.list_tasks(&run_id).await?;
    let selected: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.kind == weir_store::TaskKind::Container)
        .filter(|t| {
            params.task.is_empty() || t.id == params.task || t.name == params.task || t.display_name == params.task
        })
        .collect();
    if !params.task.is_empty() && selected.is_empty() {
        return Err(ApiError::not_found(format!("run {run_id} has no step {:?}", params.task)));
    }
    let mut text = String::new();
    for task in selected {
        for attempt in 1..=task.attempts {
            let key = weir_engine::runtime::log_key(&run_id, &task.id, attempt);
            let body = match state.artifacts.get(&key).await {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(weir_artifacts::ArtifactError::NotFound(_)) => live_log(&state, &run_id, &task.id, attempt).await,
                Err(e) => return Err(e.into()),
            };
            text.push_str(&format!("==> {} (task {}, attempt {attempt}) <==\n", task.display_name, task.id));
            text.push_str(&body);
            if !body.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The log of a step still running on this host.
async fn live_log(state: &AppState, run_id: &str, task_id: &str, attempt: i64) -> String {
    let Some(work_dir) = &state.work_dir else { return String::new() };
    let path = weir_engine::runtime::attempt_dir(work_dir, run_id, task_id, attempt).join("log.txt");
    tokio::fs::read_to_string(path).await.unwrap_or_default()
}
