//! The Kubernetes platform configuration kfp-kubernetes writes beside a pipeline
//! (`platforms.kubernetes.deploymentSpec.executors.<executor>`: `KubernetesExecutorConfig` in
//! kubernetes_platform/proto/kubernetes_executor_config.proto of kubeflow/pipelines), and what
//! the local driver makes of it.
//!
//! Steps that run as local processes get: secrets and config maps as environment variables (from
//! weir's own store of them), pod labels and annotations (recorded with the step, and readable
//! through `fieldPathAsEnv`), the deadline (`activeDeadlineSeconds`, enforced), and the
//! scheduling hints that mean nothing on one host (node selectors, affinities, tolerations,
//! image pull secrets and policy), accepted and ignored. What needs a volume mounted at a path
//! of the step's own file system cannot be given to a process sharing the host's, and is
//! refused when the run is created ([`unsupported`]), before anything runs.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::ir::InputParameter;
use crate::SpecError;

/// The parts of a PlatformSpec weir reads.
#[derive(Debug, Clone, Default)]
pub struct PlatformConfig {
    /// By executor label.
    pub executors: BTreeMap<String, ExecutorConfig>,
}

impl PlatformConfig {
    /// Reads a run's platform spec (`{"platforms": {"kubernetes": …}}`); none is an empty one.
    pub fn parse(platform_spec: Option<&Value>) -> Result<Self, SpecError> {
        let Some(executors) = platform_spec
            .and_then(|p| p.get("platforms"))
            .and_then(|p| p.get("kubernetes"))
            .and_then(|k| k.get("deploymentSpec"))
            .and_then(|d| d.get("executors"))
        else {
            return Ok(Self::default());
        };
        let executors: BTreeMap<String, ExecutorConfig> = serde_json::from_value(executors.clone())
            .map_err(|e| SpecError::new(format!("the Kubernetes platform spec cannot be read: {e}")))?;
        Ok(Self { executors })
    }

    pub fn executor(&self, label: &str) -> Option<&ExecutorConfig> {
        self.executors.get(label)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecutorConfig {
    pub secret_as_env: Vec<SecretAsEnv>,
    pub secret_as_volume: Vec<NamedMount>,
    pub config_map_as_env: Vec<ConfigMapAsEnv>,
    pub config_map_as_volume: Vec<NamedMount>,
    pub pvc_mount: Vec<PvcMount>,
    pub empty_dir_mounts: Vec<EmptyDirMount>,
    pub generic_ephemeral_volume: Vec<Value>,
    pub field_path_as_env: Vec<FieldPathAsEnv>,
    pub pod_metadata: PodMetadata,
    /// int64, which protobuf's JSON writes as a string.
    pub active_deadline_seconds: Option<Value>,
    pub init_containers: Vec<Value>,
    pub enabled_shared_memory: Option<Value>,
    // Scheduling on a cluster: nothing to choose between on one host.
    pub node_selector: Option<Value>,
    pub node_affinity: Vec<Value>,
    pub pod_affinity: Vec<Value>,
    pub tolerations: Vec<Value>,
    pub image_pull_secret: Vec<Value>,
    pub image_pull_policy: Option<String>,
    pub security_context: Option<Value>,
}

/// The name of a secret, config map or volume: given by an input parameter spec (a constant,
/// a pipeline input, an upstream output), or by the older literal field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretAsEnv {
    pub secret_name: String,
    pub secret_name_parameter: Option<InputParameter>,
    pub key_to_env: Vec<SecretKeyToEnv>,
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretKeyToEnv {
    pub secret_key: String,
    pub env_var: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapAsEnv {
    pub config_map_name: String,
    pub config_map_name_parameter: Option<InputParameter>,
    pub key_to_env: Vec<ConfigMapKeyToEnv>,
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapKeyToEnv {
    pub config_map_key: String,
    pub env_var: String,
}

/// A secret or config map mounted as files.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamedMount {
    pub mount_path: String,
    pub optional: Option<bool>,
    #[serde(alias = "configMapName")]
    pub secret_name: String,
    #[serde(alias = "configMapNameParameter")]
    pub secret_name_parameter: Option<InputParameter>,
}

impl NamedMount {
    pub fn name_input(&self) -> NameInput<'_> {
        NameInput { literal: &self.secret_name, parameter: self.secret_name_parameter.as_ref() }
    }

    /// Named by an input of the pipeline (or of a DAG), which may be an optional input left
    /// out: KFP skips the mount then (`extendPodSpecPatch` in backend/src/v2/driver/k8s.go),
    /// so whether it can run is known only when the step is planned.
    pub fn named_by_input(&self) -> bool {
        self.secret_name_parameter.as_ref().is_some_and(|p| p.component_input_parameter.is_some())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PvcMount {
    pub mount_path: String,
    pub sub_path: String,
    pub pvc_name_parameter: Option<InputParameter>,
    // The older spellings of the name, one of which the SDK still writes beside the new one.
    pub task_output_parameter: Option<crate::ir::TaskOutputParameter>,
    pub constant: Option<Value>,
    pub component_input_parameter: Option<String>,
}

impl PvcMount {
    /// Where the PVC's name comes from, in the current spelling or the older one.
    pub fn name_parameter(&self) -> InputParameter {
        if let Some(parameter) = &self.pvc_name_parameter {
            return parameter.clone();
        }
        InputParameter {
            task_output_parameter: self.task_output_parameter.clone(),
            component_input_parameter: self.component_input_parameter.clone(),
            runtime_value: self
                .constant
                .clone()
                .map(|c| crate::ir::RuntimeValue { constant: Some(c), constant_value: None }),
            ..InputParameter::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmptyDirMount {
    pub volume_name: String,
    pub mount_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FieldPathAsEnv {
    pub name: String,
    pub field_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl SecretAsEnv {
    pub fn name_input(&self) -> NameInput<'_> {
        NameInput { literal: &self.secret_name, parameter: self.secret_name_parameter.as_ref() }
    }
}

impl ConfigMapAsEnv {
    pub fn name_input(&self) -> NameInput<'_> {
        NameInput { literal: &self.config_map_name, parameter: self.config_map_name_parameter.as_ref() }
    }
}

/// Where a secret's or config map's name comes from.
#[derive(Debug, Clone, Copy)]
pub struct NameInput<'a> {
    pub literal: &'a str,
    pub parameter: Option<&'a InputParameter>,
}

impl ExecutorConfig {
    /// Every path the step has a volume mounted at.
    pub fn mount_paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.pvc_mount.iter().map(|m| m.mount_path.as_str()).collect();
        paths.extend(self.empty_dir_mounts.iter().map(|m| m.mount_path.as_str()));
        paths.extend(self.secret_as_volume.iter().map(|m| m.mount_path.as_str()));
        paths.extend(self.config_map_as_volume.iter().map(|m| m.mount_path.as_str()));
        paths
    }

    /// The sibling tasks whose outputs name a secret or config map: the step waits for them
    /// (the SDK writes no `dependentTasks` for these).
    pub fn producers(&self) -> Vec<String> {
        let names = self.secret_as_env.iter().map(SecretAsEnv::name_input);
        let names = names.chain(self.config_map_as_env.iter().map(ConfigMapAsEnv::name_input));
        let names = names.chain(self.secret_as_volume.iter().map(NamedMount::name_input));
        let names = names.chain(self.config_map_as_volume.iter().map(NamedMount::name_input));
        let mut producers: Vec<String> = names
            .filter_map(|n| n.parameter?.task_output_parameter.as_ref().map(|p| p.producer_task.clone()))
            .collect();
        producers.extend(
            self.pvc_mount.iter().filter_map(|m| m.name_parameter().task_output_parameter.map(|p| p.producer_task)),
        );
        producers
    }

    /// The step's deadline in seconds (`activeDeadlineSeconds`), if it has one.
    pub fn deadline_seconds(&self) -> Result<Option<u64>, SpecError> {
        let Some(value) = &self.active_deadline_seconds else { return Ok(None) };
        let seconds = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match seconds {
            // `set_timeout(task, 0)` takes the deadline away.
            Some(0) => Ok(None),
            Some(s) => Ok(Some(s)),
            None => {
                Err(SpecError::new(format!("activeDeadlineSeconds must be a whole number of seconds, got {value}")))
            }
        }
    }

    /// The value a `fieldPathAsEnv` field path has for this step, as Kubernetes' downward API
    /// gives it: a label or annotation the step does not have is the empty string.
    pub fn field_path_value(&self, field_path: &str, pod: &PodNames) -> Result<String, SpecError> {
        let quoted = |prefix: &str| {
            field_path
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("']"))
                .and_then(|rest| rest.strip_prefix('\''))
                .map(str::to_string)
        };
        if let Some(key) = quoted("metadata.labels[") {
            return Ok(self.pod_metadata.labels.get(&key).cloned().unwrap_or_default());
        }
        if let Some(key) = quoted("metadata.annotations[") {
            return Ok(self.pod_metadata.annotations.get(&key).cloned().unwrap_or_default());
        }
        Ok(match field_path {
            "metadata.name" => pod.name.clone(),
            "metadata.namespace" => pod.namespace.clone(),
            "metadata.uid" => pod.uid.clone(),
            "spec.nodeName" => pod.node.clone(),
            "spec.serviceAccountName" => pod.service_account.clone(),
            "status.hostIP" | "status.podIP" | "status.hostIPs" | "status.podIPs" => "127.0.0.1".into(),
            other => return Err(SpecError::new(format!("fieldPathAsEnv: unsupported field path {other:?}"))),
        })
    }
}

/// What stands for a pod's identity when a step runs as a local process.
#[derive(Debug, Clone, Default)]
pub struct PodNames {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node: String,
    pub service_account: String,
}

/// What the local driver cannot honour in a run's platform spec, each with the executor and
/// why: checked when a run is created, so such a run is refused before anything is written.
/// `mounts`: whether steps can have mount namespaces of their own (weir runs as root); then
/// volumes at paths are mounted for the step alone, and only what needs a cluster is refused.
pub fn unsupported(config: &PlatformConfig, mounts: bool) -> Vec<String> {
    config.executors.iter().flat_map(|(label, executor)| executor.unsupported(label, mounts)).collect()
}

/// What a cluster driver cannot honour in a run's platform spec: only what is malformed (a
/// deadline that is not a number of seconds); everything else is a pod's own.
pub fn unsupported_on_cluster(config: &PlatformConfig) -> Vec<String> {
    config
        .executors
        .iter()
        .filter_map(|(label, executor)| executor.deadline_seconds().err().map(|e| format!("executor {label:?}: {e}")))
        .collect()
}

impl ExecutorConfig {
    /// What of this executor's configuration the local driver cannot honour (see [`unsupported`]).
    pub fn unsupported(&self, label: &str, can_mount: bool) -> Vec<String> {
        let executor = self;
        let mut problems = Vec::new();
        let mut mounts: Vec<(&str, &str)> = Vec::new();
        if can_mount {
            for path in self.mount_paths() {
                if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
                    problems
                        .push(format!("executor {label:?} mounts a volume at {path:?}, which is not an absolute path"));
                }
            }
        }
        // A secret or config map named by an input is checked when the step is planned: left
        // out, its mount is skipped, as KFP skips it.
        let fixed = |m: &&NamedMount| !m.named_by_input();
        mounts.extend(
            executor.secret_as_volume.iter().filter(fixed).map(|m| ("a secret as a volume", m.mount_path.as_str())),
        );
        mounts.extend(
            executor
                .config_map_as_volume
                .iter()
                .filter(fixed)
                .map(|m| ("a config map as a volume", m.mount_path.as_str())),
        );
        mounts.extend(executor.pvc_mount.iter().map(|m| ("a PVC", m.mount_path.as_str())));
        mounts.extend(executor.empty_dir_mounts.iter().map(|m| ("an empty dir", m.mount_path.as_str())));
        for (what, path) in mounts.into_iter().filter(|_| !can_mount) {
            problems.push(format!(
                "executor {label:?} mounts {what} at {path}: the local driver runs steps as processes on this \
                 host's file system, where it cannot mount a volume at a path of the step's choosing without \
                 mount namespaces, which weir can make only when it runs as root"
            ));
        }
        if !executor.generic_ephemeral_volume.is_empty() {
            problems.push(format!(
                "executor {label:?} asks for a generic ephemeral volume, which the local driver cannot mount"
            ));
        }
        if !executor.init_containers.is_empty() {
            problems.push(format!(
                "executor {label:?} has init containers, which the local driver does not run (they need their images)"
            ));
        }
        if let Err(e) = executor.deadline_seconds() {
            problems.push(format!("executor {label:?}: {e}"));
        }
        for field in &executor.field_path_as_env {
            if let Err(e) = executor.field_path_value(&field.field_path, &PodNames::default()) {
                problems.push(format!("executor {label:?}: {e}"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(executors: Value) -> PlatformConfig {
        PlatformConfig::parse(Some(&json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}})))
            .unwrap()
    }

    #[test]
    fn reads_what_kfp_kubernetes_writes() {
        let c = config(json!({"exec-comp": {
            "secretAsEnv": [{
                "keyToEnv": [{"envVar": "USER_NAME", "secretKey": "username"}],
                "optional": false,
                "secretNameParameter": {"taskOutputParameter": {"producerTask": "gen", "outputParameterKey": "out"}}
            }],
            "podMetadata": {"labels": {"l": "1"}, "annotations": {"a": "x"}},
            "fieldPathAsEnv": [{"name": "A", "fieldPath": "metadata.annotations['a']"}],
            "activeDeadlineSeconds": "20",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        }}));
        let e = c.executor("exec-comp").unwrap();
        assert_eq!(e.producers(), ["gen"]);
        assert_eq!(e.deadline_seconds().unwrap(), Some(20));
        let pod = PodNames::default();
        assert_eq!(e.field_path_value("metadata.annotations['a']", &pod).unwrap(), "x");
        assert_eq!(e.field_path_value("metadata.labels['l']", &pod).unwrap(), "1");
        assert_eq!(e.field_path_value("metadata.labels['missing']", &pod).unwrap(), "");
        assert!(e.field_path_value("spec.bogus", &pod).is_err());
        assert!(unsupported(&c, false).is_empty(), "{:?}", unsupported(&c, false));
        assert!(PlatformConfig::parse(None).unwrap().executors.is_empty());
    }

    #[test]
    fn volumes_at_paths_are_mounted_where_steps_can_have_mounts() {
        let c = config(json!({"exec-a": {"pvcMount": [{
            "mountPath": "/data",
            "taskOutputParameter": {"producerTask": "createpvc", "outputParameterKey": "name"}
        }]}}));
        assert!(unsupported(&c, true).is_empty());
        assert_eq!(c.executor("exec-a").unwrap().producers(), ["createpvc"]);
        let c = config(json!({"exec-a": {"emptyDirMounts": [{"volumeName": "v", "mountPath": "relative"}]}}));
        assert!(unsupported(&c, true)[0].contains("not an absolute path"));
    }

    #[test]
    fn volumes_at_paths_are_refused_with_the_reason() {
        let c = config(
            json!({"exec-a": {"pvcMount": [{"mountPath": "/data", "pvcNameParameter": {"runtimeValue": {"constant": "p"}}}]}}),
        );
        let problems = unsupported(&c, false);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("exec-a") && problems[0].contains("/data") && problems[0].contains("PVC"));
        let c = config(json!({"exec-a": {"activeDeadlineSeconds": "soon"}}));
        assert!(unsupported(&c, false)[0].contains("activeDeadlineSeconds"));
        let c = config(json!({"exec-a": {"activeDeadlineSeconds": "0"}}));
        assert!(unsupported(&c, false).is_empty());
        assert_eq!(c.executor("exec-a").unwrap().deadline_seconds().unwrap(), None);
    }
}
