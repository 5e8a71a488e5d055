//! Runs: creation from a spec or a pipeline version, and the state changes the API can ask
//! for (terminate, retry). Execution itself belongs to the engine.

use weir_api_model as wire;
use weir_store::{ErrorInfo, Run, RuntimeState, StateChange, StorageState};

use super::{inline_spec, new_id, require};
use crate::error::{ApiError, ApiResult, Code};
use crate::AppState;

/// Where a run's or recurring run's pipeline comes from.
pub(crate) struct Source {
    pub pipeline_id: String,
    pub pipeline_version_id: String,
    pub pipeline_spec: serde_json::Value,
    pub platform_spec: Option<serde_json::Value>,
}

impl AppState {
    /// Resolves exactly one of an inline spec or a version reference. A reference naming only
    /// the pipeline takes its newest version.
    pub(crate) async fn resolve_source(
        &self,
        spec: &Option<serde_json::Value>,
        reference: &Option<wire::PipelineVersionReference>,
        deprecated_version_id: &str,
    ) -> ApiResult<Source> {
        let mut reference =
            reference.clone().filter(|r| !r.pipeline_id.is_empty() || !r.pipeline_version_id.is_empty());
        if reference.is_none() && !deprecated_version_id.is_empty() {
            reference = Some(wire::PipelineVersionReference {
                pipeline_id: String::new(),
                pipeline_version_id: deprecated_version_id.into(),
            });
        }
        match (spec.as_ref().filter(|s| !s.is_null()), reference) {
            (Some(_), Some(_)) => {
                Err(ApiError::invalid("give either pipeline_spec or pipeline_version_reference, not both"))
            }
            (None, None) => {
                Err(ApiError::invalid("a pipeline is required: give pipeline_spec or pipeline_version_reference"))
            }
            (Some(spec), None) => {
                let package = inline_spec(spec)?;
                Ok(Source {
                    pipeline_id: String::new(),
                    pipeline_version_id: String::new(),
                    pipeline_spec: package.pipeline_spec,
                    platform_spec: package.platform_spec,
                })
            }
            (None, Some(reference)) => {
                let version = if reference.pipeline_version_id.is_empty() {
                    self.store.get_pipeline(&reference.pipeline_id).await?;
                    self.store
                        .latest_pipeline_version(&reference.pipeline_id)
                        .await
                        .map_err(|e| ApiError::new(Code::FailedPrecondition, e.to_string()))?
                } else {
                    let version = self.store.get_pipeline_version("", &reference.pipeline_version_id).await?;
                    if !reference.pipeline_id.is_empty() && version.pipeline_id != reference.pipeline_id {
                        return Err(ApiError::invalid(format!(
                            "pipeline version {} belongs to pipeline {}, not {}",
                            version.id, version.pipeline_id, reference.pipeline_id
                        )));
                    }
                    version
                };
                Ok(Source {
                    pipeline_id: version.pipeline_id,
                    pipeline_version_id: version.id,
                    pipeline_spec: version.pipeline_spec,
                    platform_spec: version.platform_spec,
                })
            }
        }
    }

    /// The experiment a new run or recurring run goes to: the one named (which must exist),
    /// else `Default`.
    pub(crate) async fn target_experiment(&self, experiment_id: &str) -> ApiResult<String> {
        if experiment_id.trim().is_empty() {
            return Ok(self.default_experiment().await?.id);
        }
        Ok(self.store.get_experiment(experiment_id).await?.id)
    }

    pub async fn create_run(&self, body: &wire::Run) -> ApiResult<Run> {
        require(&body.display_name, "display_name")?;
        let source = self
            .resolve_source(&body.pipeline_spec, &body.pipeline_version_reference, &body.pipeline_version_id)
            .await?;
        let config = body.runtime_config.clone().unwrap_or_default();
        check_parameters(&source.pipeline_spec, &config.parameters)?;
        self.check_pipeline_root(&config.pipeline_root)?;
        let experiment_id = self.target_experiment(&body.experiment_id).await?;
        let now = self.clock.now_ms();
        let run = Run {
            id: new_id(),
            experiment_id,
            display_name: body.display_name.clone(),
            description: body.description.clone(),
            namespace: String::new(),
            storage_state: StorageState::Available,
            pipeline_id: source.pipeline_id,
            pipeline_version_id: source.pipeline_version_id,
            pipeline_spec: source.pipeline_spec,
            platform_spec: source.platform_spec,
            parameters: config.parameters,
            pipeline_root: config.pipeline_root,
            service_account: body.service_account.clone(),
            created_at: now,
            scheduled_at: now,
            finished_at: 0,
            state: RuntimeState::Pending,
            error: None,
            recurring_run_id: String::new(),
            state_history: vec![StateChange { update_time: now, state: RuntimeState::Pending, error: None }],
        };
        self.store.create_run(&run).await?;
        self.wake_engine();
        Ok(run)
    }

    /// A run's pipeline root must be inside weir's artifact store: that is where its
    /// artifacts are written. (A root compiled into the spec that is elsewhere is not an error:
    /// weir then uses its default root, `<artifact store>/artifacts`.)
    pub(crate) fn check_pipeline_root(&self, pipeline_root: &str) -> ApiResult<()> {
        if pipeline_root.is_empty() || weir_engine::launch::key_for_uri(self.artifacts.url(), pipeline_root).is_some() {
            return Ok(());
        }
        Err(ApiError::invalid(format!(
            "pipeline_root {pipeline_root:?} is outside weir's artifact store {}; give a root under it, or none",
            self.artifacts.url()
        )))
    }

    /// Terminate: a run that has not started ends CANCELED at once; a running one goes to
    /// CANCELING for the engine to stop. A finished run cannot be terminated.
    pub async fn terminate_run(&self, id: &str) -> ApiResult<()> {
        let now = self.clock.now_ms();
        let canceled = Some(ErrorInfo { code: 1, message: "the run was terminated".into() });
        match self
            .store
            .transition_run(id, &[RuntimeState::Pending, RuntimeState::Paused], RuntimeState::Canceled, canceled, now)
            .await
        {
            Ok(_) => {
                self.wake_engine();
                Ok(())
            }
            Err(weir_store::StoreError::FailedPrecondition(_)) => {
                self.store.transition_run(id, &[RuntimeState::Running], RuntimeState::Canceling, None, now).await?;
                self.wake_engine();
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Retry: a failed or canceled run goes back to PENDING (KFP answers 409 otherwise).
    pub async fn retry_run(&self, id: &str) -> ApiResult<()> {
        self.store
            .transition_run(
                id,
                &[RuntimeState::Failed, RuntimeState::Canceled],
                RuntimeState::Pending,
                None,
                self.clock.now_ms(),
            )
            .await
            .map_err(|e| match e {
                weir_store::StoreError::FailedPrecondition(message) => {
                    ApiError::new(Code::Aborted, format!("only failed or canceled runs can be retried: {message}"))
                }
                other => other.into(),
            })?;
        self.wake_engine();
        Ok(())
    }
}

/// The runtime parameters must fit the pipeline's inputs: no unknown names, the right types,
/// every required one given. Checked at creation so a bad run is a 400, not a failed run.
pub(crate) fn check_parameters(
    spec: &serde_json::Value,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> ApiResult<()> {
    let spec = weir_spec::ir::PipelineSpec::parse(spec)?;
    weir_engine::values::complete_parameters(&spec.root.input_definitions, parameters, "the pipeline")
        .map(|_| ())
        .map_err(ApiError::invalid)
}
