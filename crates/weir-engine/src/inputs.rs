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
pub(crate) fn resolve(planner: &Planner, parent_id: &str, spec: &TaskSpec) -> Result<TaskIo, Unresolved> {
    let parent = planner.parent(parent_id);
    let parent_params = &parent.inputs.parameters;
    let parent_artifacts = &parent.inputs.artifacts;

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
                None => return Err(missing(name, producer, "output", &output.output_parameter_key)),
            }
        } else if let Some(constant) = &input.runtime_value {
            constant.constant.clone().or_else(|| constant.constant_value.clone())
        } else if let Some(status) = &input.task_final_status {
            let producer = planner
                .sibling(parent_id, &status.producer_task)
                .ok_or_else(|| format!("input {name:?}: task {:?} has not run", status.producer_task))?;
            let mut value = json!({
                "state": final_state(producer.state),
                "pipelineJobResourceName": planner.run_id(),
                "pipelineTaskName": producer.display_name,
            });
            if let Some(e) = &producer.error {
                value["error"] = json!({"code": e.code, "message": e.message});
            }
            Some(value)
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

/// `PipelineTaskFinalStatus.state`: the names the SDK documents.
fn final_state(state: RuntimeState) -> &'static str {
    match state {
        RuntimeState::Succeeded | RuntimeState::Skipped => "SUCCEEDED",
        RuntimeState::Canceled | RuntimeState::Canceling => "CANCELED",
        _ => "FAILED",
    }
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
