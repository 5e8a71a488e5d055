//! Resolving a task's inputs from its parent DAG and its siblings.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use weir_spec::ir::TaskSpec;
use weir_store::{RuntimeState, TaskIo};

use crate::planner::Planner;
use weir_spec::values::integral_numbers;

/// Why inputs could not be resolved.
pub(crate) enum Unresolved {
    /// A producer was skipped: the task is skipped too.
    Skipped(String),
    Failed(String),
}

impl From<String> for Unresolved {
    fn from(message: String) -> Self {
        Unresolved::Failed(message)
    }
}

fn missing(name: &str, producer: &weir_store::Task, what: &str, key: &str) -> Unresolved {
    let message = format!("input {name:?}: task {:?} ({}) produced no {what} {key:?}", producer.name, producer.state);
    if producer.state == RuntimeState::Skipped {
        Unresolved::Skipped(format!("not run: its input {name:?} comes from skipped task {:?}", producer.name))
    } else {
        Unresolved::Failed(message)
    }
}

/// The task's parameters and artifact ids, from its parent's inputs and its siblings' outputs.
pub(crate) fn resolve(planner: &Planner, parent_id: &str, name: &str, spec: &TaskSpec) -> Result<TaskIo, Unresolved> {
    let task_name = name;
    let parent = planner.parent(parent_id);
    let parent_params = &parent.inputs.parameters;
    let parent_artifacts = &parent.inputs.artifacts;

    // `ignore_upstream_failure()`: an output a failed producer did not make leaves the input
    // unset, so the component's default applies (the SDK requires one on such inputs).
    let tolerant = spec.runs_after_failures();
    let gave_up = |producer: &weir_store::Task| tolerant && producer.state != RuntimeState::Succeeded;
    let mut parameters = Map::new();
    for (name, input) in &spec.inputs.parameters {
        let value = if let Some(source) = &input.component_input_parameter {
            match parent_params.get(source) {
                Some(v) => Some(v.clone()),
                None => continue,
            }
        } else if let Some(output) = &input.task_output_parameter {
            let producer = planner
                .sibling(parent_id, &output.producer_task)
                .ok_or_else(|| format!("input {name:?}: task {:?} has not run", output.producer_task))?;
            match producer.outputs.parameters.get(&output.output_parameter_key) {
                Some(v) => Some(v.clone()),
                None if gave_up(producer) => continue,
                None => return Err(missing(name, producer, "output", &output.output_parameter_key)),
            }
        } else if let Some(constant) = &input.runtime_value {
            constant
                .constant
                .clone()
                .or_else(|| constant.constant_value.clone())
                .map(|c| runtime_constant(planner, parent_id, task_name, c))
        } else if let Some(status) = &input.task_final_status {
            let producer = planner
                .sibling(parent_id, &status.producer_task)
                .ok_or_else(|| format!("input {name:?}: task {:?} has not run", status.producer_task))?;
            // KFP's driver always sends an `error` object (empty while the producer did not
            // fail); weir fills in the failure it recorded.
            let error = match &producer.error {
                Some(e) if producer.state != RuntimeState::Succeeded => json!({"code": e.code, "message": e.message}),
                _ => json!({}),
            };
            Some(json!({
                "state": final_state(producer),
                "pipelineJobResourceName": planner.job_resource_name(),
                "pipelineTaskName": producer.name,
                "error": error,
            }))
        } else {
            None
        };
        let Some(mut value) = value else { continue };
        if let Some(selector) = &input.parameter_expression_selector {
            value = weir_spec::cel::select(selector, &value)
                .map_err(|e| Unresolved::Failed(format!("input {name:?}: {e}")))?;
        }
        parameters.insert(name.clone(), integral_numbers(&value));
    }
    weir_spec::values::expand_parameter_references(&mut parameters);

    let mut artifacts = BTreeMap::new();
    for (name, input) in &spec.inputs.artifacts {
        if let Some(output) = &input.task_output_artifact {
            let producer = planner
                .sibling(parent_id, &output.producer_task)
                .ok_or_else(|| format!("input artifact {name:?}: task {:?} has not run", output.producer_task))?;
            match producer.outputs.artifacts.get(&output.output_artifact_key) {
                Some(ids) => {
                    artifacts.insert(name.clone(), ids.clone());
                }
                None if gave_up(producer) => {}
                None => return Err(missing(name, producer, "artifact", &output.output_artifact_key)),
            }
        } else if let Some(source) = &input.component_input_artifact {
            if let Some(ids) = parent_artifacts.get(source) {
                artifacts.insert(name.clone(), ids.clone());
            }
        }
    }
    Ok(TaskIo { parameters, artifacts, items: None })
}

/// `PipelineTaskFinalStatus.state`: KFP's driver gives the producer execution's last known
/// state in ML Metadata (`Execution.State` names: COMPLETE, CACHED, FAILED, CANCELED), not a
/// run state (`resolveInputParameter` in backend/src/v2/driver/resolve.go).
fn final_state(producer: &weir_store::Task) -> &'static str {
    match producer.state {
        RuntimeState::Succeeded if producer.cached => "CACHED",
        RuntimeState::Succeeded => "COMPLETE",
        // A task whose condition was false is recorded NotTriggered, which ML Metadata calls
        // CANCELED.
        RuntimeState::Skipped | RuntimeState::Canceled | RuntimeState::Canceling => "CANCELED",
        _ => "FAILED",
    }
}

/// A task input's constant, with the run's values in place of the placeholders KFP's driver
/// substitutes there. As in KFP (`resolveInputParameter` in backend/src/v2/driver/resolve.go)
/// a constant is replaced only when it is one of them exactly. `{{$.pipeline_root}}` and
/// `{{$.workspace_path}}` depend on where the step runs and are left to the step's plan
/// (`launch::plan_step`).
fn runtime_constant(planner: &Planner, parent_id: &str, task_name: &str, constant: Value) -> Value {
    let Value::String(text) = &constant else { return constant };
    if !text.starts_with("{{$.") {
        return constant;
    }
    let run = planner.run_row();
    let value = match text.as_str() {
        "{{$.pipeline_job_name}}" => run.display_name.clone(),
        "{{$.pipeline_job_resource_name}}" => planner.job_resource_name(),
        "{{$.pipeline_job_uuid}}" => run.id.clone(),
        // The task's key in its DAG (the driver's `--task_name`), not its display name.
        "{{$.pipeline_task_name}}" => task_name.to_string(),
        // KFP gives the id of the DAG execution the task runs in; weir's is the DAG task's id.
        "{{$.pipeline_task_uuid}}" => parent_id.to_string(),
        "{{$.pipeline_job_create_time_utc}}" => crate::launch::rfc3339(run.created_at),
        "{{$.pipeline_job_schedule_time_utc}}" => crate::launch::rfc3339(run.scheduled_at),
        _ => return constant,
    };
    Value::String(value)
}

/// Why a loop has no items to iterate over; the loop task fails with this message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoopError {
    #[error("loop items {text:?} are not a JSON list: {source}")]
    NotJson { text: String, source: serde_json::Error },
    #[error("loop input {0:?} has no value")]
    NoValue(String),
    #[error("the loop names no items")]
    NoItems,
    #[error("loop items must be a list, got {0}")]
    NotAList(Value),
    #[error("loop input artifact {0:?} has no value")]
    NoArtifacts(String),
    #[error("not a loop")]
    NotALoop,
}

/// The items a loop iterates over: a raw JSON list, or a list-valued input (a list, or JSON
/// text of one), or the ids of an artifact list.
pub(crate) fn loop_items(spec: &TaskSpec, inputs: &TaskIo) -> Result<Vec<Value>, LoopError> {
    let parse = |text: &str| {
        serde_json::from_str::<Value>(text).map_err(|source| LoopError::NotJson { text: text.to_string(), source })
    };
    if let Some(iterator) = &spec.parameter_iterator {
        let value = match (&iterator.items.raw, &iterator.items.input_parameter) {
            (Some(raw), _) => parse(raw)?,
            (None, Some(param)) => {
                inputs.parameters.get(param).cloned().ok_or_else(|| LoopError::NoValue(param.clone()))?
            }
            (None, None) => return Err(LoopError::NoItems),
        };
        let value = match value {
            Value::String(text) => parse(&text)?,
            other => other,
        };
        return match value {
            Value::Array(items) => Ok(items),
            other => Err(LoopError::NotAList(other)),
        };
    }
    if let Some(iterator) = &spec.artifact_iterator {
        let ids = inputs.artifacts.get(&iterator.items.input_artifact);
        return ids
            .map(|ids| ids.iter().map(|id| Value::from(*id)).collect())
            .ok_or_else(|| LoopError::NoArtifacts(iterator.items.input_artifact.clone()));
    }
    Err(LoopError::NotALoop)
}
