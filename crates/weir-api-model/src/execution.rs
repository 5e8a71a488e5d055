//! Weir's own read API for execution (`/apis/weir/v1`, docs/api.md): tasks with their
//! parameters and artifacts spelled out, and artifacts. Not KFP messages, but written the same
//! way: snake_case keys, int64 ids as strings, RFC 3339 times.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::schema::{RuntimeState, TaskKind, Timestamp};
use crate::types::Status;

/// An artifact's type: its schema title and version (`system.Artifact`, `0.0.1`).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ArtifactType {
    pub schema_title: String,
    pub schema_version: String,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Artifact {
    /// int64, written as a string as KFP writes artifact ids.
    #[schema(format = Int64)]
    pub artifact_id: String,
    /// The output key it was produced under.
    pub name: String,
    pub uri: String,
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
    /// Metrics live here.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub run_id: String,
    pub task_id: String,
    #[schema(value_type = Timestamp)]
    pub created_at: String,
}

/// A task's inputs or outputs: parameter values by name, and the artifacts of each name.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(as = TaskIO)]
pub struct TaskIo {
    #[schema(value_type = Object)]
    pub parameters: Value,
    pub artifacts: BTreeMap<String, Vec<Artifact>>,
}

/// A task of a run: a DAG, a loop, an iteration, a container step or an importer.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Task {
    pub task_id: String,
    pub run_id: String,
    /// Key in its DAG; `root` for the root DAG.
    pub name: String,
    pub display_name: String,
    /// Empty for the root DAG.
    pub parent_task_id: String,
    #[schema(value_type = TaskKind)]
    pub kind: String,
    /// The iteration's index within its loop; null for other tasks.
    pub iteration_index: Option<i64>,
    #[schema(value_type = RuntimeState)]
    pub state: String,
    /// Launches so far.
    pub attempts: i64,
    /// True when the outputs were taken from the cache instead of running the step.
    pub cached: bool,
    pub image: String,
    /// Process (group) id of the running attempt.
    pub pid: i64,
    pub inputs: TaskIo,
    pub outputs: TaskIo,
    #[schema(value_type = Timestamp)]
    pub create_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<Status>,
    /// A loop's items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
}

/// `GET /apis/weir/v1/runs/{id}/tasks`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ListTasksResponse {
    pub tasks: Vec<Task>,
    /// The token of the next page; absent on the last page, and when no page size was asked.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// `GET /apis/weir/v1/runs/{id}/tasks` parameters: every task when `page_size` is absent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListTasksParams {
    pub page_size: Option<i64>,
    #[serde(default)]
    pub page_token: String,
}
