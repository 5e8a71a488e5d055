//! A typed view of the PipelineSpec IR (protobuf JSON, camelCase), as much as execution needs.
//! Unknown fields are ignored: the stored spec keeps everything, this is only how it is read.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::SpecError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineSpec {
    pub pipeline_info: PipelineInfo,
    pub components: BTreeMap<String, ComponentSpec>,
    pub deployment_spec: DeploymentSpec,
    pub root: ComponentSpec,
    pub default_pipeline_root: Option<String>,
    pub schema_version: String,
    pub sdk_version: String,
    /// The run's Kubernetes platform configuration (kept beside the spec, not in it).
    #[serde(skip)]
    pub platform: crate::platform::PlatformConfig,
}

impl PipelineSpec {
    pub fn parse(value: &Value) -> Result<Self, SpecError> {
        serde_json::from_value(value.clone())
            .map_err(|e| SpecError::new(format!("the pipeline spec cannot be read: {e}")))
    }

    pub fn component(&self, name: &str) -> Result<&ComponentSpec, SpecError> {
        self.components.get(name).ok_or_else(|| SpecError::new(format!("unknown component {name:?}")))
    }

    pub fn executor(&self, label: &str) -> Result<&ExecutorSpec, SpecError> {
        self.deployment_spec.executors.get(label).ok_or_else(|| SpecError::new(format!("unknown executor {label:?}")))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineInfo {
    pub name: String,
    pub display_name: String,
    pub description: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ComponentSpec {
    pub input_definitions: Interface,
    pub output_definitions: Interface,
    pub executor_label: Option<String>,
    pub dag: Option<DagSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Interface {
    pub parameters: BTreeMap<String, ParameterDef>,
    pub artifacts: BTreeMap<String, ArtifactDef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterDef {
    pub parameter_type: String,
    pub default_value: Option<Value>,
    pub is_optional: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactType {
    pub schema_title: String,
    pub schema_version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactDef {
    pub artifact_type: ArtifactType,
    pub is_artifact_list: bool,
    pub is_optional: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DagSpec {
    pub tasks: BTreeMap<String, TaskSpec>,
    pub outputs: DagOutputs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DagOutputs {
    pub parameters: BTreeMap<String, DagOutputParameter>,
    pub artifacts: BTreeMap<String, DagOutputArtifact>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DagOutputParameter {
    pub value_from_parameter: Option<ParameterSelector>,
    pub value_from_oneof: Option<OneOfSelector>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OneOfSelector {
    pub parameter_selectors: Vec<ParameterSelector>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterSelector {
    pub producer_subtask: String,
    pub output_parameter_key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DagOutputArtifact {
    pub artifact_selectors: Vec<ArtifactSelector>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactSelector {
    pub producer_subtask: String,
    pub output_artifact_key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskSpec {
    pub task_info: TaskInfo,
    pub inputs: TaskInputs,
    pub dependent_tasks: Vec<String>,
    pub caching_options: CachingOptions,
    pub component_ref: ComponentRef,
    pub trigger_policy: TriggerPolicy,
    pub parameter_iterator: Option<ParameterIterator>,
    pub artifact_iterator: Option<ArtifactIterator>,
    pub iterator_policy: IteratorPolicy,
    pub retry_policy: Option<RetryPolicy>,
}

impl TaskSpec {
    /// Every sibling this task waits for: explicit dependencies and data producers.
    pub fn upstream(&self) -> Vec<String> {
        let mut names: Vec<String> = self.dependent_tasks.clone();
        for input in self.inputs.parameters.values() {
            if let Some(p) = &input.task_output_parameter {
                names.push(p.producer_task.clone());
            }
            if let Some(p) = &input.task_final_status {
                names.push(p.producer_task.clone());
            }
        }
        for input in self.inputs.artifacts.values() {
            if let Some(p) = &input.task_output_artifact {
                names.push(p.producer_task.clone());
            }
        }
        names.sort();
        names.dedup();
        names
    }

    pub fn runs_after_failures(&self) -> bool {
        self.trigger_policy.strategy == "ALL_UPSTREAM_TASKS_COMPLETED"
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskInfo {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ComponentRef {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CachingOptions {
    pub enable_cache: bool,
    pub cache_key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TriggerPolicy {
    pub condition: String,
    pub strategy: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskInputs {
    pub parameters: BTreeMap<String, InputParameter>,
    pub artifacts: BTreeMap<String, InputArtifact>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InputParameter {
    pub component_input_parameter: Option<String>,
    pub task_output_parameter: Option<TaskOutputParameter>,
    pub runtime_value: Option<RuntimeValue>,
    pub task_final_status: Option<TaskFinalStatus>,
    pub parameter_expression_selector: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskOutputParameter {
    pub producer_task: String,
    pub output_parameter_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeValue {
    pub constant: Option<Value>,
    /// The pre-2.0 spelling.
    pub constant_value: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskFinalStatus {
    pub producer_task: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InputArtifact {
    pub task_output_artifact: Option<TaskOutputArtifact>,
    pub component_input_artifact: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskOutputArtifact {
    pub producer_task: String,
    pub output_artifact_key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterIterator {
    pub item_input: String,
    pub items: ParameterItems,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterItems {
    pub raw: Option<String>,
    pub input_parameter: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactIterator {
    pub item_input: String,
    pub items: ArtifactItems,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactItems {
    pub input_artifact: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IteratorPolicy {
    pub parallelism_limit: i64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryPolicy {
    pub max_retry_count: i64,
    pub backoff_duration: Option<String>,
    pub backoff_factor: Option<f64>,
    pub backoff_max_duration: Option<String>,
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1 for the first retry), as KFP computes it:
    /// duration × factor^(retry−1), capped by the maximum (proto defaults: factor 2, max 1 h).
    pub fn backoff_ms(&self, retry: i64) -> i64 {
        let base = self.backoff_duration.as_deref().and_then(parse_duration_ms).unwrap_or(0) as f64;
        let factor = self.backoff_factor.filter(|f| *f > 0.0).unwrap_or(2.0);
        let max = self.backoff_max_duration.as_deref().and_then(parse_duration_ms).unwrap_or(3_600_000) as f64;
        let exponent = (retry - 1).clamp(0, 30) as i32;
        (base * factor.powi(exponent)).min(max) as i64
    }
}

/// Parses a protobuf duration string (`"5s"`, `"1.5s"`, `"0s"`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds >= 0.0).then(|| (seconds * 1000.0).round() as i64)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentSpec {
    pub executors: BTreeMap<String, ExecutorSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecutorSpec {
    pub container: Option<ContainerSpec>,
    pub importer: Option<ImporterSpec>,
    pub resolver: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerSpec {
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub resources: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImporterSpec {
    pub artifact_uri: ImporterUri,
    pub type_schema: ArtifactType,
    pub metadata: Option<Value>,
    pub reimport: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImporterUri {
    pub constant: Option<Value>,
    pub runtime_parameter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_kfp() {
        let p = RetryPolicy {
            max_retry_count: 3,
            backoff_duration: Some("5s".into()),
            backoff_factor: Some(2.0),
            backoff_max_duration: Some("60s".into()),
        };
        assert_eq!(p.backoff_ms(1), 5_000);
        assert_eq!(p.backoff_ms(2), 10_000);
        assert_eq!(p.backoff_ms(5), 60_000);
        assert_eq!(RetryPolicy::default().backoff_ms(1), 0);
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("x"), None);
    }
}
