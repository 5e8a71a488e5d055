//! Experiments.

use weir_api_model as wire;
use weir_store::{Experiment, StorageState, StoreError};

use super::{new_id, require, DEFAULT_EXPERIMENT};
use crate::error::{ApiError, ApiResult, Code};
use crate::AppState;

impl AppState {
    pub async fn create_experiment(&self, body: &wire::Experiment) -> ApiResult<Experiment> {
        require(&body.display_name, "display_name")?;
        let experiment = Experiment {
            id: new_id(),
            display_name: body.display_name.trim().to_string(),
            description: body.description.clone(),
            namespace: String::new(),
            created_at: self.clock.now_ms(),
            storage_state: StorageState::Available,
            last_run_created_at: 0,
        };
        self.store.create_experiment(&experiment).await?;
        Ok(experiment)
    }

    /// The `Default` experiment, created if missing (at start-up, and when a run names no
    /// experiment). Safe against a concurrent creation by another weir.
    pub async fn default_experiment(&self) -> ApiResult<Experiment> {
        match self.store.get_experiment_by_name("", DEFAULT_EXPERIMENT).await {
            Ok(e) => return Ok(e),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let request = wire::Experiment {
            display_name: DEFAULT_EXPERIMENT.into(),
            description: "All runs created without specifying an experiment are grouped here.".into(),
            ..Default::default()
        };
        match self.create_experiment(&request).await {
            Ok(e) => Ok(e),
            Err(e) if e.code == Code::AlreadyExists => {
                Ok(self.store.get_experiment_by_name("", DEFAULT_EXPERIMENT).await?)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn archive_experiment(&self, id: &str) -> ApiResult<()> {
        Ok(self.store.archive_experiment(id, self.clock.now_ms()).await?)
    }

    pub async fn delete_experiment(&self, id: &str) -> ApiResult<()> {
        let experiment = self.store.get_experiment(id).await?;
        if experiment.display_name == DEFAULT_EXPERIMENT && experiment.namespace.is_empty() {
            return Err(ApiError::new(Code::Aborted, "the Default experiment cannot be deleted"));
        }
        Ok(self.store.delete_experiment(id).await?)
    }
}
