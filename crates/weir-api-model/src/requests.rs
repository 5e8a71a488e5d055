//! OpenAPI schemas of the request bodies that create entities.
//!
//! The same wire types carry requests and responses and are read leniently (unknown and
//! output-only fields are ignored, empty values count as absent), so they cannot say what a
//! request must hold. These schemas say it, as weir-service checks it: required fields, the
//! choice of exactly one pipeline source, the bounds of `max_concurrency` and the trigger forms.
//! A rule JSON Schema cannot state on an object with properties in utoipa's model (an `anyOf`
//! of required fields) is an `allOf` of the object and that `anyOf`, which validates the same.

use serde_json::{json, Value};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Ref, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Deprecated, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::schema::{example_pipeline_spec, PipelineSpec};
use crate::types::{PackageUrl, PipelineVersionReference, RuntimeConfig};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A string with something other than whitespace in it (what `weir_service::require` accepts).
fn non_blank() -> ObjectBuilder {
    string().pattern(Some(r"\S"))
}

fn tags() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(string()))
}

fn reference<T: ToSchema>() -> Ref {
    Ref::from_schema_name(T::name())
}

/// A reference that may also be `null` (serde reads `null` as an absent `Option`).
fn nullable<T: ToSchema>() -> OneOfBuilder {
    OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::Null)).item(reference::<T>())
}

/// `{"required": [field]}`: one alternative of an `anyOf`.
fn has(field: &str) -> ObjectBuilder {
    ObjectBuilder::new().required(field)
}

/// Exactly one pipeline source (weir-service rejects none and more than one); a null or empty
/// one counts as absent, which JSON Schema cannot say, so this only requires one of them.
fn pipeline_source() -> AnyOfBuilder {
    AnyOfBuilder::new()
        .item(has("pipeline_spec"))
        .item(has("pipeline_version_reference"))
        .item(has("pipeline_version_id"))
}

/// Body of `POST /pipelines` and the `pipeline` of `POST /pipelines/create`.
pub struct PipelineInput;

impl PartialSchema for PipelineInput {
    fn schema() -> RefOr<Schema> {
        let fields = ObjectBuilder::new()
            .property("display_name", string())
            .property("name", string())
            .property("description", string())
            .property("namespace", string())
            .property("tags", tags());
        let named = AnyOfBuilder::new()
            .item(has("name").property("name", non_blank()))
            .item(has("display_name").property("display_name", non_blank()));
        AllOfBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A new pipeline: `name` (else `display_name`) is required; it must be unique. \
                 Output-only fields are ignored.",
            ))
            .item(fields)
            .item(named)
            .examples([json!({"display_name": "echo", "description": "made by the API example"})])
            .into()
    }
}

impl ToSchema for PipelineInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "PipelineInput".into()
    }
}

/// Body of `POST /pipelines/{id}/versions` and the `pipeline_version` of
/// `POST /pipelines/create`.
pub struct PipelineVersionInput;

impl PartialSchema for PipelineVersionInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "A new version. The spec is given inline in `pipeline_spec` (weir does not fetch \
                 `package_url`); the name defaults to the pipeline's. `pipeline_id`, when given, must be \
                 the pipeline of the path.",
            ))
            .property("pipeline_id", string())
            .property("display_name", string())
            .property("name", string())
            .property("description", string())
            .property("package_url", nullable::<PackageUrl>())
            .property("code_source_url", string())
            .property("pipeline_spec", reference::<PipelineSpec>())
            .required("pipeline_spec")
            .property("tags", tags())
            .examples([json!({"display_name": "echo v2", "pipeline_spec": example_pipeline_spec()})])
            .into()
    }
}

impl ToSchema for PipelineVersionInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "PipelineVersionInput".into()
    }
}

/// The example of `CreatePipelineAndVersionRequest`.
pub fn create_pipeline_and_version_example() -> Value {
    json!({
        "pipeline": {"display_name": "echo-with-version"},
        "pipeline_version": {"pipeline_spec": example_pipeline_spec()}
    })
}

/// Body of `POST /experiments`.
pub struct ExperimentInput;

impl PartialSchema for ExperimentInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "A new experiment; `display_name` is required and unique. Output-only fields are ignored.",
            ))
            .property("display_name", non_blank())
            .required("display_name")
            .property("description", string())
            .property("namespace", string())
            .examples([json!({"display_name": "api-example", "description": "made by the API example"})])
            .into()
    }
}

impl ToSchema for ExperimentInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "ExperimentInput".into()
    }
}

/// The fields a run and a recurring run share: name, experiment, pipeline source and runtime.
fn run_fields() -> ObjectBuilder {
    ObjectBuilder::new()
        .property("display_name", non_blank())
        .required("display_name")
        .property("description", string())
        .property("experiment_id", string())
        .property("pipeline_spec", reference::<PipelineSpec>())
        .property("pipeline_version_reference", nullable::<PipelineVersionReference>())
        .property("pipeline_version_id", string().deprecated(Some(Deprecated::True)))
        .property("runtime_config", nullable::<RuntimeConfig>())
        .property("service_account", string())
}

/// Body of `POST /runs`.
pub struct RunInput;

impl PartialSchema for RunInput {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A new run. `display_name` is required. Exactly one pipeline source: `pipeline_spec` \
                 (inline) or `pipeline_version_reference` (or the deprecated `pipeline_version_id`); a null \
                 or empty one counts as absent. The runtime parameters must fit the pipeline's inputs. \
                 Without `experiment_id` the run goes to the `Default` experiment.",
            ))
            .item(run_fields())
            .item(pipeline_source())
            .examples([json!({
                "display_name": "api-example-run",
                "pipeline_spec": example_pipeline_spec(),
                "runtime_config": {"parameters": {"message": "hi"}}
            })])
            .into()
    }
}

impl ToSchema for RunInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "RunInput".into()
    }
}

/// Body of `POST /recurringruns`.
pub struct RecurringRunInput;

impl PartialSchema for RecurringRunInput {
    fn schema() -> RefOr<Schema> {
        // int64, as a number or a string; weir-service takes 1 to 10.
        let max_concurrency = AnyOfBuilder::new()
            .description(Some("Between 1 and 10 (int64, as a number or a string)."))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(1))
                    .maximum(Some(10)),
            )
            .item(string().pattern(Some(r"^\s*\+?0*([1-9]|10)\s*$")));
        let mode = string().enum_values(Some(["ENABLE", "DISABLE", "MODE_UNSPECIFIED"])).description(Some(
            "`ENABLE` starts it enabled; anything else leaves it disabled (weir does not reject other values).",
        ));
        let fields = run_fields()
            .property("namespace", string())
            .property("max_concurrency", max_concurrency)
            .required("max_concurrency")
            .property("trigger", reference::<TriggerInput>())
            .required("trigger")
            .property("mode", mode)
            .property("no_catchup", ObjectBuilder::new().schema_type(Type::Boolean));
        AllOfBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A new recurring run. `display_name`, `max_concurrency` (1 to 10) and `trigger` are required. \
                 Exactly one pipeline source: `pipeline_spec` (inline) or `pipeline_version_reference` (or the \
                 deprecated `pipeline_version_id`); a null or empty one counts as absent. A reference with only \
                 `pipeline_id` runs the newest version at each firing. `mode` `ENABLE` starts it enabled; \
                 anything else leaves it disabled.",
            ))
            .item(fields)
            .item(pipeline_source())
            .examples([json!({
                "display_name": "api-example-schedule",
                "max_concurrency": "1",
                "mode": "DISABLE",
                "trigger": {"cron_schedule": {"cron": "0 0 2 * * *"}},
                "pipeline_spec": example_pipeline_spec()
            })])
            .into()
    }
}

impl ToSchema for RecurringRunInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "RecurringRunInput".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((TriggerInput::name().into(), TriggerInput::schema()));
        schemas.push((TimestampInput::name().into(), TimestampInput::schema()));
    }
}

/// The trigger of a new recurring run.
pub struct TriggerInput;

impl PartialSchema for TriggerInput {
    fn schema() -> RefOr<Schema> {
        // Six fields (seconds first) or five, a descriptor, or `@every` with h/m/s units: what
        // weir-service's cron parser (croner, with seconds optional) is given.
        let cron = AnyOfBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Six fields (second first), five (minute first), a descriptor, or `@every` with h/m/s units.",
            ))
            .item(ObjectBuilder::new().schema_type(SchemaType::AnyValue).pattern(Some(r"^\s*\S+(\s+\S+){4,5}\s*$")))
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .pattern(Some("^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$")),
            )
            .item(ObjectBuilder::new().schema_type(SchemaType::AnyValue).pattern(Some("^@every ([0-9]{1,19}[hms])+$")))
            .examples(["0 0 2 * * *"]);
        let interval_second = AnyOfBuilder::new()
            .description(Some("Seconds between runs, at least 1 (int64, as a number or a string)."))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(1)),
            )
            .item(string().pattern(Some(r"^\s*\+?0*[1-9][0-9]*\s*$")));
        let nullable_object = || ObjectBuilder::new().schema_type(SchemaType::Array(vec![Type::Object, Type::Null]));
        let cron_schedule = nullable_object()
            .property("start_time", reference::<TimestampInput>())
            .property("end_time", reference::<TimestampInput>())
            .property("cron", cron)
            .required("cron");
        let periodic_schedule = nullable_object()
            .property("start_time", reference::<TimestampInput>())
            .property("end_time", reference::<TimestampInput>())
            .property("interval_second", interval_second)
            .required("interval_second");
        let fields = ObjectBuilder::new()
            .property("cron_schedule", cron_schedule)
            .property("periodic_schedule", periodic_schedule);
        AllOfBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Exactly one of `cron_schedule` (six fields with seconds first, five without, `@daily`-style \
                 descriptors or `@every <duration>`) and `periodic_schedule` (`interval_second` >= 1). \
                 `end_time` must be after `start_time`.",
            ))
            .item(fields)
            .item(AnyOfBuilder::new().item(has("cron_schedule")).item(has("periodic_schedule")))
            .into()
    }
}

impl ToSchema for TriggerInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "TriggerInput".into()
    }
}

/// A start or end time of a new trigger (`serde_helpers::timestamp` reads an empty string or
/// `null` as no time).
pub struct TimestampInput;

impl PartialSchema for TimestampInput {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
            .description(Some("RFC 3339 (google.protobuf.Timestamp); an empty string or null is no time."))
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(ObjectBuilder::new().schema_type(SchemaType::AnyValue).max_length(Some(0)))
            .into()
    }
}

impl ToSchema for TimestampInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "TimestampInput".into()
    }
}
