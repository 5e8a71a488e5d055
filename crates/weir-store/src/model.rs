//! Entities as the store keeps them. Times are milliseconds since the Unix epoch (UTC); the
//! API renders them in whole seconds as KFP does, the extra precision keeps ordering stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// `V2beta1RuntimeState`, for runs and tasks.
    RuntimeState {
        Pending = "PENDING",
        Running = "RUNNING",
        Succeeded = "SUCCEEDED",
        Skipped = "SKIPPED",
        Failed = "FAILED",
        Canceling = "CANCELING",
        Canceled = "CANCELED",
        Paused = "PAUSED",
    }
);

impl RuntimeState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped | Self::Failed | Self::Canceled)
    }
}

string_enum!(
    /// Whether a run or an experiment is archived.
    StorageState {
        Available = "AVAILABLE",
        Archived = "ARCHIVED",
    }
);

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub created_at: i64,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineVersion {
    pub id: String,
    pub pipeline_id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub created_at: i64,
    /// The PipelineSpec as protobuf JSON (camelCase), as compiled.
    pub pipeline_spec: Value,
    /// The PlatformSpec (second YAML document), if the package had one.
    pub platform_spec: Option<Value>,
    /// Key of the original package file in the artifact store.
    pub package_key: String,
    /// `package_url.pipeline_url` as given by the creator, if any.
    pub package_url: String,
    pub code_source_url: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub created_at: i64,
    pub storage_state: StorageState,
    /// 0 until a run is created in the experiment.
    pub last_run_created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub update_time: i64,
    pub state: RuntimeState,
    pub error: Option<ErrorInfo>,
}

/// A `google.rpc.Status` as stored with a run or a state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: i32,
    pub message: String,
}

impl ErrorInfo {
    /// gRPC CANCELLED, the code of a run (and of its steps) ended by a terminate request.
    pub const CANCELLED: i32 = 1;

    /// The error a terminated run and the steps it stopped record, wherever they end: the
    /// API (a run that had not started), the engine, or recovery after a restart.
    pub fn run_terminated() -> Self {
        Self { code: Self::CANCELLED, message: "the run was terminated".into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub experiment_id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub storage_state: StorageState,
    /// Set when the run was created from a pipeline version reference.
    pub pipeline_id: String,
    pub pipeline_version_id: String,
    /// The spec the run executes: given inline, or copied from the version at creation so a
    /// later deletion of the version cannot break the run.
    pub pipeline_spec: Value,
    pub platform_spec: Option<Value>,
    /// `runtime_config.parameters`.
    pub parameters: serde_json::Map<String, Value>,
    pub pipeline_root: String,
    pub service_account: String,
    pub created_at: i64,
    pub scheduled_at: i64,
    pub finished_at: i64,
    pub state: RuntimeState,
    pub error: Option<ErrorInfo>,
    pub recurring_run_id: String,
    pub state_history: Vec<StateChange>,
}

impl Run {
    pub fn from_version(&self) -> bool {
        !self.pipeline_version_id.is_empty()
    }
}

/// A recurring run's trigger, as KFP defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Cron { cron: String, start_time: Option<i64>, end_time: Option<i64> },
    Periodic { interval_second: i64, start_time: Option<i64>, end_time: Option<i64> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecurringRun {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub experiment_id: String,
    pub namespace: String,
    pub pipeline_id: String,
    pub pipeline_version_id: String,
    /// Inline spec; for a version reference, the version's spec at creation time.
    pub pipeline_spec: Value,
    pub platform_spec: Option<Value>,
    pub parameters: serde_json::Map<String, Value>,
    pub pipeline_root: String,
    pub service_account: String,
    pub max_concurrency: i64,
    pub trigger: Trigger,
    pub enabled: bool,
    pub no_catchup: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The last slot a run was created for (0 before the first); the scheduler's cursor.
    pub last_slot_at: i64,
    /// Runs created so far; the next run's index is one more (KFP names runs by it).
    pub last_index: i64,
}

/// The storage identity shared by the metadata store and the artifact store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageIdentity {
    pub id: String,
    pub created_at: i64,
    /// The deployment name the storage was initialised under (empty for storage initialised
    /// before schema version 6). Purging asks for it, or for the id, typed back.
    #[serde(default)]
    pub deployment: String,
}

/// What the metadata store holds, as seen at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// No weir tables at all.
    Empty,
    /// Weir tables exist. `applied` lists the migration versions applied, `known` those this
    /// binary ships.
    Weir {
        identity: Option<StorageIdentity>,
        /// True while the first start is half done (identity not yet in both stores).
        initialising: bool,
        applied: Vec<i64>,
        known: Vec<i64>,
    },
}

string_enum!(
    /// What a task row stands for.
    TaskKind {
        Dag = "dag",
        Loop = "loop",
        Iteration = "iteration",
        Container = "container",
        Importer = "importer",
    }
);

/// One node of a run's execution: a DAG (the root, a sub-pipeline, a condition), a loop, one
/// loop iteration, a container step or an importer.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub run_id: String,
    /// Empty for the root DAG.
    pub parent_id: String,
    /// The task's key in its DAG (`"root"` for the root); `"iteration"` for loop iterations.
    pub name: String,
    pub display_name: String,
    pub kind: TaskKind,
    pub iteration_index: Option<i64>,
    pub state: RuntimeState,
    /// Launches so far (1 after the first).
    pub attempts: i64,
    pub inputs: TaskIo,
    pub outputs: TaskIo,
    /// Cache fingerprint (empty when caching is off for the task).
    pub fingerprint: String,
    /// `pipelineInfo.name` of the run's pipeline: the cache's scope.
    pub pipeline_name: String,
    /// True when the outputs were taken from the cache instead of running the step.
    pub cached: bool,
    pub image: String,
    pub error: Option<ErrorInfo>,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// A pending step does not start before this time (retry backoff).
    pub retry_at: i64,
    /// Process (group) id of the running attempt, so a restarted weir can stop it.
    pub pid: i64,
    pub state_history: Vec<StateChange>,
}

/// A task's inputs or outputs: parameter values and artifact ids by name; a loop's inputs also
/// keep the items it iterates over. Stored as the JSON object
/// `{"parameters": {…}, "artifacts": {name: [artifact id, …]}, "items": […]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskIo {
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Several ids for a list of artifacts (a loop's collected outputs).
    #[serde(default)]
    pub artifacts: BTreeMap<String, Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Value>>,
}

impl TaskIo {
    pub fn parameters(parameters: Map<String, Value>) -> Self {
        Self { parameters, ..Self::default() }
    }

    /// Every artifact id named, in any section.
    pub fn artifact_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.artifacts.values().flatten().copied()
    }
}

impl Task {
    /// Moves the task to a new state, recording it in the history.
    pub fn set_state(&mut self, state: RuntimeState, error: Option<ErrorInfo>, now: i64) {
        self.state = state;
        self.error = error.clone();
        if state.is_terminal() {
            self.finished_at = now;
        }
        self.state_history.push(StateChange { update_time: now, state, error });
    }
}

/// An artifact produced (or imported) by a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// int64, as KFP's artifact ids are.
    pub id: i64,
    pub run_id: String,
    pub task_id: String,
    /// The output key it was produced under.
    pub name: String,
    pub uri: String,
    pub schema_title: String,
    pub schema_version: String,
    pub metadata: Value,
    pub created_at: i64,
    /// Objects the upload wrote under the artifact's key (0 for metadata-only artifacts such as
    /// metrics, and for imported artifacts).
    pub object_count: i64,
}

/// A run's change of state, applied only if the run is in one of `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTransition {
    pub from: Vec<RuntimeState>,
    pub to: RuntimeState,
    pub error: Option<ErrorInfo>,
    pub now: i64,
}

/// A run's tasks as [`crate::TaskStore::task_changes`] finds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskChanges {
    /// The run's task version these tasks bring a reader to.
    pub version: i64,
    /// Whether `tasks` are all of the run's tasks (forget what was read before), or only those
    /// written since the version asked for.
    pub complete: bool,
    pub tasks: Vec<Task>,
}

/// One step of the engine, written atomically (before the actions it causes are carried out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub new_tasks: Vec<Task>,
    pub changed_tasks: Vec<Task>,
    pub deleted_tasks: Vec<String>,
    pub new_artifacts: Vec<Artifact>,
    pub run: Option<RunTransition>,
    /// The replica writing it: with several weirs on one database, the write goes through
    /// only while this replica drives the run ([`crate::RunLeaseStore`]), or fails `Fenced`
    /// with nothing written. None writes unconditionally (one weir, tests).
    pub owner: Option<String>,
    /// Tasks whose outputs a cache hit in this progress reuses. The write goes through only
    /// while each is still there (and holds it against a concurrent removal until it
    /// commits); a source removed meanwhile fails it `Aborted`, and the step runs instead.
    pub cache_sources: Vec<String>,
}

impl Progress {
    pub fn is_empty(&self) -> bool {
        self.new_tasks.is_empty()
            && self.changed_tasks.is_empty()
            && self.deleted_tasks.is_empty()
            && self.new_artifacts.is_empty()
            && self.run.is_none()
    }
}

/// The rows of one table, in a backend-neutral form (a backup's content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDump {
    pub name: String,
    pub columns: Vec<String>,
    /// One JSON array per row, values in column order (text, integers, booleans, null).
    pub rows: Vec<Vec<Value>>,
}

/// Rows per chunk of a streamed export.
pub const EXPORT_CHUNK_ROWS: usize = 500;

impl TableDump {
    /// The table's name and columns, without rows.
    pub fn clone_header(&self) -> TableDump {
        TableDump { name: self.name.clone(), columns: self.columns.clone(), rows: Vec::new() }
    }
}

/// Every weir table at one schema version, read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: i64,
    pub tables: Vec<TableDump>,
}

/// A run the engine may have to drive, with who drives it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRun {
    pub id: String,
    pub state: RuntimeState,
    /// The lease id of the replica driving it, if one took it.
    pub owner: Option<String>,
    /// That replica's lease, as last renewed: None when the lease is gone (its weir stopped).
    pub owner_heartbeat_at: Option<i64>,
    pub owner_host: Option<String>,
}

/// A serving weir's lease: who is serving this storage, renewed by heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub deployment: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub schema_version: i64,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

/// Whether `id` can name a folder or an object key as it is: 1 to 255 letters, digits, `-`,
/// `_` and `.`, not starting with `.` (so never `.`, `..` or a path). Weir makes UUIDs; ids
/// from elsewhere (a restored archive) are checked with this before they are stored.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod safe_id_tests {
    #[test]
    fn ids_are_never_paths() {
        for good in ["1b4e28ba-2fa1-11d2-883f-0016d3cca427", "run_1", "v1.2"] {
            assert!(super::is_safe_id(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/etc", ".hidden", "a b", "a\0b", &"x".repeat(256)] {
            assert!(!super::is_safe_id(bad), "{bad:?}");
        }
    }
}

/// Which kind of step configuration: a Kubernetes Secret or ConfigMap, as kfp-kubernetes
/// pipelines name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepConfigKind {
    Secret,
    ConfigMap,
}

impl StepConfigKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepConfigKind::Secret => "secret",
            StepConfigKind::ConfigMap => "config_map",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "secret" => Some(StepConfigKind::Secret),
            "config_map" => Some(StepConfigKind::ConfigMap),
            _ => None,
        }
    }

    /// How users call it.
    pub fn noun(self) -> &'static str {
        match self {
            StepConfigKind::Secret => "secret",
            StepConfigKind::ConfigMap => "config map",
        }
    }
}

/// A secret or config map: named values steps get as environment variables or files
/// (kfp-kubernetes `use_secret_as_env`, `use_secret_as_volume`, `use_config_map_as_env`, …).
/// A secret's values are read by the engine only: the API and the CLI show its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    pub kind: StepConfigKind,
    pub name: String,
    pub data: std::collections::BTreeMap<String, String>,
    pub created_at: i64,
}

/// One row of `weir import kfp`'s ledger: a source row (or object) and what weir made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Which installation: a digest of its database's address.
    pub source: String,
    /// `pipeline`, `version`, `experiment`, `run`, `recurring_run`, ….
    pub kind: String,
    pub source_id: String,
    /// Digest of what the source row mapped to when it was imported.
    pub source_sha256: String,
    /// The id weir keeps it under (the source's, unless it was merged into an existing entity).
    pub weir_id: String,
    /// Digest of what the import wrote, to tell whether weir's copy changed since.
    pub weir_sha256: String,
    pub imported_at: i64,
}

/// An entity an import writes: new (`replace` false), or replacing weir's copy of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported<T> {
    pub entity: T,
    pub replace: bool,
}

/// What one step of an import writes, in one transaction with its ledger rows: either all of
/// it is in weir and in the ledger, or none of it is (so an interrupted import resumes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportBatch {
    pub pipelines: Vec<Imported<Pipeline>>,
    pub versions: Vec<Imported<PipelineVersion>>,
    pub experiments: Vec<Imported<Experiment>>,
    pub runs: Vec<Imported<Run>>,
    /// The steps of the batch's runs. A replaced run's tasks and artifacts are replaced.
    pub tasks: Vec<Task>,
    /// Artifacts made by (or first seen with) the batch's runs.
    pub artifacts: Vec<Artifact>,
    pub recurring_runs: Vec<Imported<RecurringRun>>,
    pub ledger: Vec<LedgerEntry>,
}

impl ImportBatch {
    pub fn is_empty(&self) -> bool {
        self.ledger.is_empty()
            && self.pipelines.is_empty()
            && self.versions.is_empty()
            && self.experiments.is_empty()
            && self.runs.is_empty()
            && self.tasks.is_empty()
            && self.artifacts.is_empty()
            && self.recurring_runs.is_empty()
    }
}
