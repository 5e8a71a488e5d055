//! Experiments, and the `Default` one runs land in when they name none.

use std::sync::Arc;

use weir_api_model::{self as wire, ListParams};
use weir_store::{Entity, Experiment, Page, StorageState, StoreError};

use crate::error::{Code, ServiceError, ServiceResult};
use crate::{list_query, new_id, require, Context};

/// Name of the experiment runs land in when they name none (created at start-up, as KFP does).
pub const DEFAULT_EXPERIMENT: &str = "Default";

#[derive(Clone)]
pub struct ExperimentService {
    ctx: Arc<Context>,
}

impl ExperimentService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    pub async fn create(&self, body: &wire::Experiment) -> ServiceResult<Experiment> {
        require(&body.display_name, "display_name")?;
        let experiment = Experiment {
            id: new_id(),
            display_name: body.display_name.trim().to_string(),
            description: body.description.clone(),
            namespace: String::new(),
            created_at: self.ctx.now(),
            storage_state: StorageState::Available,
            last_run_created_at: 0,
        };
        self.ctx.store.create_experiment(&experiment).await?;
        Ok(experiment)
    }

    /// The `Default` experiment, created if missing (at start-up, and when a run names no
    /// experiment). Safe against a concurrent creation by another weir.
    pub async fn default_experiment(&self) -> ServiceResult<Experiment> {
        match self.ctx.store.get_experiment_by_name("", DEFAULT_EXPERIMENT).await {
            Ok(e) => return Ok(e),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let request = wire::Experiment {
            display_name: DEFAULT_EXPERIMENT.into(),
            description: "All runs created without specifying an experiment are grouped here.".into(),
            ..Default::default()
        };
        match self.create(&request).await {
            Ok(e) => Ok(e),
            Err(e) if e.code == Code::AlreadyExists => {
                Ok(self.ctx.store.get_experiment_by_name("", DEFAULT_EXPERIMENT).await?)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, id: &str) -> ServiceResult<Experiment> {
        Ok(self.ctx.store.get_experiment(id).await?)
    }

    pub async fn list(&self, params: &ListParams) -> ServiceResult<Page<Experiment>> {
        let query = list_query(Entity::Experiment, params, &[])?;
        Ok(self.ctx.store.list_experiments(&query).await?)
    }

    pub async fn archive(&self, id: &str) -> ServiceResult<()> {
        Ok(self.ctx.store.archive_experiment(id, self.ctx.now()).await?)
    }

    pub async fn unarchive(&self, id: &str) -> ServiceResult<()> {
        Ok(self.ctx.store.unarchive_experiment(id).await?)
    }

    /// Deletes an experiment; the `Default` one stays. Without `cascade` its runs and
    /// recurring runs are kept, as in KFP; with it they are removed first (their objects
    /// too), by the collector, and the experiment goes last.
    pub async fn delete(&self, id: &str, cascade: bool) -> ServiceResult<()> {
        let experiment = self.ctx.store.get_experiment(id).await?;
        if experiment.display_name == DEFAULT_EXPERIMENT && experiment.namespace.is_empty() {
            return Err(ServiceError::new(Code::Aborted, "the Default experiment cannot be deleted"));
        }
        if cascade {
            self.ctx.collector().remove_experiment(id, "api", self.ctx.now()).await?;
            self.ctx.wake_gc();
            return Ok(());
        }
        Ok(self.ctx.store.delete_experiment(id).await?)
    }
}
