//! Domain entities to KFP wire messages.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use weir_api_model as wire;
use weir_api_model::execution;
use weir_api_model::serde_helpers::from_millis;
use weir_store as domain;

fn time(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    Some(from_millis(ms))
}

fn opt_time(ms: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
    ms.map(from_millis)
}

/// The spec as KFP returns it: the PipelineSpec, or `{pipeline_spec, platform_spec}` when the
/// package had a PlatformSpec.
pub fn spec_value(pipeline_spec: &Value, platform_spec: &Option<Value>) -> Value {
    match platform_spec {
        Some(platform) => json!({ "pipeline_spec": pipeline_spec, "platform_spec": platform }),
        None => pipeline_spec.clone(),
    }
}

fn status(error: &Option<domain::ErrorInfo>) -> Option<wire::Status> {
    error.as_ref().map(|e| wire::Status { code: e.code, message: e.message.clone(), details: Vec::new() })
}

pub fn pipeline(p: &domain::Pipeline) -> wire::Pipeline {
    wire::Pipeline {
        pipeline_id: p.id.clone(),
        display_name: p.display_name.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        created_at: time(p.created_at),
        namespace: p.namespace.clone(),
        error: None,
        tags: p.tags.clone(),
    }
}

pub fn pipeline_version(v: &domain::PipelineVersion) -> wire::PipelineVersion {
    wire::PipelineVersion {
        pipeline_id: v.pipeline_id.clone(),
        pipeline_version_id: v.id.clone(),
        display_name: v.display_name.clone(),
        name: v.name.clone(),
        description: v.description.clone(),
        created_at: time(v.created_at),
        package_url: (!v.package_url.is_empty()).then(|| wire::PackageUrl { pipeline_url: v.package_url.clone() }),
        code_source_url: v.code_source_url.clone(),
        pipeline_spec: Some(spec_value(&v.pipeline_spec, &v.platform_spec)),
        error: None,
        tags: v.tags.clone(),
    }
}

pub fn experiment(e: &domain::Experiment) -> wire::Experiment {
    wire::Experiment {
        experiment_id: e.id.clone(),
        display_name: e.display_name.clone(),
        description: e.description.clone(),
        created_at: time(e.created_at),
        namespace: e.namespace.clone(),
        storage_state: e.storage_state.as_str().to_string(),
        // KFP always sends it, the epoch for an experiment without runs.
        last_run_created_at: time(e.last_run_created_at),
    }
}

fn runtime_config(parameters: &serde_json::Map<String, Value>, pipeline_root: &str) -> Option<wire::RuntimeConfig> {
    if parameters.is_empty() && pipeline_root.is_empty() {
        return None;
    }
    Some(wire::RuntimeConfig { parameters: parameters.clone(), pipeline_root: pipeline_root.to_string() })
}

pub fn run(r: &domain::Run) -> wire::Run {
    let (pipeline_spec, reference) = if r.from_version() {
        (
            None,
            Some(wire::PipelineVersionReference {
                pipeline_id: r.pipeline_id.clone(),
                pipeline_version_id: r.pipeline_version_id.clone(),
            }),
        )
    } else {
        (Some(spec_value(&r.pipeline_spec, &r.platform_spec)), None)
    };
    wire::Run {
        experiment_id: r.experiment_id.clone(),
        run_id: r.id.clone(),
        display_name: r.display_name.clone(),
        storage_state: r.storage_state.as_str().to_string(),
        description: r.description.clone(),
        pipeline_version_id: String::new(),
        pipeline_spec,
        pipeline_version_reference: reference,
        runtime_config: runtime_config(&r.parameters, &r.pipeline_root),
        service_account: r.service_account.clone(),
        created_at: time(r.created_at),
        scheduled_at: time(r.scheduled_at),
        // KFP sends the epoch for a run that has not finished.
        finished_at: time(r.finished_at),
        state: r.state.as_str().to_string(),
        error: status(&r.error),
        run_details: None,
        recurring_run_id: r.recurring_run_id.clone(),
        state_history: r
            .state_history
            .iter()
            .map(|s| wire::RuntimeStatus {
                update_time: time(s.update_time),
                state: s.state.as_str().to_string(),
                error: status(&s.error),
            })
            .collect(),
    }
}

pub fn trigger(t: &domain::Trigger) -> wire::Trigger {
    match t {
        domain::Trigger::Cron { cron, start_time, end_time } => wire::Trigger {
            cron_schedule: Some(wire::CronSchedule {
                start_time: opt_time(*start_time),
                end_time: opt_time(*end_time),
                cron: cron.clone(),
            }),
            periodic_schedule: None,
        },
        domain::Trigger::Periodic { interval_second, start_time, end_time } => wire::Trigger {
            cron_schedule: None,
            periodic_schedule: Some(wire::PeriodicSchedule {
                start_time: opt_time(*start_time),
                end_time: opt_time(*end_time),
                interval_second: Some(*interval_second),
            }),
        },
    }
}

pub fn recurring_run(r: &domain::RecurringRun) -> wire::RecurringRun {
    let (pipeline_spec, reference) = if r.pipeline_id.is_empty() {
        (Some(spec_value(&r.pipeline_spec, &r.platform_spec)), None)
    } else {
        (
            None,
            Some(wire::PipelineVersionReference {
                pipeline_id: r.pipeline_id.clone(),
                pipeline_version_id: r.pipeline_version_id.clone(),
            }),
        )
    };
    wire::RecurringRun {
        recurring_run_id: r.id.clone(),
        display_name: r.display_name.clone(),
        description: r.description.clone(),
        pipeline_version_id: String::new(),
        pipeline_spec,
        pipeline_version_reference: reference,
        runtime_config: runtime_config(&r.parameters, &r.pipeline_root),
        service_account: r.service_account.clone(),
        max_concurrency: Some(r.max_concurrency),
        trigger: Some(trigger(&r.trigger)),
        mode: if r.enabled { "ENABLE" } else { "DISABLE" }.to_string(),
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
        status: if r.enabled { "ENABLED" } else { "DISABLED" }.to_string(),
        error: None,
        no_catchup: r.no_catchup,
        namespace: r.namespace.clone(),
        experiment_id: r.experiment_id.clone(),
    }
}

/// KFP's `ArtifactList`s of a task's inputs or outputs: the artifact ids of each name.
fn artifact_ids(section: &domain::TaskIo) -> BTreeMap<String, wire::ArtifactIds> {
    let mut out = BTreeMap::new();
    for (name, ids) in &section.artifacts {
        let artifact_ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        out.insert(name.clone(), wire::ArtifactIds { artifact_ids });
    }
    out
}

/// A step's pod name (`weir_engine::launch::pod_name`, which the step sees as `KFP_POD_NAME`):
/// its run's job resource name, which has KFP's form, and its key; none for DAGs and loops.
fn pod_name(t: &domain::Task) -> String {
    if t.kind != domain::TaskKind::Container {
        return String::new();
    }
    let resource_name = weir_spec::names::job_resource_name(&t.pipeline_name, &t.run_id);
    format!("{resource_name}-{}", weir_artifacts::layout::segment(&t.name))
}

/// KFP's `V2beta1PipelineTaskDetail` for one task row.
/// A task's detail without its children (`child_tasks`), which the run's answer adds: see
/// `run_details.rs`.
pub fn task_detail(t: &domain::Task) -> wire::PipelineTaskDetail {
    wire::PipelineTaskDetail {
        run_id: t.run_id.clone(),
        task_id: t.id.clone(),
        display_name: t.display_name.clone(),
        create_time: time(t.created_at),
        start_time: (t.started_at > 0).then(|| from_millis(t.started_at)),
        end_time: (t.finished_at > 0).then(|| from_millis(t.finished_at)),
        state: t.state.as_str().to_string(),
        parent_task_id: t.parent_id.clone(),
        pod_name: pod_name(t),
        error: status(&t.error),
        inputs: artifact_ids(&t.inputs),
        outputs: artifact_ids(&t.outputs),
        child_tasks: Vec::new(),
        state_history: t
            .state_history
            .iter()
            .map(|s| wire::RuntimeStatus {
                update_time: time(s.update_time),
                state: s.state.as_str().to_string(),
                error: status(&s.error),
            })
            .collect(),
    }
}

/// A task as its parent's detail lists it.
pub fn child_task(t: &domain::Task) -> wire::ChildTask {
    wire::ChildTask { task_id: t.id.clone(), pod_name: pod_name(t) }
}

pub(crate) fn wire_time(ms: i64) -> String {
    weir_api_model::serde_helpers::format_timestamp(&from_millis(ms))
}

pub fn artifact(a: &domain::Artifact) -> execution::Artifact {
    execution::Artifact {
        artifact_id: a.id.to_string(),
        name: a.name.clone(),
        uri: a.uri.clone(),
        artifact_type: execution::ArtifactType {
            schema_title: a.schema_title.clone(),
            schema_version: a.schema_version.clone(),
        },
        metadata: a.metadata.clone(),
        run_id: a.run_id.clone(),
        task_id: a.task_id.clone(),
        created_at: wire_time(a.created_at),
    }
}

/// A task with its parameters and artifacts spelled out (weir's task read API).
pub fn task_full(t: &domain::Task, artifacts: &HashMap<i64, domain::Artifact>) -> execution::Task {
    let expand = |section: &domain::TaskIo| -> execution::TaskIo {
        let mut expanded: BTreeMap<String, Vec<execution::Artifact>> = BTreeMap::new();
        for (name, ids) in &section.artifacts {
            let list: Vec<execution::Artifact> = ids.iter().filter_map(|id| artifacts.get(id)).map(artifact).collect();
            expanded.insert(name.clone(), list);
        }
        execution::TaskIo { parameters: Value::Object(section.parameters.clone()), artifacts: expanded }
    };
    execution::Task {
        task_id: t.id.clone(),
        run_id: t.run_id.clone(),
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        parent_task_id: t.parent_id.clone(),
        kind: t.kind.as_str().to_string(),
        iteration_index: t.iteration_index,
        state: t.state.as_str().to_string(),
        attempts: t.attempts,
        cached: t.cached,
        image: t.image.clone(),
        pid: t.pid,
        inputs: expand(&t.inputs),
        outputs: expand(&t.outputs),
        create_time: wire_time(t.created_at),
        start_time: (t.started_at > 0).then(|| wire_time(t.started_at)),
        end_time: (t.finished_at > 0).then(|| wire_time(t.finished_at)),
        error: status(&t.error),
        items: t.inputs.items.clone().map(Value::Array),
    }
}
