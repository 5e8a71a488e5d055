//! What a container step needs to run: the resolved command line, the ExecutorInput, where
//! inputs go and outputs come from, and its cache fingerprint. Pure; the runtime does the I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use weir_artifacts::layout::{self, key_for_uri, segment};
use weir_spec::ir::{ComponentSpec, ContainerSpec, PipelineSpec, TaskSpec};
use weir_spec::placeholders::{resolve_args, PlaceholderContext};
use weir_spec::values::{complete_task_parameters, integral_numbers};
use weir_spec::SpecError;
use weir_store::{Artifact, Run, Task, TaskKind};

use crate::planner::Tasks;

/// Why a step cannot be planned: the run's spec and its rows do not fit together, or the
/// step's inputs do not fit its component. The step fails with this message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("task {0} has no parent")]
    NoParent(String),
    #[error("iteration without a loop")]
    IterationWithoutLoop,
    #[error("parent has no dag")]
    NoDag,
    #[error("no task {0:?} in the spec")]
    NoTask(String),
    #[error("executor {0:?} is not a container")]
    NotAContainer(String),
    #[error("input artifact {name:?}: artifact {id} is missing")]
    MissingArtifact { name: String, id: i64 },
    #[error("the container of {0:?} has no command")]
    NoCommand(String),
    /// The step's Kubernetes configuration asks for what a local process cannot have.
    #[error("{0}")]
    Unsupported(String),
    /// The spec refers to something it does not hold, a placeholder does not resolve, or a
    /// parameter does not fit its type.
    #[error("{0}")]
    Spec(#[from] SpecError),
}

/// Finds the IR task and component a task row stands for, walking up its parents (by
/// reference: the root component of a large pipeline is costly to copy).
pub fn task_spec_ref<'a>(
    spec: &'a PipelineSpec,
    tasks: &Tasks,
    task: &Task,
) -> Result<(&'a TaskSpec, &'a ComponentSpec), PlanError> {
    let parent = tasks.get(&task.parent_id).ok_or_else(|| PlanError::NoParent(task.id.clone()))?;
    let parent_component = if parent.parent_id.is_empty() {
        &spec.root
    } else {
        let owner = if parent.kind == TaskKind::Iteration {
            tasks.get(&parent.parent_id).ok_or(PlanError::IterationWithoutLoop)?
        } else {
            parent
        };
        task_spec_ref(spec, tasks, owner)?.1
    };
    let dag = parent_component.dag.as_ref().ok_or(PlanError::NoDag)?;
    let task_spec = dag.tasks.get(&task.name).ok_or_else(|| PlanError::NoTask(task.name.clone()))?;
    let component = spec.component(&task_spec.component_ref.name)?;
    Ok((task_spec, component))
}

/// One output artifact: where the step writes it and where it is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputArtifact {
    pub name: String,
    pub local_path: PathBuf,
    /// Key in the artifact store.
    pub key: String,
    pub schema_title: String,
    pub schema_version: String,
}

/// One input artifact to place before the step starts.
#[derive(Debug, Clone, PartialEq)]
pub struct InputArtifact {
    pub artifact: Artifact,
    /// Where the step finds it; `None` when it is left at its URI (outside weir's store).
    pub local_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub executor_input: Value,
    pub inputs: Vec<InputArtifact>,
    pub outputs: Vec<OutputArtifact>,
    /// Output parameter files: name → (path, parameter type).
    pub output_parameters: BTreeMap<String, (PathBuf, String)>,
    pub executor_output_file: PathBuf,
    /// The task's folder of outputs in the store (KFP's task root), and where the step sees it:
    /// the folder of `executor_output_file`, which `dsl.get_uri()` builds on.
    pub task_root: String,
    pub task_root_dir: PathBuf,
    /// The attempt's own folder.
    pub workdir: PathBuf,
    /// The store's own folder when it is a local one: the step then reads and writes its
    /// artifacts where they are kept.
    pub store_root: Option<PathBuf>,
    /// Folders mounted in the step's own mount namespace: (folder, where the step sees it).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Environment variables from secrets and config maps, read from the store at start.
    pub config_env: Vec<ConfigEnv>,
    /// Secrets and config maps as files, written at start into folders mounted for the step.
    pub config_files: Vec<ConfigFiles>,
    /// Volumes at paths when steps run as pods (then they take the place of `binds` and
    /// `config_files` for what a cluster mounts itself).
    pub volumes: Vec<PodVolume>,
    /// `activeDeadlineSeconds`: the step is stopped and fails after this long.
    pub deadline_seconds: Option<u64>,
    /// The pod labels and annotations the step would have had (recorded in its log).
    pub pod_metadata: weir_spec::platform::PodMetadata,
    /// What stands for the step's pod name.
    pub pod_name: String,
    /// Empty when caching is off for the task.
    pub fingerprint: String,
    /// Packages a lightweight Python component asks for (`packages_to_install`), when the
    /// pip preamble is skipped.
    pub python_packages: Vec<String>,
    pub image: String,
    /// The container's `resources` as compiled (requests, limits, accelerator).
    pub resources: Option<Value>,
    /// The executor's kfp-kubernetes configuration, for a driver that runs steps as pods.
    pub platform: weir_spec::platform::ExecutorConfig,
}

impl StepPlan {
    /// Where weir finds a path the step named: a path under a folder mounted for the step is
    /// in that folder; any other is the host's.
    pub fn host_path(&self, step_path: &Path) -> PathBuf {
        for (folder, seen_at) in &self.binds {
            if let Ok(rest) = step_path.strip_prefix(seen_at) {
                return folder.join(rest);
            }
        }
        step_path.to_path_buf()
    }

    /// A lightweight Python component whose pip preamble was skipped and that needs no extra
    /// packages, as the SDK compiles it (`sh -ec <launch script> <source> <executor args…>`):
    /// its source and the executor's arguments, for a driver that runs Python itself.
    pub fn python_call(&self) -> Option<(&str, &[String])> {
        let argv = &self.argv;
        let python = self.python_packages.is_empty()
            && argv.len() >= 4
            && argv[0] == "sh"
            && argv[1] == "-ec"
            && argv[2].contains("kfp.dsl.executor_main");
        python.then(|| (argv[3].as_str(), &argv[4..]))
    }
}

/// One variable a step gets from a secret or config map.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEnv {
    pub kind: weir_store::StepConfigKind,
    pub name: String,
    pub key: String,
    pub env_var: String,
    /// A missing secret or key leaves the variable unset instead of failing the step.
    pub optional: bool,
}

/// A volume a pod mounts at a path of the step's choosing (kfp-kubernetes).
#[derive(Debug, Clone, PartialEq)]
pub struct PodVolume {
    pub mount_path: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    Secret { name: String, optional: bool },
    ConfigMap { name: String, optional: bool },
    Claim { name: String, sub_path: String },
    EmptyDir { name: String },
}

/// A secret's or config map's keys as files in a folder (mounted where the step asked).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFiles {
    pub kind: weir_store::StepConfigKind,
    pub name: String,
    pub folder: PathBuf,
    pub optional: bool,
}

/// A container's resources with the placeholders of runtime values (`set_cpu_limit` given a
/// pipeline parameter compiles to `{{$.inputs.parameters['…']}}`) resolved.
fn resolve_resources(resources: &Value, ctx: &PlaceholderContext) -> Result<Value, PlanError> {
    Ok(match resources {
        Value::String(text) if text.contains("{{$") => {
            let resolved = resolve_args(std::slice::from_ref(text), ctx)?;
            Value::String(resolved.into_iter().next().unwrap_or_default())
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                out.insert(key.clone(), resolve_resources(value, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// What a step's Kubernetes configuration adds to its plan.
#[derive(Debug, Default)]
struct PlatformPlan {
    config_env: Vec<ConfigEnv>,
    config_files: Vec<ConfigFiles>,
    binds: Vec<(PathBuf, PathBuf)>,
    volumes: Vec<PodVolume>,
}

/// How the runtime runs steps, as far as planning a step needs to know.
#[derive(Debug, Clone)]
pub struct StepSettings {
    /// Skip the SDK's pip preamble (the interpreter steps use already has kfp).
    pub python_fast_path: bool,
    /// Prefix of artifact keys (`artifacts`); URIs are `<store URL>/<key>`.
    pub store_url: String,
    /// Steps can have a mount namespace of their own (volumes at paths are mounted).
    pub private_mounts: bool,
    /// The object store's artifacts are mounted where the SDK looks for them.
    pub object_mounts: bool,
    /// Where the PVCs of kfp-kubernetes' CreatePVC live, one folder each.
    pub volumes_dir: PathBuf,
    /// Steps run as pods: volumes are the cluster's, field paths its downward API.
    pub on_cluster: bool,
}

/// An object store's artifacts as a step sees them when it has a mount namespace of its own:
/// at the local path KFP's SDK derives from the durable URI (`s3://b/k` → `/s3/b/k`,
/// `Artifact._get_path` in sdk/python/kfp/dsl/types/artifact_types.py; the launcher uses the
/// same paths, `LocalPathForURI` in backend/src/v2/component/launcher_v2.go), a folder of the
/// attempt mounted there. Without one the step sees paths in its attempt's folder.
struct Mounted {
    scheme: &'static str,
    seen_at: PathBuf,
    folder: PathBuf,
}

impl Mounted {
    fn new(settings: &StepSettings, workdir: &Path) -> Option<Self> {
        if !settings.object_mounts {
            return None;
        }
        let (scheme, seen_at) = [("s3://", "/s3"), ("gs://", "/gcs")]
            .into_iter()
            .find(|(scheme, _)| settings.store_url.starts_with(scheme))?;
        Some(Self { scheme, seen_at: PathBuf::from(seen_at), folder: workdir.join("mnt") })
    }

    /// Where the step sees the object of `uri`.
    fn seen(&self, uri: &str) -> Option<PathBuf> {
        uri.strip_prefix(self.scheme).map(|rest| self.seen_at.join(rest))
    }

    /// Where weir puts and finds what the step sees at `seen`.
    fn host(&self, seen: &Path) -> PathBuf {
        seen.strip_prefix(&self.seen_at).map(|rest| self.folder.join(rest)).unwrap_or_else(|_| seen.to_path_buf())
    }
}

/// Plans one attempt of a container task.
pub fn plan_step(
    spec: &PipelineSpec,
    run: &Run,
    tasks: &Tasks,
    task: &Task,
    artifacts: &HashMap<i64, Artifact>,
    workdir: &Path,
    settings: &StepSettings,
) -> Result<StepPlan, PlanError> {
    let (task_spec, component) = task_spec_ref(spec, tasks, task)?;
    let label = component.executor_label.clone().unwrap_or_default();
    let container: ContainerSpec =
        spec.executor(&label)?.container.clone().ok_or_else(|| PlanError::NotAContainer(label.clone()))?;

    let root = root_key(spec, run, &settings.store_url);
    let pipeline_root = layout::uri_for_key(&settings.store_url, &root);
    let task_root = layout::task_root_key(&root, &spec.pipeline_info.name, &run.id, &task.name, &task.id);
    // With a local store the step sees artifacts' durable URIs in path form (the SDK's `.path`
    // of a path is the path itself) and works on them in place, as a KFP step works on the
    // durable URI's local form (`/s3/…`, `/gcs/…`). Other stores are fetched into and kept from
    // the attempt's folder.
    let store_root = layout::local_store_root(&settings.store_url);
    let mounted = Mounted::new(settings, workdir);
    let task_root_uri = layout::uri_for_key(&settings.store_url, &task_root);
    // The task root as the step sees it, and where weir finds it.
    let (task_root_seen, task_root_dir) = match (&store_root, mounted.as_ref().and_then(|m| m.seen(&task_root_uri))) {
        (Some(dir), _) => (dir.join(&task_root), dir.join(&task_root)),
        (None, Some(seen)) => (seen.clone(), mounted.as_ref().map(|m| m.host(&seen)).unwrap_or_default()),
        (None, None) => (workdir.join("outputs"), workdir.join("outputs")),
    };
    let workspace = workspace_dir(workdir);
    let given = &where_it_runs(&task.inputs.parameters, &pipeline_root, &workspace);
    // Placeholders see the parameters as given (IfPresent before defaults, as KFP's driver);
    // the ExecutorInput carries defaults too (as KFP's launcher adds them).
    let with_defaults =
        complete_task_parameters(&component.input_definitions, given, &format!("task {:?}", task.display_name))?;

    let mut inputs = Vec::new();
    let mut input_artifacts_json = Map::new();
    let mut placeholder_inputs = Map::new();
    let input_ids = &task.inputs.artifacts;
    for (name, ids) in input_ids {
        let def = component.input_definitions.artifacts.get(name);
        let mut entries = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let artifact =
                artifacts.get(id).cloned().ok_or_else(|| PlanError::MissingArtifact { name: name.clone(), id: *id })?;
            // A local store's artifacts are read where they are kept. Otherwise fetched into
            // the step's folder: artifacts of weir's store, and local files (an importer's path
            // or `file://` URI; the runtime checks they may be read).
            let stored = key_for_uri(&settings.store_url, &artifact.uri)
                .or_else(|| layout::key_for_path(&settings.store_url, &artifact.uri));
            let seen = mounted.as_ref().and_then(|m| m.seen(&artifact.uri).map(|seen| (m.host(&seen), seen)));
            let (local, uri) = match (&store_root, stored, seen) {
                (Some(dir), Some(key), _) => (None, dir.join(key).display().to_string()),
                // Fetched where the step finds it under its durable URI's local form.
                (None, Some(_), Some((host, _))) => (Some(host), artifact.uri.clone()),
                _ => {
                    let fetched = key_for_uri(&settings.store_url, &artifact.uri).is_some()
                        || artifact.uri.starts_with('/')
                        || artifact.uri.starts_with("file://");
                    let local = fetched.then(|| {
                        workdir.join("inputs").join(segment(name)).join(i.to_string()).join(segment(&artifact.name))
                    });
                    let uri = local.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| artifact.uri.clone());
                    (local, uri)
                }
            };
            let schema_title = def
                .map(|d| d.artifact_type.schema_title.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or(artifact.schema_title.clone());
            entries.push(json!({
                "name": artifact.id.to_string(),
                "type": {"schemaTitle": schema_title, "schemaVersion": artifact.schema_version},
                "uri": uri,
                "metadata": integral_numbers(&artifact.metadata),
            }));
            if i == 0 {
                // Placeholders give the recorded URI and the local path, as KFP's launcher does;
                // the ExecutorInput names the local path (the SDK derives `.path` from it).
                let path = mounted.as_ref().and_then(|m| m.seen(&uri)).map(|p| p.display().to_string());
                placeholder_inputs
                    .insert(name.clone(), json!({"uri": artifact.uri, "path": path.unwrap_or(uri.clone())}));
            }
            inputs.push(InputArtifact { artifact, local_path: local });
        }
        input_artifacts_json.insert(name.clone(), json!({"artifacts": entries}));
    }

    let executor_output_file = task_root_dir.join("executor_output.json");
    let executor_output_seen = task_root_seen.join("executor_output.json");
    let mut outputs = Vec::new();
    let mut output_artifacts_json = Map::new();
    let mut placeholder_outputs = Map::new();
    for (name, def) in &component.output_definitions.artifacts {
        let key = layout::output_key(&root, &spec.pipeline_info.name, &run.id, &task.name, &task.id, name);
        let store_uri = layout::uri_for_key(&settings.store_url, &key);
        let seen = mounted.as_ref().and_then(|m| m.seen(&store_uri));
        let (local_path, uri, path) = match (&store_root, &seen) {
            (Some(dir), _) => (dir.join(&key), dir.join(&key).display().to_string(), dir.join(&key)),
            (None, Some(seen)) => {
                (mounted.as_ref().map(|m| m.host(seen)).unwrap_or_default(), store_uri.clone(), seen.clone())
            }
            (None, None) => {
                let local = workdir.join("outputs").join("artifacts").join(segment(name));
                (local.clone(), local.display().to_string(), local)
            }
        };
        output_artifacts_json.insert(
            name.clone(),
            json!({"artifacts": [{
                "name": name,
                "type": {"schemaTitle": def.artifact_type.schema_title, "schemaVersion": def.artifact_type.schema_version},
                "uri": uri,
                "metadata": {},
            }]}),
        );
        placeholder_outputs.insert(name.clone(), json!({"uri": store_uri, "path": path.display().to_string()}));
        outputs.push(OutputArtifact {
            name: name.clone(),
            local_path,
            key,
            schema_title: def.artifact_type.schema_title.clone(),
            schema_version: def.artifact_type.schema_version.clone(),
        });
    }
    let mut output_parameters = BTreeMap::new();
    let mut output_parameters_json = Map::new();
    for (name, def) in &component.output_definitions.parameters {
        let path = workdir.join("outputs").join("parameters").join(segment(name));
        output_parameters_json.insert(name.clone(), json!({"outputFile": path.display().to_string()}));
        output_parameters.insert(name.clone(), (path, def.parameter_type.clone()));
    }

    let executor_input = json!({
        "inputs": {
            "parameterValues": Value::Object(with_defaults.clone()),
            "artifacts": Value::Object(input_artifacts_json),
        },
        "outputs": {
            "parameters": Value::Object(output_parameters_json),
            "artifacts": Value::Object(output_artifacts_json),
            "outputFile": executor_output_seen.display().to_string(),
        }
    });

    let runtime = json!({
        "pipeline_job_name": run.display_name,
        "pipeline_job_resource_name": weir_spec::names::job_resource_name(&spec.pipeline_info.name, &run.id),
        "pipeline_job_uuid": run.id,
        "pipeline_task_name": task.display_name,
        "pipeline_task_uuid": task.id,
        "pipeline_root": pipeline_root,
        "pipeline_job_create_time_utc": rfc3339(run.created_at),
        "pipeline_job_schedule_time_utc": rfc3339(run.scheduled_at),
        "workspace_path": workspace.display().to_string(),
    });
    let ctx = PlaceholderContext {
        executor_input: executor_input.clone(),
        parameters: given.iter().map(|(k, v)| (k.clone(), integral_numbers(v))).collect(),
        input_artifacts: placeholder_inputs,
        output_artifacts: placeholder_outputs,
        output_parameter_files: output_parameters
            .iter()
            .map(|(k, (p, _))| (k.clone(), json!(p.display().to_string())))
            .collect(),
        output_metadata_file: executor_output_seen.display().to_string(),
        runtime: runtime.as_object().cloned().unwrap_or_default(),
    };
    let command = resolve_args(&container.command, &ctx)?;
    let args = resolve_args(&container.args, &ctx)?;
    let (argv, python_packages) = python_fast_path(command, args, settings.python_fast_path);
    if argv.is_empty() {
        return Err(PlanError::NoCommand(task.display_name.clone()));
    }
    let mut env: Vec<(String, String)> = container.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
    let platform = spec.platform.executor(&label).cloned().unwrap_or_default();
    let platform_plan = platform_env(&platform, run, task, tasks, spec, settings, workdir, &mut env)?;

    let fingerprint = if task_spec.caching_options.enable_cache {
        weir_spec::cache::fingerprint(task_spec, &container, &with_defaults, input_ids, component)
    } else {
        String::new()
    };

    Ok(StepPlan {
        argv,
        env,
        executor_input,
        inputs,
        outputs,
        output_parameters,
        executor_output_file,
        task_root,
        task_root_dir,
        workdir: workdir.to_path_buf(),
        store_root,
        binds: mounted.map(|m| (m.folder, m.seen_at)).into_iter().chain(platform_plan.binds).collect(),
        config_env: platform_plan.config_env,
        config_files: platform_plan.config_files,
        volumes: platform_plan.volumes,
        deadline_seconds: platform.deadline_seconds()?,
        pod_metadata: platform.pod_metadata.clone(),
        pod_name: pod_name(spec, run, task),
        fingerprint,
        python_packages,
        image: container.image.clone(),
        resources: container.resources.as_ref().map(|r| resolve_resources(r, &ctx)).transpose()?,
        platform,
    })
}

/// What a step gets from its Kubernetes platform configuration: field paths as variables now
/// (added to `env`), secrets and config maps as variables to read at start (returned). A
/// secret or config map whose name comes from an input that was left out is skipped, as KFP's
/// driver skips it (`extendPodSpecPatch` in backend/src/v2/driver/k8s.go); one mounted as files
/// cannot be given to a local process.
#[allow(clippy::too_many_arguments)]
fn platform_env(
    platform: &weir_spec::platform::ExecutorConfig,
    run: &Run,
    task: &Task,
    tasks: &Tasks,
    spec: &PipelineSpec,
    settings: &StepSettings,
    workdir: &Path,
    env: &mut Vec<(String, String)>,
) -> Result<PlatformPlan, PlanError> {
    use weir_store::StepConfigKind;
    // A run created before weir checked its platform spec, or a recurring run's newer
    // version: what cannot be honoured fails the step rather than running it without.
    let problems = if settings.on_cluster {
        platform.deadline_seconds().err().map(|e| e.to_string()).into_iter().collect()
    } else {
        platform.unsupported(&task.name, settings.private_mounts)
    };
    if let Some(problem) = problems.into_iter().next() {
        return Err(PlanError::Unsupported(problem));
    }
    let pod = weir_spec::platform::PodNames {
        name: pod_name(spec, run, task),
        namespace: if run.namespace.is_empty() { "default".into() } else { run.namespace.clone() },
        uid: task.id.clone(),
        node: std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
        service_account: if run.service_account.is_empty() { "default".into() } else { run.service_account.clone() },
    };
    // On a cluster the pod's downward API gives them.
    for field in platform.field_path_as_env.iter().filter(|_| !settings.on_cluster) {
        env.push((field.name.clone(), platform.field_path_value(&field.field_path, &pod)?));
    }
    let mut out = Vec::new();
    for secret in &platform.secret_as_env {
        let Some(name) = config_name(secret.name_input(), task, tasks)? else { continue };
        for pair in &secret.key_to_env {
            out.push(ConfigEnv {
                kind: StepConfigKind::Secret,
                name: name.clone(),
                key: pair.secret_key.clone(),
                env_var: pair.env_var.clone(),
                optional: secret.optional.unwrap_or(false),
            });
        }
    }
    for map in &platform.config_map_as_env {
        let Some(name) = config_name(map.name_input(), task, tasks)? else { continue };
        for pair in &map.key_to_env {
            out.push(ConfigEnv {
                kind: StepConfigKind::ConfigMap,
                name: name.clone(),
                key: pair.config_map_key.clone(),
                env_var: pair.env_var.clone(),
                optional: map.optional.unwrap_or(false),
            });
        }
    }
    let mut plan = PlatformPlan { config_env: out, ..PlatformPlan::default() };
    let volumes = platform.secret_as_volume.iter().map(|m| (StepConfigKind::Secret, m));
    let volumes = volumes.chain(platform.config_map_as_volume.iter().map(|m| (StepConfigKind::ConfigMap, m)));
    for (i, (kind, mount)) in volumes.enumerate() {
        let Some(name) = config_name(mount.name_input(), task, tasks)? else { continue };
        if settings.on_cluster {
            let optional = mount.optional.unwrap_or(false);
            let source = match kind {
                StepConfigKind::Secret => VolumeSource::Secret { name, optional },
                StepConfigKind::ConfigMap => VolumeSource::ConfigMap { name, optional },
            };
            plan.volumes.push(PodVolume { mount_path: mount.mount_path.clone(), source });
            continue;
        }
        if !settings.private_mounts {
            return Err(PlanError::Unsupported(format!(
                "{} {name:?} is mounted at {}: weir cannot make mount namespaces here (it runs without root)",
                kind.noun(),
                mount.mount_path
            )));
        }
        let folder = workdir.join("config-volumes").join(format!("{i}-{}", segment(&name)));
        plan.binds.push((folder.clone(), PathBuf::from(&mount.mount_path)));
        plan.config_files.push(ConfigFiles { kind, name, folder, optional: mount.optional.unwrap_or(false) });
    }
    for mount in &platform.pvc_mount {
        let parameter = mount.name_parameter();
        let input = weir_spec::platform::NameInput { literal: "", parameter: Some(&parameter) };
        let name = config_name(input, task, tasks)?
            .ok_or_else(|| PlanError::Unsupported(format!("the PVC mounted at {} has no name", mount.mount_path)))?;
        if settings.on_cluster {
            let source = VolumeSource::Claim { name, sub_path: mount.sub_path.clone() };
            plan.volumes.push(PodVolume { mount_path: mount.mount_path.clone(), source });
            continue;
        }
        // A PVC of the local driver is a folder of weir's (CreatePVC names it, DeletePVC
        // removes it); one it did not create is made on first use, as a pre-existing volume.
        let mut folder = settings.volumes_dir.join(segment(&name));
        for part in mount.sub_path.split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..") {
            folder = folder.join(part);
        }
        plan.binds.push((folder, PathBuf::from(&mount.mount_path)));
    }
    for mount in &platform.empty_dir_mounts {
        if settings.on_cluster {
            let source = VolumeSource::EmptyDir { name: mount.volume_name.clone() };
            plan.volumes.push(PodVolume { mount_path: mount.mount_path.clone(), source });
            continue;
        }
        let folder = workdir.join("empty-dirs").join(segment(&mount.volume_name));
        plan.binds.push((folder, PathBuf::from(&mount.mount_path)));
    }
    Ok(plan)
}

/// What stands for the step's pod name (`KFP_POD_NAME`, the `metadata.name` field path): the
/// job resource name and the task's key, as KFP's pods are named after their workflow.
pub fn pod_name(spec: &PipelineSpec, run: &Run, task: &Task) -> String {
    format!("{}-{}", weir_spec::names::job_resource_name(&spec.pipeline_info.name, &run.id), segment(&task.name))
}

/// The name a secret or config map is given by: a constant, an input of the task's DAG, or a
/// sibling's output; `None` for an input left out (a null value).
fn config_name(
    input: weir_spec::platform::NameInput<'_>,
    task: &Task,
    tasks: &Tasks,
) -> Result<Option<String>, PlanError> {
    let Some(parameter) = input.parameter else {
        return Ok((!input.literal.is_empty()).then(|| input.literal.to_string()));
    };
    let value = if let Some(constant) = &parameter.runtime_value {
        constant.constant.clone().or_else(|| constant.constant_value.clone())
    } else if let Some(source) = &parameter.component_input_parameter {
        let parent = tasks.get(&task.parent_id).ok_or_else(|| PlanError::NoParent(task.id.clone()))?;
        parent.inputs.parameters.get(source).cloned()
    } else if let Some(output) = &parameter.task_output_parameter {
        let producer = tasks.child(&task.parent_id, &output.producer_task);
        producer.and_then(|p| p.outputs.parameters.get(&output.output_parameter_key).cloned())
    } else {
        None
    };
    match value {
        None | Some(Value::Null) if input.literal.is_empty() => Ok(None),
        None | Some(Value::Null) => Ok(Some(input.literal.to_string())),
        Some(Value::String(name)) if !name.is_empty() => Ok(Some(name)),
        Some(other) => {
            Err(PlanError::Unsupported(format!("a secret or config map name must be a non-empty string, got {other}")))
        }
    }
}

/// The key prefix artifacts go under: the run's pipeline root, else the spec's default root,
/// when it is inside weir's store; otherwise weir's default root `artifacts`.
pub fn root_key(spec: &PipelineSpec, run: &Run, store_url: &str) -> String {
    layout::root_key(&run.pipeline_root, spec.default_pipeline_root.as_deref(), store_url)
}

/// The run's workspace (`dsl.WorkspaceConfig`), shared by its steps as KFP's workspace volume
/// is: beside the attempts' folders in the run's folder, removed when the run ends.
pub fn workspace_dir(attempt_dir: &Path) -> PathBuf {
    attempt_dir.parent().unwrap_or(attempt_dir).join("workspace")
}

/// Task inputs with the placeholders that depend on where the step runs replaced: a constant
/// that is `{{$.pipeline_root}}`, and `{{$.workspace_path}}` anywhere in a string (as KFP's
/// driver replaces them, `resolveInputParameter` in backend/src/v2/driver/resolve.go).
fn where_it_runs(given: &Map<String, Value>, pipeline_root: &str, workspace: &Path) -> Map<String, Value> {
    let workspace = workspace.display().to_string();
    given
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(text) if text == "{{$.pipeline_root}}" => Value::String(pipeline_root.to_string()),
                Value::String(text) if text.contains("{{$.workspace_path}}") => {
                    Value::String(text.replace("{{$.workspace_path}}", &workspace))
                }
                other => other.clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Lightweight Python components start with `sh -c <pip install … kfp==…> sh -ec <script>
/// <source> args…`. When the interpreter steps use already has kfp, the preamble is skipped and
/// the rest runs directly; the packages the preamble would install are returned so the runtime
/// can provide them.
pub fn python_fast_path(command: Vec<String>, args: Vec<String>, enabled: bool) -> (Vec<String>, Vec<String>) {
    let is_preamble = command.len() >= 4
        && command[0] == "sh"
        && command[1] == "-c"
        && command[2].contains("pip install")
        && command[2].contains("kfp==")
        && command[3] == "sh";
    if !(enabled && is_preamble) {
        return (command.into_iter().chain(args).collect(), Vec::new());
    }
    let packages = preamble_packages(&command[2]);
    (command[3..].iter().cloned().chain(args).collect(), packages)
}

/// The quoted arguments of the preamble's pip installs other than kfp's own.
fn preamble_packages(preamble: &str) -> Vec<String> {
    let mut packages = Vec::new();
    for segment in preamble.split("&&") {
        let Some(install) = segment.split("pip install").nth(1) else { continue };
        let quoted: Vec<String> = install.split('\'').skip(1).step_by(2).map(str::to_string).collect();
        if quoted.iter().any(|q| q.starts_with("kfp==")) {
            continue;
        }
        packages.extend(quoted);
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn fast_path_skips_only_the_kfp_preamble() {
        let preamble = "if ! [ -x \"$(command -v pip)\" ]; then python3 -m ensurepip; fi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location 'pandas==2.0' 'numpy' && python3 -m pip install --quiet --no-warn-script-location 'kfp==2.17.3' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";
        let command: Vec<String> =
            ["sh", "-c", preamble, "sh", "-ec", "script", "source"].iter().map(|s| s.to_string()).collect();
        let args = vec!["--executor_input".to_string(), "{}".to_string()];
        let (argv, packages) = python_fast_path(command.clone(), args.clone(), true);
        assert_eq!(argv, ["sh", "-ec", "script", "source", "--executor_input", "{}"]);
        assert_eq!(packages, ["pandas==2.0", "numpy"]);
        let (argv, packages) = python_fast_path(command, args, false);
        assert_eq!(argv.len(), 9);
        assert!(packages.is_empty());
        let (argv, _) = python_fast_path(vec!["echo".into()], vec!["hi".into()], true);
        assert_eq!(argv, ["echo", "hi"]);
    }
}
