//! Query parameters of the API. The list calls' `sort_by` and `filter` are generated from the
//! field tables of `weir_store::Entity`, which `ListQuery::resolve` checks requests against, so
//! the document names exactly the keys weir sorts and filters on.

use serde_json::{json, Value};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Required};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use weir_api_model::filter::{filter_schema, KeyKind};
use weir_store::{Entity, FieldKind, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// An optional query parameter with a schema.
fn query(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// An optional query parameter whose value is JSON, described as `content` rather than
/// `schema` (OpenAPI's Parameter Object allows either). utoipa's `Parameter` has no `content`
/// field, so it goes into the extensions map, which is serialised flat with its keys as given.
fn json_query(name: &str, description: &str, schema: Value) -> Parameter {
    let content = json!({ "application/json": { "schema": schema } });
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .extensions(Some(Extensions::from_iter([("content", content)])))
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

const NAMESPACE: &str = "Accepted and ignored (weir is single-user).";

/// The filter schema's component name for an entity.
fn filter_name(entity: Entity) -> &'static str {
    match entity {
        Entity::Pipeline => "PipelineFilter",
        Entity::PipelineVersion => "PipelineVersionFilter",
        Entity::Experiment => "ExperimentFilter",
        Entity::Run => "RunFilter",
        Entity::RecurringRun => "RecurringRunFilter",
    }
}

/// The parameters of a list call on `entity`: paging, order, filter and namespace (and the
/// experiment, for runs and recurring runs).
fn list_params(entity: Entity) -> Vec<Parameter> {
    let keys: Vec<&str> = entity.fields().iter().map(|f| f.api).collect();
    let sort_by = format!(r"^\s*(({})(\s+([aA][sS][cC]|[dD][eE][sS][cC]))?)?\s*$", keys.join("|"));
    let filter_ref = json!({ "$ref": format!("#/components/schemas/{}", filter_name(entity)) });
    let mut params = vec![
        query(
            "page_token",
            "next_page_token of the previous page (opaque; bound to the sort, filter and list it was made for).",
            string(),
        ),
        query(
            "page_size",
            &format!(
                "Items per page: 0 or absent for {DEFAULT_PAGE_SIZE} (so is an empty value), at most \
                 {MAX_PAGE_SIZE} (larger values are capped)."
            ),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0)),
        ),
        query(
            "sort_by",
            "`\"field\"`, `\"field asc\"` or `\"field desc\"`; default `created_at` ascending (or the page \
             token's sort).",
            string().pattern(Some(sort_by)),
        ),
        json_query("filter", "URL-encoded JSON of KFP's `Filter`.", filter_ref),
        query("namespace", NAMESPACE, string()),
    ];
    if matches!(entity, Entity::Run | Entity::RecurringRun) {
        params.push(query("experiment_id", "Only this experiment's (which must exist).", string()));
    }
    params
}

/// Declares a marker type whose `IntoParams` lists a list call's query parameters and whose
/// `ToSchema` is the filter schema of the same entity.
macro_rules! list_query {
    ($name:ident, $entity:expr, $resource:literal) => {
        pub struct $name;

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                list_params($entity)
            }
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let keys: Vec<(&str, KeyKind)> = $entity
                    .fields()
                    .iter()
                    .map(|f| {
                        let kind = match f.kind {
                            FieldKind::Text => KeyKind::Text,
                            FieldKind::Time => KeyKind::Time,
                            FieldKind::Int => KeyKind::Int,
                        };
                        (f.api, kind)
                    })
                    .collect();
                filter_schema($resource, &keys)
            }
        }

        impl ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                filter_name($entity).into()
            }
        }
    };
}

list_query!(PipelineFilter, Entity::Pipeline, "Pipeline");
list_query!(PipelineVersionFilter, Entity::PipelineVersion, "PipelineVersion");
list_query!(ExperimentFilter, Entity::Experiment, "Experiment");
list_query!(RunFilter, Entity::Run, "Run");
list_query!(RecurringRunFilter, Entity::RecurringRun, "RecurringRun");

/// `DELETE /pipelines/{id}`'s `cascade`.
pub struct DeletePipelineQuery;

impl IntoParams for DeletePipelineQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let boolean = ObjectBuilder::new().schema_type(Type::Boolean);
        vec![query("cascade", "Delete the versions too (`true`, `True` or `1`).", boolean)]
    }
}

/// `DELETE /experiments/{id}`'s query (weir's addition).
pub struct DeleteExperimentQuery;

impl IntoParams for DeleteExperimentQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let boolean = ObjectBuilder::new().schema_type(Type::Boolean);
        vec![query(
            "cascade",
            "Remove the experiment's runs (with their artifacts) and recurring runs too (`true`, `True` or `1`); \
             weir's addition.",
            boolean,
        )]
    }
}

/// `GET /apis/weir/v1/runs/{id}/tasks`'s query.
pub struct TasksQuery;

impl IntoParams for TasksQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let max = weir_service::execution::MAX_TASK_PAGE as f64;
        let integer = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(max));
        vec![
            query("page_size", "Tasks per page (1 to 1000); every task when absent.", integer),
            query("page_token", "The previous page's next_page_token.", string()),
        ]
    }
}

/// `GET /apis/weir/v1/gc/history`'s query.
pub struct GcHistoryQuery;

impl IntoParams for GcHistoryQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let integer = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(500));
        vec![
            query("page_size", "Records per page (1 to 500, default 50).", integer),
            query("page_token", "The previous page's next_page_token.", string()),
        ]
    }
}

/// `GET /pipelines/names/{name}`'s query.
pub struct NamespaceQuery;

impl IntoParams for NamespaceQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query("namespace", NAMESPACE, string())]
    }
}

/// `GET /runs/{id}/logs`'s `task`.
pub struct LogsQuery;

impl IntoParams for LogsQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query("task", "A task id, name or display name; all steps when absent or empty.", string())]
    }
}

/// The query of `POST /pipelines/upload` (`weir_service::UploadParams`).
pub struct UploadQuery;

impl IntoParams for UploadQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        upload_params()
    }
}

/// The query of `POST /pipelines/upload_version`: the pipeline, required, in `pipelineid`.
pub struct UploadVersionQuery;

impl IntoParams for UploadVersionQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let pipeline = ParameterBuilder::new()
            .name("pipelineid")
            .parameter_in(ParameterIn::Query)
            .required(Required::True)
            .description(Some("The pipeline (one word, as the client sends it)."))
            .schema(Some(string()))
            .build();
        let mut params = vec![pipeline];
        params.extend(upload_params());
        params
    }
}

fn upload_params() -> Vec<Parameter> {
    let tags = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    vec![
        query("name", "Name; else display_name; else the uploaded file's name.", string()),
        query("display_name", "Shown name; else the name.", string()),
        query("description", "The description.", string()),
        query("namespace", NAMESPACE, string()),
        json_query("tags", "A JSON object of string tags.", tags),
        query("code_source_url", "Where the pipeline's source is.", string()),
    ]
}
