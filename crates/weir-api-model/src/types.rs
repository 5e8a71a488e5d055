//! Request and response messages of the v2beta1 services, named as KFP names them.
//!
//! Each derives its OpenAPI schema (`utoipa::ToSchema`) from its serde attributes: a field that
//! is omitted when empty is not required. Defaults are per field (`#[serde(default)]` on each)
//! rather than per struct, so that the schemas state no default values. Values the wire writes
//! as strings (timestamps, int64) and enums kept as `String` name their schema with
//! `#[schema(value_type = ...)]` (`crate::schema`). Request bodies are described by the looser
//! and stricter schemas of `crate::requests`, since these types are read leniently.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::requests::{PipelineInput, PipelineVersionInput};
use crate::schema::{PipelineSpec, RecurringRunMode, RecurringRunStatus, RuntimeState, StorageState, Timestamp};
use crate::serde_helpers::{int64, is_false, timestamp};

fn is_empty_map<K, V>(map: &BTreeMap<K, V>) -> bool {
    map.is_empty()
}

/// `google.rpc.Status`: an error recorded on a pipeline, run, task or state change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = ErrorInfo, description = "An error recorded on a run, task or state change (google.rpc.Status).")]
pub struct Status {
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<Value>,
}

/// `google.protobuf.Empty`: what deletes and custom methods answer.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(max_properties = 0, description = "The empty message (deletes and custom methods).")]
pub struct Empty {}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// What `GET /apis/v2beta1/healthz` answers: the kfp client reads it on construction.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Healthz {
    pub commit_sha: String,
    pub tag_name: String,
    pub multi_user: bool,
    pub pipeline_store: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Pipeline {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<Status>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PackageUrl {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PipelineVersion {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub package_url: Option<PackageUrl>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code_source_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = PipelineSpec)]
    pub pipeline_spec: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<Status>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub tags: BTreeMap<String, String>,
}

/// Body of `POST /pipelines/create`. Both parts are required; their schemas are the request
/// schemas of a new pipeline and a new version.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(examples(crate::requests::create_pipeline_and_version_example))]
pub struct CreatePipelineAndVersionRequest {
    #[serde(default)]
    #[schema(value_type = PipelineInput, required = true)]
    pub pipeline: Option<Pipeline>,
    #[serde(default)]
    #[schema(value_type = PipelineVersionInput, required = true)]
    pub pipeline_version: Option<PipelineVersion>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Experiment {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub experiment_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = StorageState)]
    pub storage_state: String,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub last_run_created_at: Option<DateTime<Utc>>,
}

/// A stored pipeline version; with only `pipeline_id`, its newest version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PipelineVersionReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RuntimeConfig {
    /// Values of the pipeline's input parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// Must be inside weir's artifact store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_root: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RuntimeStatus {
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub update_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = RuntimeState)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<Status>,
}

/// `PipelineTaskDetail.ArtifactList` of `backend/api/v2beta1/run.proto`: int64 ids, as strings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ArtifactIds {
    #[serde(default)]
    pub artifact_ids: Vec<String>,
}

/// `PipelineTaskDetail.ChildTask` of `backend/api/v2beta1/run.proto`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ChildTask {
    #[serde(default)]
    pub task_id: String,
    /// What stands for the child's pod (a step's): see `PipelineTaskDetail::pod_name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
}

/// `PipelineTaskDetail` of `backend/api/v2beta1/run.proto`: one task of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PipelineTaskDetail {
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub task_id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub create_time: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(value_type = RuntimeState)]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_task_id: String,
    /// A step's pod under KFP, named after the run's workflow; under weir's local driver, what
    /// the step sees as `KFP_POD_NAME`: the job resource name and the task's key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<Status>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub inputs: BTreeMap<String, ArtifactIds>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub outputs: BTreeMap<String, ArtifactIds>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_tasks: Vec<ChildTask>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_history: Vec<RuntimeStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RunDetails {
    #[serde(default, skip_serializing_if = "is_zero_i64", with = "int64_plain")]
    #[schema(value_type = String, format = Int64)]
    pub pipeline_context_id: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64", with = "int64_plain")]
    #[schema(value_type = String, format = Int64)]
    pub pipeline_run_context_id: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_details: Vec<PipelineTaskDetail>,
}

/// int64 that is never absent in Rust but omitted on the wire when zero.
mod int64_plain {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(super::int64::deserialize(d)?.unwrap_or_default())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Run {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub experiment_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = StorageState)]
    pub storage_state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = PipelineSpec)]
    pub pipeline_spec: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pipeline_version_reference: Option<PipelineVersionReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub runtime_config: Option<RuntimeConfig>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub scheduled_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = RuntimeState)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub run_details: Option<RunDetails>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recurring_run_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_history: Vec<RuntimeStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CronSchedule {
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cron: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PeriodicSchedule {
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default, with = "int64", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = Int64)]
    pub interval_second: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cron_schedule: Option<CronSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub periodic_schedule: Option<PeriodicSchedule>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RecurringRun {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recurring_run_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = PipelineSpec)]
    pub pipeline_spec: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pipeline_version_reference: Option<PipelineVersionReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub runtime_config: Option<RuntimeConfig>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    #[serde(default, with = "int64", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = Int64)]
    pub max_concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub trigger: Option<Trigger>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = RecurringRunMode)]
    pub mode: String,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = RecurringRunStatus)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<Status>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_catchup: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub experiment_id: String,
}

/// `ListPipelinesResponse` of `backend/api/v2beta1/pipeline.proto`. KFP omits an empty list and
/// the last page's token (protojson drops empty fields); `total_size` is always written.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(description = "One page. An empty list and the last page's token are omitted.")]
pub struct ListPipelinesResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipelines: Vec<Pipeline>,
    #[schema(value_type = i32)]
    pub total_size: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// `ListPipelineVersionsResponse` of `backend/api/v2beta1/pipeline.proto`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(description = "One page. An empty list and the last page's token are omitted.")]
pub struct ListPipelineVersionsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipeline_versions: Vec<PipelineVersion>,
    #[schema(value_type = i32)]
    pub total_size: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// `ListExperimentsResponse` of `backend/api/v2beta1/experiment.proto`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(description = "One page. An empty list and the last page's token are omitted.")]
pub struct ListExperimentsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<Experiment>,
    #[schema(value_type = i32)]
    pub total_size: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// `ListRunsResponse` of `backend/api/v2beta1/run.proto`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(description = "One page. An empty list and the last page's token are omitted.")]
pub struct ListRunsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
    #[schema(value_type = i32)]
    pub total_size: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// `ListRecurringRunsResponse` of `backend/api/v2beta1/recurring_run.proto`, whose list field
/// is named `recurringRuns` in the proto itself: the one camelCase key of the API.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(description = "One page. An empty list and the last page's token are omitted.")]
pub struct ListRecurringRunsResponse {
    #[serde(rename = "recurringRuns", skip_serializing_if = "Vec::is_empty")]
    pub recurring_runs: Vec<RecurringRun>,
    #[schema(value_type = i32)]
    pub total_size: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// Query parameters shared by every list call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    pub page_token: String,
    pub page_size: Option<String>,
    pub sort_by: String,
    pub filter: String,
    pub namespace: String,
    pub experiment_id: String,
}
