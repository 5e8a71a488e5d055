//! What the import needs of each of weir's entities: its ledger kind, what a weir user can
//! change of it (to tell a conflict), how it is read back and written.

use std::future::Future;

use serde_json::json;
use weir_store::{
    Experiment, ImportBatch, Imported, LedgerEntry, MetadataStore, Pipeline, PipelineVersion, RecurringRun, Run,
    StoreResult,
};

use super::{Applier, Item};
use crate::map;
use crate::ImportError;

/// What the import needs of each of weir's entities.
pub(super) trait Entity: Sized + Clone + Send + Sync {
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// A digest of what a weir user can change (names, archiving, enabling, state).
    fn weir_digest(&self) -> String;
    /// Carries over what weir keeps of its own when a changed source row replaces its copy.
    fn keep_weir_fields(&mut self, _current: &Self) {}
    fn push(self, replace: bool, batch: &mut ImportBatch);
    fn current(store: &dyn MetadataStore, entity: &Self) -> impl Future<Output = StoreResult<Self>> + Send;
    /// Completes the rows about to be written (a run's steps, read only for runs written).
    async fn enrich(_applier: &mut Applier<'_>, _rows: &mut [Pending<Self>]) -> Result<(), ImportError> {
        Ok(())
    }
    /// Files the row under a weir experiment (weir's `Default`).
    fn set_experiment(&mut self, _experiment_id: &str) {}
}

/// A row to be written: the item, and whether it replaces weir's copy.
pub(super) type Pending<T> = (Item<T>, bool);

/// A row on its way into weir: the item, whether it replaces weir's copy, its ledger entry.
pub(super) type Write<T> = (Item<T>, bool, LedgerEntry);

impl Entity for Pipeline {
    const KIND: &'static str = "pipeline";
    fn id(&self) -> &str {
        &self.id
    }
    fn weir_digest(&self) -> String {
        map::sha256(&json!([self.display_name, self.description]).to_string())
    }
    fn push(self, replace: bool, batch: &mut ImportBatch) {
        batch.pipelines.push(Imported { entity: self, replace });
    }
    async fn current(store: &dyn MetadataStore, entity: &Self) -> StoreResult<Self> {
        store.get_pipeline(&entity.id).await
    }
}

impl Entity for PipelineVersion {
    const KIND: &'static str = "pipeline_version";
    fn id(&self) -> &str {
        &self.id
    }
    fn weir_digest(&self) -> String {
        map::sha256(&json!([self.display_name, self.description]).to_string())
    }
    fn push(self, replace: bool, batch: &mut ImportBatch) {
        batch.versions.push(Imported { entity: self, replace });
    }
    async fn current(store: &dyn MetadataStore, entity: &Self) -> StoreResult<Self> {
        store.get_pipeline_version(&entity.pipeline_id, &entity.id).await
    }
}

impl Entity for Experiment {
    const KIND: &'static str = "experiment";
    fn id(&self) -> &str {
        &self.id
    }
    fn weir_digest(&self) -> String {
        map::sha256(&json!([self.display_name, self.description, self.storage_state.as_str()]).to_string())
    }
    fn keep_weir_fields(&mut self, current: &Self) {
        self.last_run_created_at = current.last_run_created_at;
    }
    fn push(self, replace: bool, batch: &mut ImportBatch) {
        batch.experiments.push(Imported { entity: self, replace });
    }
    async fn current(store: &dyn MetadataStore, entity: &Self) -> StoreResult<Self> {
        store.get_experiment(&entity.id).await
    }
}

/// A run with its steps (tasks, the artifacts it produced, their ledger rows), which are
/// written and replaced with it.
#[derive(Debug, Clone)]
pub(crate) struct RunWithSteps {
    pub run: Run,
    /// The Argo Workflow's name, under which Argo archived the steps' logs.
    pub argo_name: String,
    pub tasks: Vec<weir_store::Task>,
    pub artifacts: Vec<weir_store::Artifact>,
    pub ledger: Vec<LedgerEntry>,
}

impl Entity for RunWithSteps {
    const KIND: &'static str = "run";
    fn id(&self) -> &str {
        &self.run.id
    }
    fn weir_digest(&self) -> String {
        let run = &self.run;
        map::sha256(
            &json!([run.display_name, run.storage_state.as_str(), run.state.as_str(), run.experiment_id]).to_string(),
        )
    }
    fn push(self, replace: bool, batch: &mut ImportBatch) {
        batch.runs.push(Imported { entity: self.run, replace });
        batch.tasks.extend(self.tasks);
        batch.artifacts.extend(self.artifacts);
        batch.ledger.extend(self.ledger);
    }
    async fn current(store: &dyn MetadataStore, entity: &Self) -> StoreResult<Self> {
        let run = store.get_run(&entity.run.id).await?;
        Ok(Self { run, argo_name: String::new(), tasks: Vec::new(), artifacts: Vec::new(), ledger: Vec::new() })
    }
    async fn enrich(applier: &mut Applier<'_>, rows: &mut [Pending<Self>]) -> Result<(), ImportError> {
        applier.steps(rows).await
    }
    fn set_experiment(&mut self, experiment_id: &str) {
        self.run.experiment_id = experiment_id.to_string();
    }
}

impl Entity for RecurringRun {
    const KIND: &'static str = "recurring_run";
    fn id(&self) -> &str {
        &self.id
    }
    fn weir_digest(&self) -> String {
        map::sha256(&json!([self.display_name, self.enabled]).to_string())
    }
    fn set_experiment(&mut self, experiment_id: &str) {
        self.experiment_id = experiment_id.to_string();
    }
    fn keep_weir_fields(&mut self, current: &Self) {
        // The scheduler's cursor is weir's: a replaced schedule neither re-fires nor skips.
        self.last_slot_at = current.last_slot_at;
        self.last_index = current.last_index;
    }
    fn push(self, replace: bool, batch: &mut ImportBatch) {
        batch.recurring_runs.push(Imported { entity: self, replace });
    }
    async fn current(store: &dyn MetadataStore, entity: &Self) -> StoreResult<Self> {
        store.get_recurring_run(&entity.id).await
    }
}
