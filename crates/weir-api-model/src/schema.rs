//! OpenAPI schemas of values the wire types keep in looser Rust types: timestamps and int64
//! kept as strings on the wire, enums kept as `String` (KFP writes enums by name and weir
//! passes unknown names through where KFP does), and the PipelineSpec, kept as JSON. The wire
//! types point at these with `#[schema(value_type = ...)]`; nothing constructs them.

use serde_json::{json, Value};
use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// `google.protobuf.Timestamp` as `serde_helpers::timestamp` writes it.
pub struct Timestamp;

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 (google.protobuf.Timestamp); written in UTC with whole seconds."))
            .into()
    }
}

impl ToSchema for Timestamp {
    fn name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
}

/// The `pipeline_spec` of versions, runs and recurring runs (`google.protobuf.Struct` in
/// `backend/api/v2beta1/pipeline.proto` and `run.proto`).
pub struct PipelineSpec;

impl PartialSchema for PipelineSpec {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A compiled KFP PipelineSpec (IR, as JSON), or `{\"pipeline_spec\": {...}, \"platform_spec\": {...}}` \
                 when the package has a PlatformSpec.",
            ))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .examples([example_pipeline_spec()])
            .into()
    }
}

impl ToSchema for PipelineSpec {
    fn name() -> std::borrow::Cow<'static, str> {
        "PipelineSpec".into()
    }
}

/// A one-step pipeline as the kfp SDK compiles it: `echo $message`. The examples of the
/// request bodies that take a spec, and a pipeline the API tests can run.
pub fn example_pipeline_spec() -> Value {
    json!({
        "components": {
            "comp-echo": {
                "executorLabel": "exec-echo",
                "inputDefinitions": {"parameters": {"message": {"parameterType": "STRING"}}}
            }
        },
        "deploymentSpec": {
            "executors": {
                "exec-echo": {
                    "container": {
                        "args": ["{{$.inputs.parameters['message']}}"],
                        "command": ["echo"],
                        "image": "alpine"
                    }
                }
            }
        },
        "pipelineInfo": {"name": "echo"},
        "root": {
            "dag": {
                "tasks": {
                    "echo": {
                        "cachingOptions": {"enableCache": true},
                        "componentRef": {"name": "comp-echo"},
                        "inputs": {"parameters": {"message": {"componentInputParameter": "message"}}},
                        "taskInfo": {"name": "echo"}
                    }
                }
            },
            "inputDefinitions": {
                "parameters": {
                    "message": {"defaultValue": "hello", "isOptional": true, "parameterType": "STRING"}
                }
            }
        },
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3"
    })
}

/// `RuntimeState` of `backend/api/v2beta1/run.proto`, as runs, tasks and state changes carry it.
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuntimeState {
    Pending,
    Running,
    Succeeded,
    Skipped,
    Failed,
    Canceling,
    Canceled,
    Paused,
}

/// `StorageState` of `backend/api/v2beta1/experiment.proto` and `run.proto`.
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageState {
    Available,
    Archived,
}

/// `RecurringRun.Mode` of `backend/api/v2beta1/recurring_run.proto`, as weir writes it.
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecurringRunMode {
    Enable,
    Disable,
}

/// `RecurringRun.Status` of `backend/api/v2beta1/recurring_run.proto`, as weir writes it.
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecurringRunStatus {
    Enabled,
    Disabled,
}

/// What a task of weir's task read API is (`weir_store::TaskKind`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum TaskKind {
    Dag,
    Loop,
    Iteration,
    Container,
    Importer,
}
