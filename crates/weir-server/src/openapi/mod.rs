//! The OpenAPI document of weir's HTTP API, generated with utoipa from the handlers'
//! `#[utoipa::path]` attributes and the wire types' `ToSchema` derives, so that it cannot drift
//! from the code. Served at `GET /apis/weir/v1/openapi.json` and printed by `weir openapi`;
//! the property-based API test (tests/sdk/test_schemathesis.py) checks the server against it.

pub mod params;
pub mod responses;

use std::sync::LazyLock;

use utoipa::OpenApi;
use weir_api_model::execution::{Artifact, ArtifactType, ListTasksResponse, Task, TaskIo};
use weir_api_model::filter::{FilterIntValues, FilterOperation, FilterStringValues, Int64Input};
use weir_api_model::requests::{
    ExperimentInput, PipelineInput, PipelineVersionInput, RecurringRunInput, RunInput, TimestampInput, TriggerInput,
};
use weir_api_model::retention::{
    ExperimentRetention, GcRecordInfo, ListGcHistoryResponse, RetentionPolicyInfo, SetExperimentRetention,
};
use weir_api_model::schema::{
    PipelineSpec, RecurringRunMode, RecurringRunStatus, RuntimeState, StorageState, TaskKind, Timestamp,
};
use weir_api_model::{
    ArtifactIds, ChildTask, CreatePipelineAndVersionRequest, CronSchedule, Empty, Experiment, Healthz,
    ListExperimentsResponse, ListPipelineVersionsResponse, ListPipelinesResponse, ListRecurringRunsResponse,
    ListRunsResponse, PackageUrl, PeriodicSchedule, Pipeline, PipelineTaskDetail, PipelineVersion,
    PipelineVersionReference, RecurringRun, Run, RunDetails, RuntimeConfig, RuntimeStatus, Status, Trigger,
};

use crate::api::healthz::{Readiness, StorageInfo};
use crate::error::{StatusBody, StatusDetail, StatusTypeUrl, UploadError};
use params::{ExperimentFilter, PipelineFilter, PipelineVersionFilter, RecurringRunFilter, RunFilter};
use responses::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, UploadBadRequest, UploadForm};

const DESCRIPTION: &str = "The Kubeflow Pipelines v2beta1 REST API as weir serves it (what the kfp SDK's \
    kfp.Client calls), plus weir's own read API under /apis/weir/v1. Messages are protojson with proto field \
    names: snake_case keys, empty values omitted, int64 as strings (requests accept numbers too), enums by name, \
    timestamps RFC 3339. Unknown request fields are ignored. Errors are google.rpc.Status (`{code, message, \
    details}`) except on the upload endpoints (`{error_message, error_details}`). Unknown paths and methods \
    answer 404. Request bodies are limited to 33 MiB (413). See docs/api.md.";

/// Every route of `crate::router` with its schemas.
#[derive(OpenApi)]
#[openapi(
    info(title = "weir", version = "v2beta1", description = DESCRIPTION),
    paths(
        crate::api::healthz::healthz,
        crate::api::upload::upload_pipeline,
        crate::api::upload::upload_pipeline_version,
        crate::api::pipelines::create_with_version,
        crate::api::pipelines::get_by_name,
        crate::api::pipelines::list,
        crate::api::pipelines::create,
        crate::api::pipelines::get,
        crate::api::pipelines::delete,
        crate::api::pipelines::list_versions,
        crate::api::pipelines::create_version,
        crate::api::pipelines::get_version,
        crate::api::pipelines::delete_version,
        crate::api::experiments::list,
        crate::api::experiments::create,
        crate::api::experiments::get,
        crate::api::experiments::delete,
        crate::api::experiments::archive,
        crate::api::experiments::unarchive,
        crate::api::runs::list,
        crate::api::runs::create,
        crate::api::runs::get,
        crate::api::runs::delete,
        crate::api::runs::archive,
        crate::api::runs::unarchive,
        crate::api::runs::terminate,
        crate::api::runs::retry,
        crate::api::recurring_runs::list,
        crate::api::recurring_runs::create,
        crate::api::recurring_runs::get,
        crate::api::recurring_runs::delete,
        crate::api::recurring_runs::enable,
        crate::api::recurring_runs::disable,
        crate::api::execution::tasks,
        crate::api::execution::logs,
        crate::api::execution::artifact,
        crate::api::execution::artifact_content,
        crate::api::step_config::create_secret,
        crate::api::step_config::list_secrets,
        crate::api::step_config::get_secret,
        crate::api::step_config::delete_secret,
        crate::api::step_config::create_config_map,
        crate::api::step_config::list_config_maps,
        crate::api::step_config::get_config_map,
        crate::api::step_config::delete_config_map,
        crate::api::retention::history,
        crate::api::retention::get,
        crate::api::retention::set,
        crate::api::retention::clear,
        crate::openapi_json,
        crate::api::healthz::readyz,
        crate::api::healthz::storage,
        crate::observability::metrics_endpoint,
    ),
    components(
        schemas(
            StatusBody, StatusDetail, StatusTypeUrl, UploadError, Status, Empty, Healthz, Timestamp, PipelineSpec,
            Pipeline, PipelineInput, PackageUrl, PipelineVersion, PipelineVersionInput,
            CreatePipelineAndVersionRequest, ListPipelinesResponse, ListPipelineVersionsResponse, Experiment,
            ExperimentInput, ListExperimentsResponse, PipelineVersionReference, RuntimeConfig, RuntimeStatus,
            RuntimeState, StorageState, ArtifactIds, ChildTask, PipelineTaskDetail, RunDetails, Run, RunInput,
            ListRunsResponse, CronSchedule, PeriodicSchedule, Trigger, TriggerInput, TimestampInput, RecurringRun,
            RecurringRunMode, RecurringRunStatus, RecurringRunInput, ListRecurringRunsResponse, PipelineFilter,
            PipelineVersionFilter, ExperimentFilter, RunFilter, RecurringRunFilter, FilterOperation, Int64Input,
            FilterIntValues, FilterStringValues, ArtifactType, Artifact, TaskIo, TaskKind, Task, ListTasksResponse,
            Readiness, StorageInfo, UploadForm, UploadBadRequest, RetentionPolicyInfo, ExperimentRetention,
            SetExperimentRetention, GcRecordInfo, ListGcHistoryResponse,
        ),
        responses(BadRequest, NotFound, Conflict, PayloadTooLarge, Unavailable),
    ),
    tags(
        (name = "HealthzService"),
        (name = "PipelineService"),
        (name = "PipelineUploadService"),
        (name = "ExperimentService"),
        (name = "RunService"),
        (name = "RecurringRunService"),
        (name = "weir", description = "weir's own endpoints (not part of KFP)."),
    )
)]
pub struct ApiDoc;

/// The document as JSON, made once.
pub fn document() -> &'static str {
    static DOCUMENT: LazyLock<String> =
        LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serialises to JSON"));
    &DOCUMENT
}
