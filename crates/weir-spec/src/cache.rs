//! Cache keys: a step's fingerprint, the key weir's cache finds earlier results by.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::ir::{ComponentSpec, ContainerSpec, TaskSpec};

/// The cache key, as KFP's driver builds it (`getFingerPrint` in backend/src/v2/driver/cache.go,
/// `GenerateCacheKey` in backend/src/v2/cacheutils/cache.go): a custom key replaces everything
/// but the component's name; otherwise inputs, input artifact ids, output specs and the
/// container (image, command, args as compiled) are hashed. URIs never enter the key.
pub fn fingerprint(
    task: &TaskSpec,
    container: &ContainerSpec,
    parameters: &Map<String, Value>,
    input_artifact_ids: &BTreeMap<String, Vec<i64>>,
    component: &ComponentSpec,
) -> String {
    let mut hasher = Sha256::new();
    if !task.caching_options.cache_key.is_empty() {
        hasher.update(task.component_ref.name.as_bytes());
        hasher.update([0u8]);
        hasher.update(task.caching_options.cache_key.as_bytes());
    } else {
        let outputs: BTreeMap<&String, &String> =
            component.output_definitions.parameters.iter().map(|(k, v)| (k, &v.parameter_type)).collect();
        let output_artifacts: BTreeMap<&String, &String> =
            component.output_definitions.artifacts.iter().map(|(k, v)| (k, &v.artifact_type.schema_title)).collect();
        let key = json!({
            "inputParameterValues": sorted(&Value::Object(parameters.clone())),
            "inputArtifactNames": sorted(&json!(input_artifact_ids)),
            "outputParametersSpec": outputs,
            "outputArtifactsSpec": output_artifacts,
            "containerSpec": {"image": container.image, "cmdArgs": container.command.iter().chain(container.args.iter()).collect::<Vec<_>>()},
        });
        hasher.update(key.to_string().as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A value with object keys sorted, so equal values hash equally whatever their key order.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::to_value(ordered).unwrap_or(Value::Null)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
