//! Structural validation of a PipelineSpec, before anything is stored.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::{Map, Value};

use crate::SpecError;

/// Schema versions the SDK writes (`2.1.0` since kfp 2.1; `2.0.0` before).
const SCHEMA_VERSIONS: &[&str] = &["2.0.0", "2.1.0"];

fn name_rule() -> Regex {
    // MLMD's rule, as KFP's `ValidatePipelineName` applies it.
    Regex::new(r"^[a-z0-9][a-z0-9-]{0,127}$").expect("static regex")
}

fn err<T>(message: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError::new(message))
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, SpecError> {
    value.as_object().ok_or_else(|| SpecError::new(format!("{what} must be a mapping")))
}

fn optional_object<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a Map<String, Value>>, SpecError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => object(value, what).map(Some),
    }
}

fn str_field<'a>(parent: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    parent.get(key).and_then(Value::as_str)
}

/// Checks a PipelineSpec (protobuf JSON) for everything that would make it unrunnable.
pub fn validate(spec: &Value) -> Result<(), SpecError> {
    let spec = object(spec, "the pipeline spec")?;
    let info = optional_object(spec, "pipelineInfo", "pipelineInfo")?
        .ok_or_else(|| SpecError::new("invalid pipeline spec: pipelineInfo is missing"))?;
    let name = str_field(info, "name").unwrap_or_default();
    if name.is_empty() {
        return err("invalid pipeline spec: pipelineInfo.name is missing");
    }
    if !name_rule().is_match(name) {
        return err(format!(
            "invalid pipeline name {name:?}: it must be at most 128 characters of lowercase letters, digits and '-', starting with a letter or digit"
        ));
    }
    match str_field(spec, "schemaVersion") {
        Some(version) if SCHEMA_VERSIONS.contains(&version) => {}
        Some(version) => {
            return err(format!(
                "unsupported schemaVersion {version:?}: weir runs {} (the kfp 2.x SDK)",
                SCHEMA_VERSIONS.join(", ")
            ))
        }
        None => return err("invalid pipeline spec: schemaVersion is missing"),
    }

    let components = optional_object(spec, "components", "components")?.cloned().unwrap_or_default();
    let executors = match optional_object(spec, "deploymentSpec", "deploymentSpec")? {
        Some(deployment) => {
            optional_object(deployment, "executors", "deploymentSpec.executors")?.cloned().unwrap_or_default()
        }
        None => Map::new(),
    };
    let root = optional_object(spec, "root", "root")?
        .ok_or_else(|| SpecError::new("invalid pipeline spec: root is missing"))?;
    if optional_object(root, "dag", "root.dag")?.is_none() {
        return err("invalid pipeline spec: root has no dag");
    }

    let mut checker = Checker { components: &components, executors: &executors, state: BTreeMap::new() };
    for (component_name, component) in &components {
        checker.component(component_name, component)?;
    }
    checker.dag_of("root", root)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    InProgress,
    Done,
}

struct Checker<'a> {
    components: &'a Map<String, Value>,
    executors: &'a Map<String, Value>,
    /// Components whose DAG has been or is being checked (to find components that contain
    /// themselves).
    state: BTreeMap<String, Visit>,
}

impl Checker<'_> {
    fn component(&mut self, name: &str, component: &Value) -> Result<(), SpecError> {
        match self.state.get(name) {
            Some(Visit::Done) => return Ok(()),
            Some(Visit::InProgress) => {
                return err(format!("invalid pipeline spec: component {name:?} contains itself"))
            }
            None => {}
        }
        self.state.insert(name.to_string(), Visit::InProgress);
        let body = object(component, &format!("component {name:?}"))?;
        match (str_field(body, "executorLabel"), body.get("dag")) {
            (Some(label), None) => {
                if !self.executors.contains_key(label) {
                    return err(format!(
                        "invalid pipeline spec: component {name:?} uses executor {label:?}, which deploymentSpec.executors does not define"
                    ));
                }
            }
            (None, Some(_)) => self.dag_of(name, body)?,
            (Some(_), Some(_)) => {
                return err(format!("invalid pipeline spec: component {name:?} has both an executorLabel and a dag"))
            }
            (None, None) => {
                return err(format!("invalid pipeline spec: component {name:?} has neither an executorLabel nor a dag"))
            }
        }
        self.state.insert(name.to_string(), Visit::Done);
        Ok(())
    }

    fn dag_of(&mut self, owner: &str, component: &Map<String, Value>) -> Result<(), SpecError> {
        let dag = optional_object(component, "dag", &format!("the dag of {owner:?}"))?.cloned().unwrap_or_default();
        let tasks = optional_object(&dag, "tasks", &format!("the tasks of {owner:?}"))?.cloned().unwrap_or_default();
        let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (task_name, task) in &tasks {
            let where_ = format!("task {task_name:?} in {owner:?}");
            let task = object(task, &where_)?;
            let component_ref = optional_object(task, "componentRef", &format!("componentRef of {where_}"))?
                .and_then(|r| str_field(r, "name"))
                .ok_or_else(|| SpecError::new(format!("invalid pipeline spec: {where_} has no componentRef.name")))?;
            let Some(component) = self.components.get(component_ref) else {
                return err(format!("invalid pipeline spec: {where_} references unknown component {component_ref:?}"));
            };
            self.component(component_ref, component)?;

            let mut upstream: BTreeSet<String> = BTreeSet::new();
            if let Some(deps) = task.get("dependentTasks") {
                let deps = deps.as_array().ok_or_else(|| {
                    SpecError::new(format!("invalid pipeline spec: dependentTasks of {where_} must be a list"))
                })?;
                for dep in deps {
                    let dep = dep.as_str().unwrap_or_default();
                    upstream.insert(dep.to_string());
                }
            }
            if let Some(inputs) = optional_object(task, "inputs", &format!("inputs of {where_}"))? {
                for kind in ["parameters", "artifacts"] {
                    let Some(entries) = optional_object(inputs, kind, &format!("inputs.{kind} of {where_}"))? else {
                        continue;
                    };
                    for (input, spec) in entries {
                        for key in ["taskOutputParameter", "taskOutputArtifact", "taskFinalStatus"] {
                            if let Some(producer) =
                                spec.get(key).and_then(|v| v.get("producerTask")).and_then(Value::as_str)
                            {
                                if producer.is_empty() {
                                    return err(format!(
                                        "invalid pipeline spec: input {input:?} of {where_} has an empty producerTask"
                                    ));
                                }
                                upstream.insert(producer.to_string());
                            }
                        }
                    }
                }
            }
            for dep in &upstream {
                if !tasks.contains_key(dep) {
                    return err(format!("invalid pipeline spec: {where_} depends on unknown task {dep:?}"));
                }
                if dep == task_name {
                    return err(format!("invalid pipeline spec: {where_} depends on itself"));
                }
            }
            edges.insert(task_name.as_str(), upstream);
        }
        if let Some(cycle) = find_cycle(&edges) {
            return err(format!(
                "invalid pipeline spec: tasks in {owner:?} form a dependency cycle: {}",
                cycle.join(" -> ")
            ));
        }
        if let Some(outputs) = optional_object(&dag, "outputs", &format!("dag outputs of {owner:?}"))? {
            let mut producers = Vec::new();
            collect_producer_subtasks(&Value::Object(outputs.clone()), &mut producers);
            for producer in producers {
                if !tasks.contains_key(&producer) {
                    return err(format!(
                        "invalid pipeline spec: an output of {owner:?} comes from unknown task {producer:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn collect_producer_subtasks(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "producerSubtask" {
                    if let Some(name) = inner.as_str() {
                        out.push(name.to_string());
                    }
                } else {
                    collect_producer_subtasks(inner, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_producer_subtasks(i, out)),
        _ => {}
    }
}

/// A cycle among tasks, as a path that starts and ends at the same task, if there is one.
fn find_cycle(edges: &BTreeMap<&str, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Finished,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<&str, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Finished) => return None,
            Some(Mark::Active) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Active);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Finished);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(node, edges, &mut marks, &mut path) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "pipelineInfo": {"name": "chain"},
            "schemaVersion": "2.1.0",
            "components": {
                "comp-a": {"executorLabel": "exec-a"},
                "comp-inner": {"dag": {"tasks": {"a": {"componentRef": {"name": "comp-a"}, "taskInfo": {"name": "a"}}},
                                        "outputs": {"parameters": {"Output": {"valueFromParameter": {"producerSubtask": "a", "outputParameterKey": "Output"}}}}}}
            },
            "deploymentSpec": {"executors": {"exec-a": {"container": {"image": "python:3.11"}}}},
            "root": {"dag": {"tasks": {
                "first": {"componentRef": {"name": "comp-a"}},
                "second": {"componentRef": {"name": "comp-inner"}, "dependentTasks": ["first"],
                           "inputs": {"parameters": {"x": {"taskOutputParameter": {"producerTask": "first", "outputParameterKey": "Output"}}}}}
            }}}
        })
    }

    #[test]
    fn accepts_a_valid_spec() {
        validate(&spec()).unwrap();
    }

    fn refused(mutate: impl FnOnce(&mut Value), expect: &str) {
        let mut s = spec();
        mutate(&mut s);
        let error = validate(&s).unwrap_err();
        assert!(error.0.contains(expect), "{error} does not mention {expect:?}");
    }

    #[test]
    fn refuses_broken_specs() {
        refused(|s| s["pipelineInfo"]["name"] = json!("My Pipeline"), "invalid pipeline name");
        refused(|s| s["pipelineInfo"]["name"] = json!("a".repeat(129)), "invalid pipeline name");
        refused(|s| s.as_object_mut().unwrap().remove("pipelineInfo").map(|_| ()).unwrap_or(()), "pipelineInfo");
        refused(|s| s["schemaVersion"] = json!("3.0.0"), "schemaVersion");
        refused(|s| s.as_object_mut().unwrap().remove("root").map(|_| ()).unwrap_or(()), "root");
        refused(
            |s| s["root"]["dag"]["tasks"]["first"]["componentRef"]["name"] = json!("comp-nope"),
            "unknown component",
        );
        refused(|s| s["components"]["comp-a"]["executorLabel"] = json!("exec-nope"), "exec-nope");
        refused(|s| s["root"]["dag"]["tasks"]["second"]["dependentTasks"] = json!(["ghost"]), "unknown task");
        refused(|s| s["root"]["dag"]["tasks"]["first"]["dependentTasks"] = json!(["second"]), "cycle");
        refused(
            |s| {
                s["components"]["comp-inner"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"]
                    ["producerSubtask"] = json!("zz")
            },
            "unknown task",
        );
        refused(
            |s| s["components"]["comp-inner"]["dag"]["tasks"]["loop"] = json!({"componentRef": {"name": "comp-inner"}}),
            "contains itself",
        );
    }
}
