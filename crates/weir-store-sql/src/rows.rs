//! Row types as selected, and their conversion to domain types. Each table's SELECT list is
//! its whole row as `schema.rs` defines it; the rows are read by column name.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use weir_store::*;

use crate::parse_json;
use crate::schema;
use crate::text::Text;

fn tags_from(text: &str) -> StoreResult<BTreeMap<String, String>> {
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("stored tags are not valid JSON: {e}")))
}

pub(crate) fn tags_text(tags: &BTreeMap<String, String>) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".into())
}

fn task_io(text: &str, what: &str) -> StoreResult<TaskIo> {
    if text.is_empty() {
        return Ok(TaskIo::default());
    }
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("stored {what} are not valid: {e}")))
}

fn opt_json(text: Option<Text>, what: &str) -> StoreResult<Option<Value>> {
    text.map(|t| parse_json(&t.0, what)).transpose()
}

fn object(text: &str, what: &str) -> StoreResult<Map<String, Value>> {
    match parse_json(text, what)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(StoreError::Internal(format!("stored {what} is not a JSON object"))),
    }
}

pub(crate) fn runtime_state(text: &str) -> StoreResult<RuntimeState> {
    RuntimeState::parse(text).ok_or_else(|| StoreError::Internal(format!("unknown stored run state {text:?}")))
}

fn storage_state(text: &str) -> StoreResult<StorageState> {
    StorageState::parse(text).ok_or_else(|| StoreError::Internal(format!("unknown stored storage state {text:?}")))
}

pub(crate) fn error_text(error: &Option<ErrorInfo>) -> Option<String> {
    error.as_ref().map(|e| serde_json::to_string(e).unwrap_or_default())
}

pub(crate) fn error_from(text: Option<Text>) -> StoreResult<Option<ErrorInfo>> {
    text.map(|t| {
        serde_json::from_str(&t.0).map_err(|e| StoreError::Internal(format!("stored error is not valid JSON: {e}")))
    })
    .transpose()
}

pub(crate) const PIPELINE_COLUMNS: &str = schema::PIPELINES.column_list;

#[derive(sqlx::FromRow)]
pub(crate) struct PipelineRow {
    id: Text,
    name: Text,
    display_name: Text,
    description: Text,
    namespace: Text,
    created_at: i64,
    tags: Text,
}

impl PipelineRow {
    pub(crate) fn into_domain(self) -> StoreResult<Pipeline> {
        Ok(Pipeline {
            id: self.id.0,
            name: self.name.0,
            display_name: self.display_name.0,
            description: self.description.0,
            namespace: self.namespace.0,
            created_at: self.created_at,
            tags: tags_from(&self.tags.0)?,
        })
    }
}

pub(crate) const VERSION_COLUMNS: &str = schema::PIPELINE_VERSIONS.column_list;

#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    id: Text,
    pipeline_id: Text,
    name: Text,
    display_name: Text,
    description: Text,
    created_at: i64,
    pipeline_spec: Text,
    platform_spec: Option<Text>,
    package_key: Text,
    package_url: Text,
    code_source_url: Text,
    tags: Text,
}

impl VersionRow {
    pub(crate) fn into_domain(self) -> StoreResult<PipelineVersion> {
        Ok(PipelineVersion {
            id: self.id.0,
            pipeline_id: self.pipeline_id.0,
            name: self.name.0,
            display_name: self.display_name.0,
            description: self.description.0,
            created_at: self.created_at,
            pipeline_spec: parse_json(&self.pipeline_spec.0, "pipeline spec")?,
            platform_spec: opt_json(self.platform_spec, "platform spec")?,
            package_key: self.package_key.0,
            package_url: self.package_url.0,
            code_source_url: self.code_source_url.0,
            tags: tags_from(&self.tags.0)?,
        })
    }
}

pub(crate) const EXPERIMENT_COLUMNS: &str = schema::EXPERIMENTS.column_list;

#[derive(sqlx::FromRow)]
pub(crate) struct ExperimentRow {
    id: Text,
    display_name: Text,
    description: Text,
    namespace: Text,
    created_at: i64,
    storage_state: Text,
    last_run_created_at: i64,
}

impl ExperimentRow {
    pub(crate) fn into_domain(self) -> StoreResult<Experiment> {
        Ok(Experiment {
            id: self.id.0,
            display_name: self.display_name.0,
            description: self.description.0,
            namespace: self.namespace.0,
            created_at: self.created_at,
            storage_state: storage_state(&self.storage_state.0)?,
            last_run_created_at: self.last_run_created_at,
        })
    }
}

pub(crate) const RUN_COLUMNS: &str = schema::RUNS.column_list;

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: Text,
    experiment_id: Text,
    display_name: Text,
    description: Text,
    namespace: Text,
    storage_state: Text,
    pipeline_id: Text,
    pipeline_version_id: Text,
    pipeline_spec: Text,
    platform_spec: Option<Text>,
    parameters: Text,
    pipeline_root: Text,
    service_account: Text,
    created_at: i64,
    scheduled_at: i64,
    finished_at: i64,
    state: Text,
    error: Option<Text>,
    recurring_run_id: Text,
}

impl RunRow {
    pub(crate) fn into_domain(mut self, state_history: Vec<StateChange>) -> StoreResult<Run> {
        let spec = std::mem::take(&mut self.pipeline_spec.0);
        let mut run = self.into_domain_raw(state_history)?.0;
        run.pipeline_spec = parse_json(&spec, "pipeline spec")?;
        Ok(run)
    }

    /// The run with its spec left as the stored text (`pipeline_spec` is null), for answers
    /// that pass it through.
    pub(crate) fn into_domain_raw(self, state_history: Vec<StateChange>) -> StoreResult<(Run, String)> {
        let spec = self.pipeline_spec.0;
        let run = Run {
            id: self.id.0,
            experiment_id: self.experiment_id.0,
            display_name: self.display_name.0,
            description: self.description.0,
            namespace: self.namespace.0,
            storage_state: storage_state(&self.storage_state.0)?,
            pipeline_id: self.pipeline_id.0,
            pipeline_version_id: self.pipeline_version_id.0,
            pipeline_spec: serde_json::Value::Null,
            platform_spec: opt_json(self.platform_spec, "platform spec")?,
            parameters: object(&self.parameters.0, "run parameters")?,
            pipeline_root: self.pipeline_root.0,
            service_account: self.service_account.0,
            created_at: self.created_at,
            scheduled_at: self.scheduled_at,
            finished_at: self.finished_at,
            state: runtime_state(&self.state.0)?,
            error: error_from(self.error)?,
            recurring_run_id: self.recurring_run_id.0,
            state_history,
        };
        Ok((run, spec))
    }

    pub(crate) fn id(&self) -> &str {
        &self.id.0
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StateRow {
    pub(crate) run_id: Text,
    update_time: i64,
    state: Text,
    error: Option<Text>,
}

impl StateRow {
    pub(crate) fn into_domain(self) -> StoreResult<StateChange> {
        Ok(StateChange {
            update_time: self.update_time,
            state: runtime_state(&self.state.0)?,
            error: error_from(self.error)?,
        })
    }
}

pub(crate) const RECURRING_COLUMNS: &str = schema::RECURRING_RUNS.column_list;

#[derive(sqlx::FromRow)]
pub(crate) struct RecurringRow {
    id: Text,
    display_name: Text,
    description: Text,
    experiment_id: Text,
    namespace: Text,
    pipeline_id: Text,
    pipeline_version_id: Text,
    pipeline_spec: Text,
    platform_spec: Option<Text>,
    parameters: Text,
    pipeline_root: Text,
    service_account: Text,
    max_concurrency: i64,
    trigger_spec: Text,
    enabled: bool,
    no_catchup: bool,
    created_at: i64,
    updated_at: i64,
    last_slot_at: i64,
    last_index: i64,
}

impl RecurringRow {
    pub(crate) fn into_domain(self) -> StoreResult<RecurringRun> {
        Ok(RecurringRun {
            id: self.id.0,
            display_name: self.display_name.0,
            description: self.description.0,
            experiment_id: self.experiment_id.0,
            namespace: self.namespace.0,
            pipeline_id: self.pipeline_id.0,
            pipeline_version_id: self.pipeline_version_id.0,
            pipeline_spec: parse_json(&self.pipeline_spec.0, "pipeline spec")?,
            platform_spec: opt_json(self.platform_spec, "platform spec")?,
            parameters: object(&self.parameters.0, "recurring run parameters")?,
            pipeline_root: self.pipeline_root.0,
            service_account: self.service_account.0,
            max_concurrency: self.max_concurrency,
            trigger: serde_json::from_str(&self.trigger_spec.0)
                .map_err(|e| StoreError::Internal(format!("stored trigger is not valid: {e}")))?,
            enabled: self.enabled,
            no_catchup: self.no_catchup,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_slot_at: self.last_slot_at,
            last_index: self.last_index,
        })
    }
}

pub(crate) const TASK_COLUMNS: &str = schema::TASKS.column_list;

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: Text,
    run_id: Text,
    parent_id: Text,
    name: Text,
    display_name: Text,
    kind: Text,
    iteration_index: Option<i64>,
    state: Text,
    attempts: i64,
    inputs: Text,
    outputs: Text,
    fingerprint: Text,
    pipeline_name: Text,
    cached: bool,
    image: Text,
    error: Option<Text>,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    retry_at: i64,
    pid: i64,
    state_history: Text,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredStateChange {
    pub t: i64,
    pub s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<ErrorInfo>,
}

pub(crate) fn history_text(history: &[StateChange]) -> String {
    let stored: Vec<StoredStateChange> = history
        .iter()
        .map(|h| StoredStateChange { t: h.update_time, s: h.state.as_str().to_string(), e: h.error.clone() })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".into())
}

impl TaskRow {
    pub(crate) fn into_domain(self) -> StoreResult<Task> {
        let stored: Vec<StoredStateChange> = serde_json::from_str(&self.state_history.0)
            .map_err(|e| StoreError::Internal(format!("stored task history is not valid: {e}")))?;
        let state_history = stored
            .into_iter()
            .map(|s| Ok(StateChange { update_time: s.t, state: runtime_state(&s.s)?, error: s.e }))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Task {
            id: self.id.0,
            run_id: self.run_id.0,
            parent_id: self.parent_id.0,
            name: self.name.0,
            display_name: self.display_name.0,
            kind: TaskKind::parse(&self.kind.0)
                .ok_or_else(|| StoreError::Internal(format!("unknown stored task kind {:?}", self.kind.0)))?,
            iteration_index: self.iteration_index,
            state: runtime_state(&self.state.0)?,
            attempts: self.attempts,
            inputs: task_io(&self.inputs.0, "task inputs")?,
            outputs: task_io(&self.outputs.0, "task outputs")?,
            fingerprint: self.fingerprint.0,
            pipeline_name: self.pipeline_name.0,
            cached: self.cached,
            image: self.image.0,
            error: error_from(self.error)?,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            retry_at: self.retry_at,
            pid: self.pid,
            state_history,
        })
    }
}

pub(crate) const ARTIFACT_COLUMNS: &str = schema::ARTIFACTS.column_list;

#[derive(sqlx::FromRow)]
pub(crate) struct ArtifactRow {
    id: i64,
    run_id: Text,
    task_id: Text,
    name: Text,
    uri: Text,
    schema_title: Text,
    schema_version: Text,
    metadata: Text,
    created_at: i64,
    object_count: i64,
}

impl ArtifactRow {
    pub(crate) fn into_domain(self) -> StoreResult<Artifact> {
        Ok(Artifact {
            id: self.id,
            run_id: self.run_id.0,
            task_id: self.task_id.0,
            name: self.name.0,
            uri: self.uri.0,
            schema_title: self.schema_title.0,
            schema_version: self.schema_version.0,
            metadata: parse_json(&self.metadata.0, "artifact metadata")?,
            created_at: self.created_at,
            object_count: self.object_count,
        })
    }
}
