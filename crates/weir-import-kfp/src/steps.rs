//! A run's steps as ML Metadata recorded them, made into weir's tasks and artifacts, following
//! the walk KFP's own MLMD-removal design specifies (proposals/12147-mlmd-removal,
//! "Migration"): executions become tasks (the root DAG `run/<id>` is the run's root task), a
//! cache fingerprint is kept only for COMPLETE executions, and an output artifact belongs to
//! the run whose execution produced it (a cache hit's OUTPUT events name the first run's).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};
use weir_spec::ir::{ComponentSpec, PipelineSpec, TaskSpec};
use weir_store::{Artifact, ErrorInfo, Run, RuntimeState, StateChange, Task, TaskIo, TaskKind};

use crate::mlmd::{self, RunRecord};

/// The output KFP's launcher adds for a step's log (2.5+, `PUBLISH_LOGS`).
pub const EXECUTOR_LOGS: &str = "executor-logs";

/// A deterministic id for something KFP gave only an MLMD integer id.
pub fn derived_uuid(source: &str, what: &str, id: i64) -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("weir-import-kfp/{source}/{what}/{id}").as_bytes())
}

/// An imported artifact's weir id: int64 as KFP's are, and exact in JavaScript.
pub fn artifact_id(source: &str, mlmd_id: i64) -> i64 {
    ((derived_uuid(source, "mlmd-artifact", mlmd_id).as_u128() as i64) & ((1i64 << 53) - 1)).max(1)
}

/// Where a container step's log may be found in KFP's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// The `executor-logs` output's object URI.
    ExecutorLogs(String),
    /// The step's pod, whose `main.log` Argo archived.
    Pod(String),
    None,
}

#[derive(Debug, Default)]
pub struct Steps {
    pub tasks: Vec<Task>,
    /// Artifacts this run produced, new to weir.
    pub artifacts: Vec<Artifact>,
    /// (MLMD artifact id, weir artifact id) of those.
    pub owned: Vec<(i64, i64)>,
    /// (weir task id, where its log is) for each container task.
    pub logs: Vec<(String, LogSource)>,
}

fn string(properties: &Map<String, Value>, name: &str) -> Option<String> {
    properties.get(name).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty())
}

fn number(properties: &Map<String, Value>, name: &str) -> Option<i64> {
    properties.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// A struct of parameter values, its integral doubles made integers again (MLMD keeps every
/// number of a struct as a double).
fn parameters(properties: &Map<String, Value>, name: &str) -> Map<String, Value> {
    match properties.get(name).map(mlmd::tidy_number) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// `owned_elsewhere`: MLMD artifact ids weir already has from another run.
pub fn build(source: &str, run: &Run, record: &RunRecord, owned_elsewhere: &HashSet<i64>) -> Steps {
    let mut steps = Steps::default();
    let task_id = |execution: i64| derived_uuid(source, "mlmd-execution", execution).to_string();
    let root = record
        .executions
        .iter()
        .find(|e| e.type_name == "system.DAGExecution" && !e.properties.contains_key("parent_dag_id"))
        .map(|e| e.id);
    let known: HashSet<i64> = record.executions.iter().map(|e| e.id).collect();
    let pipeline_name =
        run.pipeline_spec.pointer("/pipelineInfo/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut inputs: HashMap<i64, BTreeMap<String, Vec<i64>>> = HashMap::new();
    let mut outputs: HashMap<i64, BTreeMap<String, Vec<i64>>> = HashMap::new();
    let mut logs: HashMap<i64, String> = HashMap::new();
    let mut seen = HashSet::new();
    let states: HashMap<i64, i64> = record.executions.iter().map(|e| (e.id, e.state)).collect();
    for event in &record.events {
        let weir_artifact = artifact_id(source, event.artifact_id);
        match event.kind {
            mlmd::INPUT => {
                inputs.entry(event.execution_id).or_default().entry(event.key.clone()).or_default().push(weir_artifact)
            }
            mlmd::OUTPUT if event.key == EXECUTOR_LOGS => {
                if let Some(artifact) = record.artifacts.get(&event.artifact_id) {
                    logs.insert(event.execution_id, artifact.uri.clone());
                }
            }
            mlmd::OUTPUT => {
                outputs
                    .entry(event.execution_id)
                    .or_default()
                    .entry(event.key.clone())
                    .or_default()
                    .push(weir_artifact);
                let cached = states.get(&event.execution_id) == Some(&mlmd::CACHED);
                let Some(artifact) = record.artifacts.get(&event.artifact_id) else { continue };
                if cached || owned_elsewhere.contains(&event.artifact_id) || !seen.insert(event.artifact_id) {
                    continue;
                }
                let mut metadata: Map<String, Value> = artifact
                    .properties
                    .iter()
                    .filter(|(k, _)| k.as_str() != "store_session_info")
                    .map(|(k, v)| (k.clone(), mlmd::unwrap_metadata(v.clone())))
                    .collect();
                metadata.remove("store_session_info");
                steps.artifacts.push(Artifact {
                    id: weir_artifact,
                    run_id: run.id.clone(),
                    task_id: task_id(event.execution_id),
                    name: event.key.clone(),
                    uri: artifact.uri.clone(),
                    schema_title: artifact.type_name.clone(),
                    schema_version: "0.0.1".into(),
                    metadata: Value::Object(metadata),
                    created_at: artifact.created_ms,
                    // Referenced where KFP wrote it: weir's store holds no object of it.
                    object_count: 0,
                });
                steps.owned.push((event.artifact_id, weir_artifact));
            }
            _ => {}
        }
    }
    for execution in &record.executions {
        let p = &execution.properties;
        let is_root = Some(execution.id) == root;
        let kind = match execution.type_name.as_str() {
            "system.DAGExecution" if p.contains_key("iteration_index") => TaskKind::Iteration,
            "system.DAGExecution" if p.contains_key("iteration_count") => TaskKind::Loop,
            "system.DAGExecution" => TaskKind::Dag,
            t if t.starts_with("system.Importer") => TaskKind::Importer,
            _ => TaskKind::Container,
        };
        let name = if is_root {
            "root".to_string()
        } else if kind == TaskKind::Iteration {
            "iteration".to_string()
        } else {
            string(p, "task_name").unwrap_or_else(|| format!("execution-{}", execution.id))
        };
        let parent_id = match (is_root, number(p, "parent_dag_id")) {
            (true, _) => String::new(),
            (false, Some(parent)) if known.contains(&parent) => task_id(parent),
            (false, _) => root.map(task_id).unwrap_or_default(),
        };
        let (state, cached, error) = match execution.state {
            mlmd::COMPLETE => (RuntimeState::Succeeded, false, None),
            mlmd::CACHED => (RuntimeState::Succeeded, true, None),
            mlmd::FAILED => (RuntimeState::Failed, false, None),
            mlmd::CANCELED => (RuntimeState::Skipped, false, None),
            // MLMD's state is not authoritative: a step whose container never started stays
            // RUNNING there for good. The run's end is.
            _ => match run.state {
                RuntimeState::Succeeded => (RuntimeState::Succeeded, false, None),
                RuntimeState::Failed => (
                    RuntimeState::Failed,
                    false,
                    Some(ErrorInfo { code: 2, message: "KFP recorded no end for this step; its run failed".into() }),
                ),
                _ => (RuntimeState::Canceled, false, Some(ErrorInfo::run_terminated())),
            },
        };
        let finished_at = execution.updated_ms.max(execution.created_ms);
        let id = task_id(execution.id);
        let mut task_inputs = TaskIo::parameters(parameters(p, "inputs"));
        task_inputs.artifacts = inputs.remove(&execution.id).unwrap_or_default();
        let mut task_outputs = TaskIo::parameters(parameters(p, "outputs"));
        task_outputs.artifacts = outputs.remove(&execution.id).unwrap_or_default();
        // A cache hit ran no pod: it has no attempt and no log (as weir records its own).
        if kind == TaskKind::Container && !cached {
            let source = match (logs.remove(&execution.id), string(p, "pod_name")) {
                (Some(uri), _) => LogSource::ExecutorLogs(uri),
                (None, Some(pod)) => LogSource::Pod(pod),
                (None, None) => LogSource::None,
            };
            steps.logs.push((id.clone(), source));
        }
        steps.tasks.push(Task {
            id,
            run_id: run.id.clone(),
            parent_id,
            display_name: string(p, "display_name").unwrap_or_else(|| name.clone()),
            name,
            kind,
            iteration_index: number(p, "iteration_index"),
            state,
            attempts: if kind == TaskKind::Container && !cached { 1 } else { 0 },
            inputs: task_inputs,
            outputs: task_outputs,
            fingerprint: if execution.state == mlmd::COMPLETE {
                string(p, "cache_fingerprint").unwrap_or_default()
            } else {
                String::new()
            },
            pipeline_name: pipeline_name.clone(),
            cached,
            image: string(p, "image").unwrap_or_default(),
            error: error.clone(),
            created_at: execution.created_ms,
            started_at: execution.created_ms,
            finished_at,
            retry_at: 0,
            pid: 0,
            state_history: vec![
                StateChange { update_time: execution.created_ms, state: RuntimeState::Running, error: None },
                StateChange { update_time: finished_at, state, error },
            ],
        });
    }
    cache_keys(run, &mut steps.tasks);
    steps
}

/// Makes the imported steps weir cache entries: a step KFP completed with caching on gets the
/// fingerprint weir's engine computes for the same step (`weir_spec::cache::fingerprint`), so
/// a weir run of the same pipeline with the same inputs reuses it. KFP's own fingerprint
/// (a hash of KFP's cache-key proto) is not weir's and is not kept. A step weir cannot
/// place in the run's spec gets none.
fn cache_keys(run: &Run, tasks: &mut [Task]) {
    let spec = weir_spec::ir::PipelineSpec::parse(&run.pipeline_spec).ok();
    let by_id: HashMap<String, Task> = tasks.iter().map(|t| (t.id.clone(), t.clone())).collect();
    for task in tasks.iter_mut().filter(|t| !t.fingerprint.is_empty()) {
        task.fingerprint = spec.as_ref().and_then(|spec| weir_fingerprint(spec, &by_id, task)).unwrap_or_default();
    }
}

fn weir_fingerprint(spec: &PipelineSpec, tasks: &HashMap<String, Task>, task: &Task) -> Option<String> {
    if task.kind != TaskKind::Container || task.cached || task.state != RuntimeState::Succeeded {
        return None;
    }
    let (task_spec, component) = spec_task(spec, tasks, task)?;
    if !task_spec.caching_options.enable_cache {
        return None;
    }
    let container = spec.executor(component.executor_label.as_deref()?).ok()?.container.clone()?;
    let parameters =
        weir_spec::values::complete_task_parameters(&component.input_definitions, &task.inputs.parameters, &task.name)
            .ok()?;
    Some(weir_spec::cache::fingerprint(task_spec, &container, &parameters, &task.inputs.artifacts, component))
}

/// The IR task and component a task stands for: its name in its parent's DAG, the parent
/// found the same way (a loop iteration's DAG is its loop's).
fn spec_task<'a>(
    spec: &'a PipelineSpec,
    tasks: &HashMap<String, Task>,
    task: &Task,
) -> Option<(&'a TaskSpec, &'a ComponentSpec)> {
    let parent = tasks.get(&task.parent_id)?;
    let component = if parent.parent_id.is_empty() {
        &spec.root
    } else {
        let owner = if parent.kind == TaskKind::Iteration { tasks.get(&parent.parent_id)? } else { parent };
        spec_task(spec, tasks, owner)?.1
    };
    let task_spec = component.dag.as_ref()?.tasks.get(&task.name)?;
    Some((task_spec, spec.component(&task_spec.component_ref.name).ok()?))
}

/// A log as KFP's bucket keeps it, as text: plain, gzip, or a gzipped tar holding one file
/// (Argo's archive; `archive/log.go` `decompressLogArchiveReader`).
pub fn decode_log(bytes: &[u8]) -> String {
    use std::io::Read;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut unzipped = Vec::new();
    if flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut unzipped).is_err() {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    if unzipped.len() > 262 && &unzipped[257..262] == b"ustar" {
        let mut archive = tar::Archive::new(unzipped.as_slice());
        if let Ok(mut entries) = archive.entries() {
            while let Some(Ok(mut entry)) = entries.next() {
                if entry.header().entry_type().is_file() {
                    let mut text = Vec::new();
                    if entry.read_to_end(&mut text).is_ok() {
                        return String::from_utf8_lossy(&text).into_owned();
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&unzipped).into_owned()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn logs_decode_plain_gzip_and_tgz() {
        assert_eq!(decode_log(b"hello\n"), "hello\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"zipped\n").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode_log(&gz), "zipped\n");
        let mut tarball = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(7);
        header.set_mode(0o644);
        header.set_cksum();
        tarball.append_data(&mut header, "main.log", &b"in tar\n"[..]).unwrap();
        let mut tgz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        tgz.write_all(&tarball.into_inner().unwrap()).unwrap();
        assert_eq!(decode_log(&tgz.finish().unwrap()), "in tar\n");
    }

    #[test]
    fn derived_ids_are_stable() {
        assert_eq!(artifact_id("s", 7), artifact_id("s", 7));
        assert_ne!(artifact_id("s", 7), artifact_id("t", 7));
        assert!(artifact_id("s", 7) < (1 << 53));
    }
}
