//! Runs: creation from a spec or a pipeline version, reads, and the state changes the API can
//! ask for (terminate, retry, archive). Execution itself belongs to the engine.

use std::sync::Arc;

use weir_api_model::{self as wire, ListParams};
use weir_store::{
    Entity, ErrorInfo, Page, Run, RuntimeState, StateChange, StorageState, StoreError, Task, TaskChanges,
};

use crate::error::{Code, ServiceError, ServiceResult};
use crate::experiments::ExperimentService;
use crate::{inline_spec, list_query, new_id, require, Context};

/// Where a run's or recurring run's pipeline comes from.
pub(crate) struct Source {
    pub pipeline_id: String,
    pub pipeline_version_id: String,
    pub pipeline_spec: serde_json::Value,
    pub platform_spec: Option<serde_json::Value>,
}

/// Resolves exactly one of an inline spec or a version reference. A reference naming only the
/// pipeline takes its newest version.
pub(crate) async fn resolve_source(
    ctx: &Context,
    spec: &Option<serde_json::Value>,
    reference: &Option<wire::PipelineVersionReference>,
    deprecated_version_id: &str,
) -> ServiceResult<Source> {
    let mut reference = reference.clone().filter(|r| !r.pipeline_id.is_empty() || !r.pipeline_version_id.is_empty());
    if reference.is_none() && !deprecated_version_id.is_empty() {
        reference = Some(wire::PipelineVersionReference {
            pipeline_id: String::new(),
            pipeline_version_id: deprecated_version_id.into(),
        });
    }
    match (spec.as_ref().filter(|s| !s.is_null()), reference) {
        (Some(_), Some(_)) => {
            Err(ServiceError::invalid("give either pipeline_spec or pipeline_version_reference, not both"))
        }
        (None, None) => {
            Err(ServiceError::invalid("a pipeline is required: give pipeline_spec or pipeline_version_reference"))
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
                ctx.store.get_pipeline(&reference.pipeline_id).await?;
                ctx.store
                    .latest_pipeline_version(&reference.pipeline_id)
                    .await
                    .map_err(|e| ServiceError::new(Code::FailedPrecondition, e.to_string()))?
            } else {
                let version = ctx.store.get_pipeline_version("", &reference.pipeline_version_id).await?;
                if !reference.pipeline_id.is_empty() && version.pipeline_id != reference.pipeline_id {
                    return Err(ServiceError::invalid(format!(
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

/// The experiment a new run or recurring run goes to: the one named (which must exist), else
/// `Default`.
pub(crate) async fn target_experiment(ctx: &Arc<Context>, experiment_id: &str) -> ServiceResult<String> {
    if experiment_id.trim().is_empty() {
        return Ok(ExperimentService::new(ctx.clone()).default_experiment().await?.id);
    }
    Ok(ctx.store.get_experiment(experiment_id).await?.id)
}

/// A run's pipeline root must be inside weir's artifact store: that is where its artifacts are
/// written. (A root compiled into the spec that is elsewhere is not an error: weir then uses
/// its default root, `<artifact store>/artifacts`.)
pub(crate) fn check_pipeline_root(ctx: &Context, pipeline_root: &str) -> ServiceResult<()> {
    if pipeline_root.is_empty() || weir_artifacts::layout::key_for_uri(ctx.artifacts.url(), pipeline_root).is_some() {
        return Ok(());
    }
    Err(ServiceError::invalid(format!(
        "pipeline_root {pipeline_root:?} is outside weir's artifact store {}; give a root under it, or none",
        ctx.artifacts.url()
    )))
}

/// The runtime parameters must fit the pipeline's inputs: no unknown names, the right types,
/// every required one given. Checked at creation so a bad run is refused, not a failed run.
pub(crate) fn check_parameters(
    spec: &serde_json::Value,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> ServiceResult<()> {
    let spec = weir_spec::ir::PipelineSpec::parse(spec)?;
    weir_spec::values::complete_parameters(&spec.root.input_definitions, parameters, "the pipeline")
        .map(|_| ())
        .map_err(|e| ServiceError::invalid(e.0))
}

/// What the steps would need from a cluster that the local driver cannot give (a volume
/// mounted at a path of the step's own, init containers, …) refuses the run when it is
/// created, naming each thing and why, rather than failing it half-way.
pub(crate) fn check_platform(ctx: &Context, platform_spec: &Option<serde_json::Value>) -> ServiceResult<()> {
    let config = weir_spec::platform::PlatformConfig::parse(platform_spec.as_ref())?;
    let (problems, driver) = if ctx.cluster_steps {
        (weir_spec::platform::unsupported_on_cluster(&config), "Kubernetes")
    } else {
        (weir_spec::platform::unsupported(&config, ctx.private_mounts), "local")
    };
    if problems.is_empty() {
        return Ok(());
    }
    Err(ServiceError::invalid(format!(
        "this pipeline's Kubernetes configuration cannot run on weir's {driver} driver: {}",
        problems.join("; ")
    )))
}

/// The experiment named by a list request, which must exist when given.
pub(crate) async fn check_experiment(ctx: &Context, experiment_id: &str) -> ServiceResult<()> {
    if !experiment_id.is_empty() {
        ctx.store.get_experiment(experiment_id).await?;
    }
    Ok(())
}

#[derive(Clone)]
pub struct RunService {
    ctx: Arc<Context>,
}

impl RunService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    pub async fn create(&self, body: &wire::Run) -> ServiceResult<Run> {
        require(&body.display_name, "display_name")?;
        let source =
            resolve_source(&self.ctx, &body.pipeline_spec, &body.pipeline_version_reference, &body.pipeline_version_id)
                .await?;
        let config = body.runtime_config.clone().unwrap_or_default();
        check_parameters(&source.pipeline_spec, &config.parameters)?;
        check_pipeline_root(&self.ctx, &config.pipeline_root)?;
        check_platform(&self.ctx, &source.platform_spec)?;
        let experiment_id = target_experiment(&self.ctx, &body.experiment_id).await?;
        let now = self.ctx.now();
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
        self.ctx.store.create_run(&run).await?;
        self.ctx.wake_engine();
        Ok(run)
    }

    /// A run with its tasks (KFP's `run_details`).
    pub async fn get(&self, id: &str) -> ServiceResult<(Run, Vec<Task>)> {
        let run = self.ctx.store.get_run(id).await?;
        let tasks = self.ctx.store.list_tasks(id).await?;
        Ok((run, tasks))
    }

    /// The run with its spec as the stored text, and its tasks written since task version
    /// `after` (see `TaskStore::run_with_task_changes`).
    pub async fn get_with_task_changes(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> weir_store::StoreResult<(Run, String, TaskChanges)> {
        self.ctx.store.run_with_task_changes(id, after).await
    }

    /// The run's tasks written since task version `after` (see `TaskStore::task_changes`).
    pub async fn task_changes(&self, id: &str, after: i64) -> weir_store::StoreResult<TaskChanges> {
        self.ctx.store.task_changes(id, Some(after)).await
    }

    /// Runs, within the experiment `params.experiment_id` (which must exist) when given.
    pub async fn list(&self, params: &ListParams) -> ServiceResult<Page<Run>> {
        check_experiment(&self.ctx, &params.experiment_id).await?;
        let query = list_query(Entity::Run, params, &[("experiment_id", &params.experiment_id)])?;
        Ok(self.ctx.store.list_runs(&query).await?)
    }

    /// Removes a run: its rows at once (with its cache entries, and the artifacts no other
    /// run's cache hits use), its objects right after, by the collector.
    pub async fn delete(&self, id: &str) -> ServiceResult<()> {
        self.ctx.collector().remove_run(id, "api", self.ctx.keep_artifacts, self.ctx.now()).await?;
        self.ctx.wake_gc();
        Ok(())
    }

    pub async fn archive(&self, id: &str) -> ServiceResult<()> {
        Ok(self.ctx.store.set_run_storage_state(id, StorageState::Archived, self.ctx.now()).await?)
    }

    pub async fn unarchive(&self, id: &str) -> ServiceResult<()> {
        Ok(self.ctx.store.set_run_storage_state(id, StorageState::Available, self.ctx.now()).await?)
    }

    /// Terminate: a run that has not started ends CANCELED at once; a running one goes to
    /// CANCELING for the engine to stop. A finished run cannot be terminated.
    pub async fn terminate(&self, id: &str) -> ServiceResult<()> {
        let now = self.ctx.now();
        let canceled = Some(ErrorInfo::run_terminated());
        match self
            .ctx
            .store
            .transition_run(id, &[RuntimeState::Pending, RuntimeState::Paused], RuntimeState::Canceled, canceled, now)
            .await
        {
            Ok(_) => {
                self.ctx.wake_engine();
                Ok(())
            }
            Err(StoreError::FailedPrecondition(_)) => {
                self.ctx.store.transition_run(id, &[RuntimeState::Running], RuntimeState::Canceling, None, now).await?;
                self.ctx.wake_engine();
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Retry: a failed or canceled run goes back to PENDING (KFP answers 409 otherwise).
    pub async fn retry(&self, id: &str) -> ServiceResult<()> {
        self.ctx
            .store
            .transition_run(
                id,
                &[RuntimeState::Failed, RuntimeState::Canceled],
                RuntimeState::Pending,
                None,
                self.ctx.now(),
            )
            .await
            .map_err(|e| match e {
                StoreError::FailedPrecondition(message) => {
                    ServiceError::new(Code::Aborted, format!("only failed or canceled runs can be retried: {message}"))
                }
                other => other.into(),
            })?;
        self.ctx.wake_engine();
        Ok(())
    }
}
