//! The new-run form: fields typed from the spec's root inputs, experiment, caching, and one-off
//! or recurring (cron or interval, catch-up, concurrency, start and end). Clone fills it from
//! an existing run.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use weir_api_model as wire;
use weir_api_model::ListParams;
use weir_spec::ir::PipelineSpec;

use super::runs::{experiment_choices, Choice};
use crate::security::url_pairs;
use crate::view::{value_text, Chrome, UiError, UiResult};
use crate::Ui;

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub(crate) struct SourceQuery {
    pub pipeline: String,
    pub version: String,
    pub clone: String,
    pub experiment: String,
}

pub(crate) struct InputField {
    pub name: String,
    pub kind: String,
    /// `int`, `float`, `bool`, `text` or `json`.
    pub control: &'static str,
    pub value: String,
    pub optional: bool,
}

#[derive(Template)]
#[template(path = "new_run.html")]
struct NewRunPage {
    chrome: Chrome,
    title: String,
    error: String,
    source: SourceQuery,
    source_label: String,
    pipelines: Vec<Choice>,
    versions: Vec<Choice>,
    experiments: Vec<Choice>,
    inputs: Vec<InputField>,
    values: HashMap<String, String>,
}

impl NewRunPage {
    fn value(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or_default()
    }

    fn checked(&self, key: &str, value: &str) -> bool {
        self.value(key) == value
    }
}

/// What a run is made from: its spec, and where it came from.
struct Source {
    spec: Value,
    platform: Option<Value>,
    pipeline_id: String,
    version_id: String,
    label: String,
    parameters: Map<String, Value>,
    name: String,
    experiment_id: String,
}

async fn load_source(ui: &Ui, q: &SourceQuery) -> UiResult<Option<Source>> {
    if !q.clone.is_empty() {
        let (run, _) = ui.services.runs.get(&q.clone).await?;
        return Ok(Some(Source {
            spec: run.pipeline_spec.clone(),
            platform: run.platform_spec.clone(),
            pipeline_id: run.pipeline_id.clone(),
            version_id: run.pipeline_version_id.clone(),
            label: format!("a clone of run {}", run.display_name),
            parameters: run.parameters.clone(),
            name: format!("Clone of {}", run.display_name),
            experiment_id: run.experiment_id.clone(),
        }));
    }
    if q.pipeline.is_empty() {
        return Ok(None);
    }
    let pipeline = ui.services.pipelines.get(&q.pipeline).await?;
    let version = if q.version.is_empty() {
        let params =
            ListParams { page_size: Some("1".into()), sort_by: "created_at desc".into(), ..Default::default() };
        let page = ui.services.pipelines.list_versions(&q.pipeline, &params).await?;
        page.items.into_iter().next().ok_or_else(|| UiError::bad_request("the pipeline has no versions"))?
    } else {
        ui.services.pipelines.get_version(&q.pipeline, &q.version).await?
    };
    let pipeline_name = if pipeline.display_name.is_empty() { pipeline.name } else { pipeline.display_name };
    let version_name = if version.display_name.is_empty() { version.name } else { version.display_name };
    Ok(Some(Source {
        spec: version.pipeline_spec,
        platform: version.platform_spec,
        pipeline_id: pipeline.id,
        version_id: version.id,
        label: format!("{pipeline_name} · {version_name}"),
        parameters: Map::new(),
        name: format!("Run of {pipeline_name} ({version_name})"),
        experiment_id: String::new(),
    }))
}

fn parse_spec(spec: &Value) -> UiResult<PipelineSpec> {
    PipelineSpec::parse(spec).map_err(|e| UiError::bad_request(format!("the pipeline's spec cannot be read: {e}")))
}

fn control(kind: &str) -> &'static str {
    match kind {
        "NUMBER_INTEGER" => "int",
        "NUMBER_DOUBLE" => "float",
        "BOOLEAN" => "bool",
        "LIST" | "STRUCT" => "json",
        _ => "text",
    }
}

/// A default as its field shows it: integers without the `.0` the spec stores them with.
fn default_text(kind: &str, value: &Value) -> String {
    match (kind, value.as_f64()) {
        ("NUMBER_INTEGER", Some(f)) if f.fract() == 0.0 => format!("{}", f as i64),
        _ => value_text(value),
    }
}

fn input_fields(spec: &PipelineSpec, values: &HashMap<String, String>) -> Vec<InputField> {
    spec.root
        .input_definitions
        .parameters
        .iter()
        .map(|(name, def)| {
            let key = format!("p.{name}");
            let value = values
                .get(&key)
                .cloned()
                .or_else(|| def.default_value.as_ref().map(|v| default_text(&def.parameter_type, v)))
                .unwrap_or_default();
            InputField {
                name: name.clone(),
                kind: def.parameter_type.clone(),
                control: control(&def.parameter_type),
                value,
                optional: def.is_optional || def.default_value.is_some(),
            }
        })
        .collect()
}

async fn render(
    ui: &Ui,
    chrome: Chrome,
    q: SourceQuery,
    mut values: HashMap<String, String>,
    error: String,
) -> UiResult {
    let source = load_source(ui, &q).await?;
    let mut inputs = Vec::new();
    let mut source_label = String::new();
    if let Some(source) = &source {
        for (k, v) in &source.parameters {
            values.entry(format!("p.{k}")).or_insert_with(|| value_text(v));
        }
        values.entry("name".into()).or_insert_with(|| source.name.clone());
        if !source.experiment_id.is_empty() {
            values.entry("experiment".into()).or_insert_with(|| source.experiment_id.clone());
        }
        inputs = input_fields(&parse_spec(&source.spec)?, &values);
        source_label = source.label.clone();
    }
    values.entry("kind".into()).or_insert_with(|| "once".into());
    values.entry("trigger".into()).or_insert_with(|| "cron".into());
    values.entry("caching".into()).or_insert_with(|| "on".into());
    values.entry("max_concurrency".into()).or_insert_with(|| "1".into());
    let selected_experiment = values.get("experiment").cloned().unwrap_or_else(|| q.experiment.clone());
    let experiments = experiment_choices(ui, &selected_experiment).await?;
    let params = ListParams { page_size: Some("200".into()), sort_by: "display_name".into(), ..Default::default() };
    let pipelines = if source.is_none() {
        ui.services
            .pipelines
            .list(&params)
            .await?
            .items
            .into_iter()
            .map(|p| Choice {
                selected: false,
                value: p.id,
                label: if p.display_name.is_empty() { p.name } else { p.display_name },
            })
            .collect()
    } else {
        Vec::new()
    };
    let versions = if !q.pipeline.is_empty() && q.clone.is_empty() {
        let params =
            ListParams { page_size: Some("200".into()), sort_by: "created_at desc".into(), ..Default::default() };
        let chosen = source.as_ref().map(|s| s.version_id.clone()).unwrap_or_default();
        ui.services
            .pipelines
            .list_versions(&q.pipeline, &params)
            .await?
            .items
            .into_iter()
            .map(|v| Choice {
                selected: v.id == chosen,
                value: v.id,
                label: if v.display_name.is_empty() { v.name } else { v.display_name },
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = NewRunPage {
        chrome,
        title: "Create run".into(),
        error,
        source: q,
        source_label,
        pipelines,
        versions,
        experiments,
        inputs,
        values,
    };
    Ok(Html(page.render()?).into_response())
}

pub(crate) async fn form(State(ui): State<Ui>, chrome: Chrome, Query(q): Query<SourceQuery>) -> UiResult {
    render(&ui, chrome, q, HashMap::new(), String::new()).await
}

/// A parameter's text as the value its type wants; `None` when left empty.
fn typed(kind: &str, text: &str) -> Result<Option<Value>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value = match control(kind) {
        // A spec's integer defaults are JSON numbers like 1.0 (protobuf keeps doubles).
        "int" => match (text.parse::<i64>(), text.parse::<f64>()) {
            (Ok(i), _) => Value::from(i),
            (_, Ok(f)) if f.fract() == 0.0 && f.abs() < 9e15 => Value::from(f as i64),
            _ => return Err(format!("{text:?} is not a whole number")),
        },
        "float" => {
            let f = text.parse::<f64>().map_err(|_| format!("{text:?} is not a number"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("{text:?} is not a finite number"))?
        }
        "bool" => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => return Err(format!("{other:?} is not true or false")),
        },
        "json" => {
            let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            match (kind, &value) {
                ("LIST", Value::Array(_)) | ("STRUCT", Value::Object(_)) => value,
                ("LIST", _) => return Err("must be a JSON list, like [1, 2]".into()),
                _ => return Err("must be a JSON object, like {\"a\": 1}".into()),
            }
        }
        _ => Value::String(text.to_string()),
    };
    Ok(Some(value))
}

/// Every task of every DAG in the spec with its cache turned off.
fn without_cache(spec: &mut Value) {
    fn disable(tasks: Option<&mut Value>) {
        if let Some(Value::Object(tasks)) = tasks {
            for task in tasks.values_mut() {
                if let Value::Object(task) = task {
                    task.insert("cachingOptions".into(), serde_json::json!({"enableCache": false}));
                }
            }
        }
    }
    disable(spec.pointer_mut("/root/dag/tasks"));
    if let Some(Value::Object(components)) = spec.get_mut("components") {
        for component in components.values_mut() {
            disable(component.pointer_mut("/dag/tasks"));
        }
    }
}

/// `YYYY-MM-DDTHH:MM` (a datetime-local field, UTC) as a time.
fn instant(text: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S"))
        .map(|t| Some(t.and_utc()))
        .map_err(|_| format!("{text:?} is not a date and time"))
}

pub(crate) async fn submit(State(ui): State<Ui>, chrome: Chrome, body: Bytes) -> UiResult<Response> {
    let values: HashMap<String, String> = url_pairs(&body).collect();
    let q = SourceQuery {
        pipeline: values.get("pipeline").cloned().unwrap_or_default(),
        version: values.get("version").cloned().unwrap_or_default(),
        clone: values.get("clone").cloned().unwrap_or_default(),
        experiment: String::new(),
    };
    match create(&ui, &q, &values).await {
        Ok(path) => Ok(chrome.see_other(&path)),
        Err(message) => {
            let mut response = render(&ui, chrome, q, values, message).await?;
            *response.status_mut() = StatusCode::BAD_REQUEST;
            Ok(response)
        }
    }
}

/// Creates the run or recurring run; the path of its page, or why not.
async fn create(ui: &Ui, q: &SourceQuery, values: &HashMap<String, String>) -> Result<String, String> {
    let get = |k: &str| values.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let source = load_source(ui, q).await.map_err(|e| e.message)?.ok_or("choose a pipeline first")?;
    let spec = parse_spec(&source.spec).map_err(|e| e.message)?;
    let mut parameters = Map::new();
    for (name, def) in &spec.root.input_definitions.parameters {
        let text = values.get(&format!("p.{name}")).map(String::as_str).unwrap_or_default();
        match typed(&def.parameter_type, text).map_err(|e| format!("input {name}: {e}"))? {
            Some(value) => {
                parameters.insert(name.clone(), value);
            }
            None if def.is_optional || def.default_value.is_some() => {}
            None => return Err(format!("input {name} is required")),
        }
    }
    let name = get("name");
    if name.is_empty() {
        return Err("give the run a name".into());
    }
    let caching = get("caching") == "on";
    // Caching off changes the spec, so the run carries its own copy (as kfp.Client does for
    // enable_caching=False); with caching on it runs the version itself.
    let inline = !caching || source.version_id.is_empty();
    let (pipeline_spec, reference) = if inline {
        let mut spec = source.spec.clone();
        if !caching {
            without_cache(&mut spec);
        }
        let spec = match &source.platform {
            Some(platform) => serde_json::json!({"pipeline_spec": spec, "platform_spec": platform}),
            None => spec,
        };
        (Some(spec), None)
    } else {
        let reference = wire::PipelineVersionReference {
            pipeline_id: source.pipeline_id.clone(),
            pipeline_version_id: source.version_id.clone(),
        };
        (None, Some(reference))
    };
    let runtime_config = Some(wire::RuntimeConfig { parameters, pipeline_root: String::new() });
    if get("kind") == "recurring" {
        let start = instant(&get("start"))?;
        let end = instant(&get("end"))?;
        let trigger = if get("trigger") == "interval" {
            let seconds: i64 = get("interval").parse().map_err(|_| "the interval is a whole number of seconds")?;
            wire::Trigger {
                periodic_schedule: Some(wire::PeriodicSchedule {
                    start_time: start,
                    end_time: end,
                    interval_second: Some(seconds),
                }),
                cron_schedule: None,
            }
        } else {
            wire::Trigger {
                cron_schedule: Some(wire::CronSchedule { start_time: start, end_time: end, cron: get("cron") }),
                periodic_schedule: None,
            }
        };
        let max_concurrency: i64 = get("max_concurrency").parse().map_err(|_| "max concurrency is a whole number")?;
        let body = wire::RecurringRun {
            display_name: name,
            description: get("description"),
            pipeline_spec,
            pipeline_version_reference: reference,
            runtime_config,
            max_concurrency: Some(max_concurrency),
            trigger: Some(trigger),
            mode: "ENABLE".into(),
            no_catchup: get("catchup") != "on",
            experiment_id: get("experiment"),
            ..Default::default()
        };
        let created = ui.services.recurring_runs.create(&body).await.map_err(|e| e.message)?;
        return Ok(format!("/recurring-runs/{}", created.id));
    }
    let body = wire::Run {
        display_name: name,
        description: get("description"),
        experiment_id: get("experiment"),
        pipeline_spec,
        pipeline_version_reference: reference,
        runtime_config,
        ..Default::default()
    };
    let run = ui.services.runs.create(&body).await.map_err(|e| e.message)?;
    Ok(format!("/runs/{}", run.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_typed_by_the_spec() {
        assert_eq!(typed("NUMBER_INTEGER", " 3 ").unwrap(), Some(Value::from(3)));
        assert!(typed("NUMBER_INTEGER", "3.5").is_err());
        assert_eq!(typed("NUMBER_INTEGER", "1.0").unwrap(), Some(Value::from(1)));
        assert_eq!(default_text("NUMBER_INTEGER", &serde_json::json!(1.0)), "1");
        assert_eq!(typed("NUMBER_DOUBLE", "0.25").unwrap(), Some(serde_json::json!(0.25)));
        assert_eq!(typed("BOOLEAN", "false").unwrap(), Some(Value::Bool(false)));
        assert_eq!(typed("LIST", "[1, \"a\"]").unwrap(), Some(serde_json::json!([1, "a"])));
        assert!(typed("LIST", "{}").is_err());
        assert!(typed("STRUCT", "[1]").is_err());
        assert_eq!(typed("STRING", "").unwrap(), None);
        assert_eq!(typed("STRING", "x").unwrap(), Some(Value::from("x")));
    }

    #[test]
    fn caching_is_turned_off_in_every_dag() {
        let mut spec = serde_json::json!({
            "root": {"dag": {"tasks": {"a": {"cachingOptions": {"enableCache": true}}}}},
            "components": {"comp-sub": {"dag": {"tasks": {"b": {}}}}, "comp-a": {"executorLabel": "x"}}
        });
        without_cache(&mut spec);
        assert_eq!(spec.pointer("/root/dag/tasks/a/cachingOptions/enableCache"), Some(&Value::Bool(false)));
        assert_eq!(
            spec.pointer("/components/comp-sub/dag/tasks/b/cachingOptions/enableCache"),
            Some(&Value::Bool(false))
        );
    }
}
