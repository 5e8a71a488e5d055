//! Store traits, one per entity, so a caller names exactly what it needs.
//!
//! Callers generate ids and timestamps; a store persists atomically (one transaction per call)
//! and reports conflicts and missing rows as [`StoreError`]s.

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::gc::GcStore;
use crate::list::{ListQuery, Page};
use crate::model::*;

#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Creates a pipeline and, when given, its first version, in one transaction.
    async fn create_pipeline(&self, pipeline: &Pipeline, first_version: Option<&PipelineVersion>) -> StoreResult<()>;
    async fn get_pipeline(&self, id: &str) -> StoreResult<Pipeline>;
    async fn get_pipeline_by_name(&self, namespace: &str, name: &str) -> StoreResult<Pipeline>;
    async fn list_pipelines(&self, query: &ListQuery) -> StoreResult<Page<Pipeline>>;
    /// Deletes a pipeline. With versions left it fails unless `cascade`, which deletes them
    /// too; returns the deleted versions so their packages can be removed.
    async fn delete_pipeline(&self, id: &str, cascade: bool) -> StoreResult<Vec<PipelineVersion>>;
}

#[async_trait]
pub trait PipelineVersionStore: Send + Sync {
    async fn create_pipeline_version(&self, version: &PipelineVersion) -> StoreResult<()>;
    async fn get_pipeline_version(&self, pipeline_id: &str, id: &str) -> StoreResult<PipelineVersion>;
    /// The newest version of a pipeline (what a run gets when it names only the pipeline).
    async fn latest_pipeline_version(&self, pipeline_id: &str) -> StoreResult<PipelineVersion>;
    /// Lists versions; the query is scoped to one pipeline.
    async fn list_pipeline_versions(&self, query: &ListQuery) -> StoreResult<Page<PipelineVersion>>;
    async fn delete_pipeline_version(&self, pipeline_id: &str, id: &str) -> StoreResult<PipelineVersion>;
}

#[async_trait]
pub trait ExperimentStore: Send + Sync {
    async fn create_experiment(&self, experiment: &Experiment) -> StoreResult<()>;
    async fn get_experiment(&self, id: &str) -> StoreResult<Experiment>;
    async fn get_experiment_by_name(&self, namespace: &str, name: &str) -> StoreResult<Experiment>;
    async fn list_experiments(&self, query: &ListQuery) -> StoreResult<Page<Experiment>>;
    /// Archives the experiment and its runs (recording when) and disables its recurring runs,
    /// atomically.
    async fn archive_experiment(&self, id: &str, now: i64) -> StoreResult<()>;
    /// Makes the experiment available again; its runs stay as they are (as in KFP).
    async fn unarchive_experiment(&self, id: &str) -> StoreResult<()>;
    /// Deletes the experiment with its runs and recurring runs.
    async fn delete_experiment(&self, id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates a run with its first state change and stamps the experiment's
    /// `last_run_created_at`, atomically. Fails if the experiment does not exist.
    async fn create_run(&self, run: &Run) -> StoreResult<()>;
    async fn get_run(&self, id: &str) -> StoreResult<Run>;
    /// A run with its spec as the stored JSON text, not parsed (`pipeline_spec` is null): for
    /// answers that pass the spec through unchanged.
    async fn get_run_raw(&self, id: &str) -> StoreResult<(Run, String)>;
    async fn list_runs(&self, query: &ListQuery) -> StoreResult<Page<Run>>;
    /// Archives or unarchives a run; archiving records when (`now`), for retention.
    async fn set_run_storage_state(&self, id: &str, state: StorageState, now: i64) -> StoreResult<()>;
    async fn delete_run(&self, id: &str) -> StoreResult<()>;
    /// Moves a run to `to` if it is in one of `from` (compare-and-set), appending to its state
    /// history; `finished_at` is set when `to` is terminal and cleared otherwise. Fails with
    /// `FailedPrecondition` naming the current state if it is not in `from`.
    async fn transition_run(
        &self,
        id: &str,
        from: &[RuntimeState],
        to: RuntimeState,
        error: Option<ErrorInfo>,
        now: i64,
    ) -> StoreResult<Run>;
}

#[async_trait]
pub trait RecurringRunStore: Send + Sync {
    async fn create_recurring_run(&self, recurring_run: &RecurringRun) -> StoreResult<()>;
    async fn get_recurring_run(&self, id: &str) -> StoreResult<RecurringRun>;
    async fn list_recurring_runs(&self, query: &ListQuery) -> StoreResult<Page<RecurringRun>>;
    async fn set_recurring_run_enabled(&self, id: &str, enabled: bool, now: i64) -> StoreResult<()>;
    async fn delete_recurring_run(&self, id: &str) -> StoreResult<()>;
    /// Every enabled recurring run (what the scheduler looks at).
    async fn enabled_recurring_runs(&self) -> StoreResult<Vec<RecurringRun>>;
    /// Runs of a recurring run that have not finished (for `max_concurrency`).
    async fn active_runs_of(&self, recurring_run_id: &str) -> StoreResult<i64>;
    /// Creates the run of one slot, atomically with the slot's record and the cursor. A slot
    /// already fired is `AlreadyExists`; a cursor that moved meanwhile (another scheduler, or
    /// the recurring run was disabled) is `Aborted`. Nothing is written in either case.
    async fn fire_slot(&self, recurring: &RecurringRun, slot_at: i64, run: &Run) -> StoreResult<()>;
}

/// Secrets and config maps steps are given.
#[async_trait]
pub trait StepConfigStore: Send + Sync {
    /// Fails with `AlreadyExists` when one of that kind and name exists.
    async fn create_step_config(&self, config: &StepConfig) -> StoreResult<()>;
    async fn get_step_config(&self, kind: StepConfigKind, name: &str) -> StoreResult<StepConfig>;
    /// Every one of a kind, by name.
    async fn list_step_configs(&self, kind: StepConfigKind) -> StoreResult<Vec<StepConfig>>;
    async fn delete_step_config(&self, kind: StepConfigKind, name: &str) -> StoreResult<()>;
}

/// What `weir import kfp` writes: entities with their ledger rows.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// The ledger rows of `source` for these source ids of one kind.
    async fn ledger_entries(&self, source: &str, kind: &str, source_ids: &[String]) -> StoreResult<Vec<LedgerEntry>>;
    /// How many ledger rows `source` has, per kind.
    async fn ledger_counts(&self, source: &str) -> StoreResult<Vec<(String, i64)>>;
    /// Writes a batch and its ledger rows in one transaction. New runs stamp their
    /// experiment's `last_run_created_at` when they are newer than its last.
    async fn apply_import(&self, batch: &ImportBatch) -> StoreResult<()>;
}

/// Schema and identity management, used at start-up and by `weir storage`.
#[async_trait]
pub trait StoreAdmin: Send + Sync {
    /// Which backend this is (`sqlite`, `mysql`, `postgres`).
    fn dialect(&self) -> &'static str;
    /// What the database holds, without changing it.
    async fn schema_state(&self) -> StoreResult<SchemaState>;
    /// Applies every pending migration (under the backend's migration lock).
    async fn migrate(&self) -> StoreResult<Vec<i64>>;
    /// Records the identity chosen for new storage, marked as initialising.
    async fn begin_identity(&self, identity: &StorageIdentity) -> StoreResult<()>;
    /// Marks initialisation done once the artifact store holds the identity too.
    async fn finish_identity(&self) -> StoreResult<()>;
    /// Applies pending migrations up to and including `version` only.
    async fn migrate_to(&self, version: i64) -> StoreResult<Vec<i64>>;
    /// Rows per weir table (tables missing at this schema version are left out).
    async fn table_counts(&self) -> StoreResult<Vec<(String, i64)>>;
    /// Streams every weir table, read in one transaction so the tables agree with each other,
    /// as chunks of at most [`EXPORT_CHUNK_ROWS`] rows, parents before children. Every table
    /// sends at least one chunk (an empty table, one with no rows). Returns the schema version
    /// read. Memory stays bounded by the channel, whatever the size of the store.
    async fn export_tables(&self, out: tokio::sync::mpsc::Sender<TableDump>) -> StoreResult<i64>;
    /// Loads chunks (in [`StoreAdmin::export_tables`]'s table order) into a store migrated to
    /// `schema_version` whose tables are empty, in one transaction: nothing is written unless
    /// every chunk loads and the input ends after exactly `rows` rows (an input cut short by
    /// its reader's failure is not mistaken for the end). The storage identity is loaded as
    /// still initialising, so a start completes it only once the artifact store holds it too.
    async fn import_tables(
        &self,
        schema_version: i64,
        rows: u64,
        input: tokio::sync::mpsc::Receiver<TableDump>,
    ) -> StoreResult<()>;
    /// What [`StoreAdmin::import_tables`] would refuse in a chunk, checked without a store
    /// (a restore checks the whole archive before it writes anything).
    fn check_chunk(&self, schema_version: i64, chunk: &TableDump) -> StoreResult<()>;
    /// Every weir table in memory: [`StoreAdmin::export_tables`] collected. For small stores
    /// and tests.
    async fn export_snapshot(&self) -> StoreResult<Snapshot> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<TableDump>(4);
        let collect = async move {
            let mut tables: Vec<TableDump> = Vec::new();
            while let Some(chunk) = rx.recv().await {
                match tables.last_mut() {
                    Some(last) if last.name == chunk.name => last.rows.extend(chunk.rows),
                    _ => tables.push(chunk),
                }
            }
            tables
        };
        let (version, tables) = tokio::join!(self.export_tables(tx), collect);
        Ok(Snapshot { schema_version: version?, tables })
    }
    /// Loads an in-memory snapshot: [`StoreAdmin::import_tables`] fed from it.
    async fn import_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let (tx, rx) = tokio::sync::mpsc::channel::<TableDump>(4);
        let feed = async move {
            for table in &snapshot.tables {
                let mut chunks = table.rows.chunks(EXPORT_CHUNK_ROWS).peekable();
                if chunks.peek().is_none() {
                    let _ = tx.send(TableDump { rows: Vec::new(), ..table.clone_header() }).await;
                }
                for rows in chunks {
                    if tx.send(TableDump { rows: rows.to_vec(), ..table.clone_header() }).await.is_err() {
                        return;
                    }
                }
            }
        };
        let rows = snapshot.tables.iter().map(|t| t.rows.len() as u64).sum();
        let (result, ()) = tokio::join!(self.import_tables(snapshot.schema_version, rows, rx), feed);
        result
    }
    /// Drops every weir table, the migration history included.
    async fn purge(&self) -> StoreResult<()>;
    /// Records or renews a server's lease.
    async fn heartbeat(&self, lease: &Lease) -> StoreResult<()>;
    /// Removes a server's lease (on a clean stop).
    async fn release(&self, lease_id: &str) -> StoreResult<()>;
    /// The leases recorded (stale ones too: their heartbeat tells).
    async fn leases(&self) -> StoreResult<Vec<Lease>>;
    /// The id of the lease whose server runs the engine on this storage, if one does.
    async fn engine_holder(&self) -> StoreResult<Option<String>>;
    /// Takes the engine lease and records `lease`, atomically: with `replacing` None only if
    /// no server holds it, otherwise only if `replacing` (a holder found dead) still does.
    /// Of servers racing for it exactly one succeeds; the others get `Aborted`, and nothing of
    /// theirs is written.
    async fn take_engine(&self, lease: &Lease, replacing: Option<&str>) -> StoreResult<()>;
    /// A cheap round trip, for health checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Connections (in use, idle) for metrics.
    fn pool_usage(&self) -> (u32, u32);
}

/// Everything the server needs from a metadata store.
pub trait MetadataStore:
    PipelineStore
    + PipelineVersionStore
    + ExperimentStore
    + RunStore
    + RecurringRunStore
    + TaskStore
    + StepConfigStore
    + ImportStore
    + RunLeaseStore
    + GcStore
    + StoreAdmin
{
}

impl<T> MetadataStore for T where
    T: PipelineStore
        + PipelineVersionStore
        + ExperimentStore
        + RunStore
        + RecurringRunStore
        + TaskStore
        + StepConfigStore
        + ImportStore
        + RunLeaseStore
        + GcStore
        + StoreAdmin
{
}

/// Which replica drives which run, when several weirs share one database. A replica's lease
/// (`server_leases`, renewed by its heartbeat) is the lease of every run it took; a run whose
/// owner stopped renewing is taken by another, and the old owner's writes are then refused
/// ([`Progress::owner`]).
#[async_trait]
pub trait RunLeaseStore: Send + Sync {
    /// Runs the engine has to drive (pending, running or being canceled), oldest first, with
    /// their owners and the owners' leases.
    async fn active_runs_with_owners(&self) -> StoreResult<Vec<ActiveRun>>;
    /// Takes `run_id` for `owner`, if its owner is still `previous` (None: no owner yet). Of
    /// replicas racing for one run exactly one gets true.
    async fn take_run(&self, run_id: &str, owner: &str, previous: Option<&str>, now: i64) -> StoreResult<bool>;
    /// Gives back every run `owner` drives (a clean stop), for the others to take at once.
    async fn release_runs(&self, owner: &str) -> StoreResult<()>;
}

/// What the engine reads and writes.
#[async_trait]
pub trait TaskStore: Send + Sync {
    async fn list_tasks(&self, run_id: &str) -> StoreResult<Vec<Task>>;
    /// Up to `limit` of the run's tasks in creation order, after the task at `after`
    /// (`created_at`, id): a page of a big run's tasks.
    async fn list_tasks_page(&self, run_id: &str, after: Option<(i64, String)>, limit: i64) -> StoreResult<Vec<Task>>;
    /// The run's tasks written since task version `after`, in creation order: only those, or
    /// all of them (`complete`) when `after` is `None` or tasks were removed or replaced
    /// since. Pass the answer's `version` next time. Not found for a missing run.
    async fn task_changes(&self, run_id: &str, after: Option<i64>) -> StoreResult<TaskChanges>;
    /// `get_run_raw` and `task_changes` with one read of the run's row: what a poll of a run
    /// asks, in one round trip fewer, with the run and its tasks' version read together.
    async fn run_with_task_changes(&self, run_id: &str, after: Option<i64>) -> StoreResult<(Run, String, TaskChanges)>;
    async fn list_artifacts(&self, run_id: &str) -> StoreResult<Vec<Artifact>>;
    async fn get_artifacts(&self, ids: &[i64]) -> StoreResult<Vec<Artifact>>;
    /// Applies one engine step in one transaction. With a run transition whose `from` does not
    /// hold, nothing is written and the error is `Aborted`.
    async fn save_progress(&self, run_id: &str, progress: &Progress) -> StoreResult<()>;
    /// The newest succeeded, non-cached step with this fingerprint in this pipeline.
    async fn find_cached(&self, pipeline_name: &str, fingerprint: &str) -> StoreResult<Option<Task>>;
    /// Runs the engine has to drive (pending, running or being canceled), oldest first, with
    /// their states: the engine keeps runs in memory and only needs to learn what the API
    /// changed, which is always the run's state.
    async fn active_runs(&self) -> StoreResult<Vec<(String, RuntimeState)>>;
}
