//! The Job of one step attempt, as KFP's driver shapes a step's pod (`initPodSpecPatch` and
//! `extendPodSpecPatch` in backend/src/v2/driver/): the component's image with the launcher in
//! front of its command, the IR's resources, and every kfp-kubernetes platform feature.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use weir_engine::driver::VolumeSource;
use weir_engine::driver::{PodRequest, ProcessSpec};
use weir_store::StepConfigKind;

use crate::Settings;

/// Where the launcher's binary is in the step's pod (an emptyDir the init container fills).
pub const LAUNCHER_DIR: &str = "/weir-launcher";
/// The main container's name (KFP's is `main` too).
pub const MAIN: &str = "main";
pub const LABEL_MANAGED: &str = "app.kubernetes.io/managed-by";
pub const LABEL_DEPLOYMENT: &str = "pipelines.weir.dev/deployment";
pub const LABEL_RUN: &str = "pipelines.weir.dev/run-id";
pub const LABEL_TASK: &str = "pipelines.weir.dev/task-id";
pub const LABEL_ATTEMPT: &str = "pipelines.weir.dev/attempt";

/// The Job of a task's attempt: the same for every weir that asks, so two weirs that both
/// believe they should start an attempt create one Job (the second create is refused), and a
/// restarted weir finds it. Within the 63 characters of a label value (`job-name`), lowercase.
pub fn job_name(task_id: &str, attempt: i64) -> String {
    let digest = Sha256::digest(task_id.as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("weir-{hex}-{attempt}")
}

/// The attempt's number from its folder (`…/<task id>.<attempt>`, `layout::attempt_dir`), for
/// a weir that knows an attempt only by its folder.
pub fn attempt_of(workdir: &Path) -> i64 {
    let name = workdir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.rsplit('.').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Where the attempt is staged in the object store (`in.tar`, `out.tar`, `exit`).
pub fn stage_prefix(task_id: &str, attempt: i64) -> String {
    format!("{}attempts/{task_id}/{attempt}/", weir_artifacts::RESERVED_PREFIX)
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
pub(crate) fn label_value(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).take(63).collect();
    cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The folders of the attempt the step sees elsewhere (an object store's artifacts at `/s3/…`):
/// inside the attempt's folder for weir, at their own path in the pod.
pub fn staged_maps(spec: &ProcessSpec) -> Vec<(PathBuf, PathBuf)> {
    spec.binds.iter().filter(|(folder, _)| folder.starts_with(&spec.workdir)).cloned().collect()
}

/// The Job for one attempt.
pub fn job(settings: &Settings, spec: &ProcessSpec, pod: &PodRequest) -> Result<Job, String> {
    let name = job_name(&spec.task_id, pod.attempt);
    let stage = stage_prefix(&spec.task_id, pod.attempt);
    let mut labels = BTreeMap::from([
        (LABEL_MANAGED.to_string(), "weir".to_string()),
        (LABEL_DEPLOYMENT.to_string(), label_value(&settings.deployment)),
        (LABEL_RUN.to_string(), label_value(&pod.run_id)),
        (LABEL_TASK.to_string(), label_value(&spec.task_id)),
        (LABEL_ATTEMPT.to_string(), pod.attempt.to_string()),
    ]);
    let platform = &pod.platform;
    let mut pod_labels = platform.pod_metadata.labels.clone();
    pod_labels.extend(labels.clone());
    let mut annotations = platform.pod_metadata.annotations.clone();
    annotations.insert("pipelines.weir.dev/task-name".into(), pod.task_name.clone());
    labels.retain(|_, v| !v.is_empty());

    let mut volumes =
        vec![json!({"name": "weir-launcher", "emptyDir": {}}), json!({"name": "weir-attempt", "emptyDir": {}})];
    let mut mounts = vec![
        json!({"name": "weir-launcher", "mountPath": LAUNCHER_DIR, "readOnly": true}),
        json!({"name": "weir-attempt", "mountPath": spec.workdir.display().to_string()}),
    ];
    let mut launcher_args = vec![
        "launcher".to_string(),
        "run".into(),
        "--stage".into(),
        stage.clone(),
        "--workdir".into(),
        spec.workdir.display().to_string(),
        "--log".into(),
        spec.log_path.display().to_string(),
    ];
    for (i, (folder, seen_at)) in staged_maps(spec).into_iter().enumerate() {
        volumes.push(json!({"name": format!("weir-mapped-{i}"), "emptyDir": {}}));
        mounts.push(json!({"name": format!("weir-mapped-{i}"), "mountPath": seen_at.display().to_string()}));
        launcher_args.push("--map".into());
        launcher_args.push(format!("{}={}", folder.display(), seen_at.display()));
    }
    for (i, volume) in pod.volumes.iter().enumerate() {
        // An empty dir keeps its own name: init containers mount it by that name.
        let name = match &volume.source {
            VolumeSource::EmptyDir { name } => name.clone(),
            _ => format!("v{i}"),
        };
        let (source, sub_path) = match &volume.source {
            VolumeSource::Secret { name: secret, optional } => {
                (json!({"secret": {"secretName": secret, "optional": optional}}), "")
            }
            VolumeSource::ConfigMap { name: map, optional } => {
                (json!({"configMap": {"name": map, "optional": optional}}), "")
            }
            VolumeSource::Claim { name: claim, sub_path } => {
                (json!({"persistentVolumeClaim": {"claimName": claim}}), sub_path.as_str())
            }
            VolumeSource::EmptyDir { name: _ } => (json!({"emptyDir": {}}), ""),
        };
        let mut entry = source;
        entry["name"] = json!(name);
        volumes.push(entry);
        let mut mount = json!({"name": name, "mountPath": volume.mount_path});
        if !sub_path.is_empty() {
            mount["subPath"] = json!(sub_path);
        }
        mounts.push(mount);
    }
    for (i, ephemeral) in platform.generic_ephemeral_volume.iter().enumerate() {
        let text = |key: &str| ephemeral.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let name = format!("ephemeral-{i}");
        let mut claim_spec = json!({
            "accessModes": ephemeral.get("accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "resources": {"requests": {"storage": text("size")}},
        });
        let default_class = ephemeral.get("defaultStorageClass").and_then(Value::as_bool).unwrap_or(false);
        if !default_class && !text("storageClassName").is_empty() {
            claim_spec["storageClassName"] = json!(text("storageClassName"));
        }
        let mut template = json!({"spec": claim_spec});
        if let Some(metadata) = ephemeral.get("metadata") {
            template["metadata"] = metadata.clone();
        }
        volumes.push(json!({"name": name, "ephemeral": {"volumeClaimTemplate": template}}));
        mounts.push(json!({"name": name, "mountPath": text("mountPath")}));
    }
    if let Some(shm) = &platform.enabled_shared_memory {
        let mut empty = json!({"medium": "Memory"});
        if let Some(size) = shm.get("size").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            empty["sizeLimit"] = json!(size);
        }
        volumes.push(json!({"name": "weir-shm", "emptyDir": empty}));
        mounts.push(json!({"name": "weir-shm", "mountPath": "/dev/shm"}));
    }

    let mut env: Vec<Value> = Vec::new();
    let mut set = |name: &str, value: Value| {
        env.retain(|e| e["name"] != name);
        let mut entry = value;
        entry["name"] = json!(name);
        env.push(entry);
    };
    for (name, value) in settings.step_env.iter().chain(&spec.env) {
        set(name, json!({"value": value}));
    }
    for wanted in &pod.config_env {
        let (kind, key_name) = match wanted.kind {
            StepConfigKind::Secret => ("secretKeyRef", "name"),
            StepConfigKind::ConfigMap => ("configMapKeyRef", "name"),
        };
        set(
            &wanted.env_var,
            json!({"valueFrom": {kind: {key_name: wanted.name, "key": wanted.key, "optional": wanted.optional}}}),
        );
    }
    set("KFP_POD_NAME", json!({"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}));
    set("KFP_POD_UID", json!({"valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}));
    for field in &platform.field_path_as_env {
        set(&field.name, json!({"valueFrom": {"fieldRef": {"fieldPath": field.field_path}}}));
    }
    set("WEIR_LAUNCHER_STORE", json!({"value": settings.store_url}));
    if let Some(endpoint) = &settings.store_endpoint {
        set("WEIR_LAUNCHER_S3_ENDPOINT", json!({"value": endpoint}));
    }

    let mut command = vec![format!("{LAUNCHER_DIR}/weir")];
    command.extend(launcher_args);
    command.push("--".into());
    command.extend(spec.argv.iter().cloned());
    let mut main = json!({
        "name": MAIN,
        "image": pod.image,
        "command": command,
        "env": env,
        "volumeMounts": mounts,
        "resources": resources(settings, pod.resources.as_ref())?,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    if let Some(secret) = &settings.store_secret {
        // The store's credentials, prefixed so the launcher can keep them from the step.
        main["envFrom"] = json!([{"prefix": crate::launcher::SECRET_PREFIX, "secretRef": {"name": secret}}]);
    }
    if let Some(policy) = platform.image_pull_policy.as_ref().filter(|p| !p.is_empty()) {
        main["imagePullPolicy"] = json!(policy);
    }
    if let Some(context) = platform.security_context.as_ref().and_then(security_context) {
        main["securityContext"] = context;
    }

    let mut init = vec![json!({
        "name": "weir-launcher",
        "image": settings.launcher_image,
        "args": ["launcher", "install", LAUNCHER_DIR],
        "volumeMounts": [{"name": "weir-launcher", "mountPath": LAUNCHER_DIR}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
    })];
    if let Some(policy) = &settings.launcher_pull_policy {
        init[0]["imagePullPolicy"] = json!(policy);
    }
    for extra in &platform.init_containers {
        init.push(init_container(extra));
    }

    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "enableServiceLinks": false,
        "initContainers": init,
        "containers": [main],
        "volumes": volumes,
    });
    if let Some(account) = &settings.service_account {
        pod_spec["serviceAccountName"] = json!(account);
    }
    if let Some(seconds) = pod.deadline_seconds {
        pod_spec["activeDeadlineSeconds"] = json!(seconds);
    }
    // The JSON form (`add_node_selector_json`) takes precedence over the labels, as in KFP.
    let selector = platform.node_selector.as_ref().and_then(|s| {
        s.pointer("/nodeSelectorJson/runtimeValue/constant").or_else(|| s.get("labels")).filter(|l| is_nonempty(l))
    });
    if let Some(selector) = selector {
        pod_spec["nodeSelector"] = selector.clone();
    }
    let tolerations: Vec<Value> = platform.tolerations.iter().map(toleration).collect();
    if !tolerations.is_empty() {
        pod_spec["tolerations"] = json!(tolerations);
    }
    if let Some(affinity) = affinity(&platform.node_affinity, &platform.pod_affinity) {
        pod_spec["affinity"] = affinity;
    }
    let pull_secrets: Vec<Value> = platform
        .image_pull_secret
        .iter()
        .filter_map(|s| {
            let name = s
                .get("secretName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .or_else(|| s.pointer("/secretNameParameter/runtimeValue/constant").and_then(Value::as_str))?;
            Some(json!({"name": name}))
        })
        .collect();
    if !pull_secrets.is_empty() {
        pod_spec["imagePullSecrets"] = json!(pull_secrets);
    }

    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels, "annotations": annotations},
        "spec": {
            // weir does the retries, each as a new Job.
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    });
    strictly(job)
}

/// The Job as Kubernetes' typed object, refused if any field of it is not Kubernetes' (a
/// field the schema does not have would be dropped silently on the way).
fn strictly(job: Value) -> Result<Job, String> {
    let typed: Job = serde_json::from_value(job.clone())
        .map_err(|e| format!("the step's Job does not fit Kubernetes' schema: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match dropped(&job, &back, "") {
        Some(path) => Err(format!("the step's Job has a field Kubernetes does not know: {path}")),
        None => Ok(typed),
    }
}

/// kfp-kubernetes' CreatePVC as a claim, from the stub's inputs (`CreatePVC` in
/// kubernetes_platform/python/kfp/kubernetes/volume.py): access modes, size, a storage class
/// (the cluster's default when none is named), a volume to bind, annotations.
pub fn claim(
    settings: &Settings,
    name: &str,
    inputs: &Map<String, Value>,
) -> Result<k8s_openapi::api::core::v1::PersistentVolumeClaim, String> {
    let text = |key: &str| inputs.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let size = text("size").ok_or("CreatePVC: size is required")?;
    let modes = inputs.get("access_modes").cloned().filter(|m| m.as_array().is_some_and(|a| !a.is_empty()));
    let mut spec = json!({
        "accessModes": modes.ok_or("CreatePVC: access_modes is required")?,
        "resources": {"requests": {"storage": size}},
    });
    if let Some(class) = text("storage_class_name") {
        spec["storageClassName"] = json!(class);
    }
    if let Some(volume) = text("volume_name") {
        spec["volumeName"] = json!(volume);
    }
    let labels = json!({LABEL_MANAGED: "weir", LABEL_DEPLOYMENT: label_value(&settings.deployment)});
    let mut metadata = json!({"name": name, "namespace": settings.namespace, "labels": labels});
    if let Some(annotations) = inputs.get("annotations").filter(|a| is_nonempty(a)) {
        metadata["annotations"] = annotations.clone();
    }
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec});
    serde_json::from_value(claim).map_err(|e| format!("CreatePVC: {e}"))
}

/// The first field of `given` that `kept` lacks.
fn dropped(given: &Value, kept: &Value, at: &str) -> Option<String> {
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => g.iter().find_map(|(key, value)| match k.get(key) {
            None if !value.is_null() => Some(format!("{at}.{key}")),
            None => None,
            Some(kept) => dropped(value, kept, &format!("{at}.{key}")),
        }),
        (Value::Array(g), Value::Array(k)) => {
            g.iter().zip(k).enumerate().find_map(|(i, (g, k))| dropped(g, k, &format!("{at}[{i}]")))
        }
        _ => None,
    }
}

fn is_nonempty(value: &Value) -> bool {
    value.as_object().is_some_and(|m| !m.is_empty())
}

/// The IR's resources as a container's requests and limits: the SDK's strings (`resourceCpuLimit`,
/// given as quantities, with runtime values already resolved) first, its numbers (cores, GB)
/// otherwise; an accelerator as a limit of its resource type (`nvidia.com/gpu`, …). The
/// operator's default requests fill what the step did not ask.
fn resources(settings: &Settings, ir: Option<&Value>) -> Result<Value, String> {
    let mut requests = Map::new();
    let mut limits = Map::new();
    let empty = json!({});
    let ir = ir.unwrap_or(&empty);
    let text = |key: &str| ir.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let number = |key: &str| ir.get(key).and_then(Value::as_f64).filter(|n| *n > 0.0);
    let pairs = [
        (false, "cpu", "resourceCpuRequest", "cpuRequest", ""),
        (true, "cpu", "resourceCpuLimit", "cpuLimit", ""),
        (false, "memory", "resourceMemoryRequest", "memoryRequest", "G"),
        (true, "memory", "resourceMemoryLimit", "memoryLimit", "G"),
    ];
    for (limit, resource, as_text, as_number, unit) in pairs {
        let into = if limit { &mut limits } else { &mut requests };
        if let Some(value) = text(as_text) {
            into.insert(resource.into(), json!(value));
        } else if let Some(value) = number(as_number) {
            into.insert(resource.into(), json!(format!("{value}{unit}")));
        }
    }
    if let Some(accelerator) = ir.get("accelerator") {
        let text = |key: &str| accelerator.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let kind = text("resourceType").or_else(|| text("type"));
        let count = text("resourceCount").map(str::to_string).or_else(|| {
            accelerator.get("count").map(|c| c.as_str().map(str::to_string).unwrap_or_else(|| c.to_string()))
        });
        if let Some(kind) = kind {
            let count = count.unwrap_or_else(|| "1".into());
            if count.parse::<u64>().is_err() {
                return Err(format!("the accelerator count {count:?} is not a whole number"));
            }
            limits.insert(kind.to_string(), json!(count));
        }
    }
    for (resource, default) in [("cpu", &settings.default_cpu_request), ("memory", &settings.default_memory_request)] {
        if let Some(default) = default {
            // A default above the step's own limit would make the pod invalid.
            if !requests.contains_key(resource) && !limits.contains_key(resource) {
                requests.insert(resource.into(), json!(default));
            }
        }
    }
    Ok(json!({"requests": requests, "limits": limits}))
}

/// A kfp-kubernetes toleration (or its JSON form) as Kubernetes'.
fn toleration(given: &Value) -> Value {
    if let Some(json) = given.pointer("/tolerationJson/runtimeValue/constant") {
        return json.clone();
    }
    let mut out = Map::new();
    for key in ["key", "operator", "value", "effect", "tolerationSeconds"] {
        if let Some(v) = given.get(key).filter(|v| !v.is_null() && v.as_str() != Some("")) {
            let v = if key == "tolerationSeconds" {
                json!(v.as_str().and_then(|s| s.parse::<i64>().ok()).or(v.as_i64()))
            } else {
                v.clone()
            };
            out.insert(key.into(), v);
        }
    }
    Value::Object(out)
}

/// kfp-kubernetes' node and pod affinity terms as a pod's affinity: a term with a weight is a
/// preference, one without a requirement (`add_node_affinity`, `add_pod_affinity`).
fn affinity(node: &[Value], pod: &[Value]) -> Option<Value> {
    let mut affinity = Map::new();
    let mut required_terms = Vec::new();
    let mut preferred = Vec::new();
    for term in node {
        if let Some(json) = term.pointer("/nodeAffinityJson/runtimeValue/constant") {
            affinity.insert("nodeAffinity".into(), json.clone());
            continue;
        }
        let mut selector = Map::new();
        for key in ["matchExpressions", "matchFields"] {
            if let Some(list) = term.get(key).filter(|l| l.as_array().is_some_and(|a| !a.is_empty())) {
                selector.insert(key.into(), list.clone());
            }
        }
        match term.get("weight").and_then(Value::as_i64) {
            Some(weight) => preferred.push(json!({"weight": weight, "preference": selector})),
            None => required_terms.push(Value::Object(selector)),
        }
    }
    if !affinity.contains_key("nodeAffinity") && (!required_terms.is_empty() || !preferred.is_empty()) {
        let mut node_affinity = Map::new();
        if !required_terms.is_empty() {
            node_affinity.insert(
                "requiredDuringSchedulingIgnoredDuringExecution".into(),
                json!({"nodeSelectorTerms": required_terms}),
            );
        }
        if !preferred.is_empty() {
            node_affinity.insert("preferredDuringSchedulingIgnoredDuringExecution".into(), json!(preferred));
        }
        affinity.insert("nodeAffinity".into(), Value::Object(node_affinity));
    }
    for (anti, key) in [(false, "podAffinity"), (true, "podAntiAffinity")] {
        let mut required = Vec::new();
        let mut preferred = Vec::new();
        for term in pod.iter().filter(|t| t.get("anti").and_then(Value::as_bool).unwrap_or(false) == anti) {
            let selector = |expressions: &str, labels: &str| {
                let mut s = Map::new();
                if let Some(e) = term.get(expressions).filter(|l| l.as_array().is_some_and(|a| !a.is_empty())) {
                    s.insert("matchExpressions".into(), e.clone());
                }
                if let Some(l) = term.get(labels).filter(|l| is_nonempty(l)) {
                    s.insert("matchLabels".into(), l.clone());
                }
                s
            };
            let mut out = json!({
                "labelSelector": selector("matchPodExpressions", "matchPodLabels"),
                "topologyKey": term.get("topologyKey").cloned().unwrap_or(json!("kubernetes.io/hostname")),
            });
            if let Some(namespaces) = term.get("namespaces").filter(|l| l.as_array().is_some_and(|a| !a.is_empty())) {
                out["namespaces"] = namespaces.clone();
            }
            let namespace_selector = selector("matchNamespaceExpressions", "matchNamespaceLabels");
            if !namespace_selector.is_empty() {
                out["namespaceSelector"] = Value::Object(namespace_selector);
            }
            match term.get("weight").and_then(Value::as_i64) {
                Some(weight) => preferred.push(json!({"weight": weight, "podAffinityTerm": out})),
                None => required.push(out),
            }
        }
        let mut rules = Map::new();
        if !required.is_empty() {
            rules.insert("requiredDuringSchedulingIgnoredDuringExecution".into(), json!(required));
        }
        if !preferred.is_empty() {
            rules.insert("preferredDuringSchedulingIgnoredDuringExecution".into(), json!(preferred));
        }
        if !rules.is_empty() {
            affinity.insert(key.into(), Value::Object(rules));
        }
    }
    (!affinity.is_empty()).then_some(Value::Object(affinity))
}

/// kfp-kubernetes' security context (`set_security_context`) as a container's: its int64
/// fields arrive as strings in the IR's JSON.
fn security_context(given: &Value) -> Option<Value> {
    let mut out = Map::new();
    for key in ["runAsUser", "runAsGroup"] {
        let number = given.get(key).and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
        if let Some(number) = number {
            out.insert(key.into(), json!(number));
        }
    }
    if let Some(flag) = given.get("runAsNonRoot").and_then(Value::as_bool) {
        out.insert("runAsNonRoot".into(), json!(flag));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// kfp-kubernetes' init container as Kubernetes' (volumes named by their kfp-kubernetes names).
fn init_container(given: &Value) -> Value {
    let mut out = Map::new();
    for key in ["name", "image", "command", "args", "env", "resources", "restartPolicy"] {
        if let Some(v) = given.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(mounts) = given.get("volumeMounts").and_then(Value::as_array) {
        let mounts: Vec<Value> =
            mounts.iter().map(|m| json!({"name": m.get("volumeName"), "mountPath": m.get("mountPath")})).collect();
        out.insert("volumeMounts".into(), json!(mounts));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
