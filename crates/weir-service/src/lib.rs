//! Weir's domain rules, apart from any transport: validation, id and time assignment, ordering
//! of writes between the two stores, and the recurring-run scheduler. The HTTP API (and later
//! the UI) calls these services; they take KFP's request messages and return domain entities.

pub mod error;
pub mod execution;
pub mod experiments;
pub mod pipelines;
pub mod recurring_runs;
pub mod retention;
pub mod runs;
pub mod scheduler;
pub mod step_config;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use weir_api_model::ListParams;
use weir_artifacts::ArtifactStore;
use weir_spec::Package;
use weir_store::{Clock, Entity, ListQuery, MetadataStore};

pub use error::{Code, ServiceError, ServiceResult};
pub use execution::ExecutionService;
pub use experiments::{ExperimentService, DEFAULT_EXPERIMENT};
pub use pipelines::{PipelineService, UploadParams};
pub use recurring_runs::RecurringRunService;
pub use retention::RetentionService;
pub use runs::RunService;
pub use scheduler::Scheduler;
pub use step_config::StepConfigService;
pub use storage::{StorageService, StorageStatus};

/// What every service shares: the two stores, the clock, and the wake-ups of the engine and
/// the scheduler.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: ArtifactStore,
    pub clock: Arc<dyn Clock>,
    /// Wakes the engine when a run is created, terminated or retried.
    pub engine: Arc<Notify>,
    /// The engine's working folder, where logs of running steps are read live.
    pub work_dir: Option<PathBuf>,
    /// Wakes the scheduler when a recurring run is created or enabled.
    pub scheduler: Arc<Notify>,
    /// Whether the engine's steps can have mount namespaces of their own, and so volumes
    /// mounted at paths: runs that need them are refused otherwise.
    pub private_mounts: bool,
    /// Steps run as pods of a cluster, which honours all of kfp-kubernetes.
    pub cluster_steps: bool,
    /// Wakes the collector when a removal leaves objects to delete.
    pub gc: Arc<Notify>,
    /// Removals keep the runs' artifacts (`retention.keep_artifacts`).
    pub keep_artifacts: bool,
    /// The deployment's retention policies (`weir.yaml`), shown for experiments without
    /// their own.
    pub retention_policies: Vec<weir_store::RetentionPolicy>,
}

impl Context {
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            artifacts,
            clock,
            engine: Arc::new(Notify::new()),
            work_dir: None,
            scheduler: Arc::new(Notify::new()),
            private_mounts: false,
            cluster_steps: false,
            gc: Arc::new(Notify::new()),
            keep_artifacts: false,
            retention_policies: Vec::new(),
        }
    }

    /// The collector over this context's stores.
    pub fn collector(&self) -> weir_gc::Collector {
        weir_gc::Collector::new(self.store.clone(), self.artifacts.clone(), self.clock.clone())
            .keeping_artifacts(self.keep_artifacts)
    }

    /// Wakes `engine` on run changes, and reads live logs from its working folder.
    pub fn with_engine(mut self, engine: Arc<Notify>, work_dir: PathBuf) -> Self {
        self.engine = engine;
        self.work_dir = Some(work_dir);
        self
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn wake_engine(&self) {
        self.engine.notify_one();
    }

    pub(crate) fn wake_gc(&self) {
        self.gc.notify_one();
    }

    pub(crate) fn wake_scheduler(&self) {
        self.scheduler.notify_one();
    }
}

/// All services over one context.
#[derive(Clone)]
pub struct Services {
    pub context: Arc<Context>,
    pub pipelines: PipelineService,
    pub experiments: ExperimentService,
    pub runs: RunService,
    pub recurring_runs: RecurringRunService,
    pub retention: RetentionService,
    pub execution: ExecutionService,
    pub step_config: StepConfigService,
    pub storage: StorageService,
    pub scheduler: Scheduler,
}

impl Services {
    pub fn new(context: Context) -> Self {
        let context = Arc::new(context);
        Self {
            pipelines: PipelineService::new(context.clone()),
            experiments: ExperimentService::new(context.clone()),
            runs: RunService::new(context.clone()),
            recurring_runs: RecurringRunService::new(context.clone()),
            retention: RetentionService::new(context.clone()),
            execution: ExecutionService::new(context.clone()),
            step_config: StepConfigService::new(context.clone()),
            storage: StorageService::new(context.clone()),
            scheduler: Scheduler::new(context.clone()),
            context,
        }
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads and validates a spec given inline in a request.
pub(crate) fn inline_spec(value: &Value) -> ServiceResult<Package> {
    let package = weir_spec::split_run_spec(value)?;
    weir_spec::validate(&package.pipeline_spec)?;
    Ok(package)
}

pub(crate) fn require(value: &str, what: &str) -> ServiceResult<()> {
    if value.trim().is_empty() {
        return Err(ServiceError::invalid(format!("{what} is required")));
    }
    Ok(())
}

/// A list request's filter, order and page, within `scope` (field, value) pairs.
pub(crate) fn list_query(entity: Entity, params: &ListParams, scope: &[(&str, &str)]) -> ServiceResult<ListQuery> {
    Ok(ListQuery::resolve(
        entity,
        &params.filter,
        &params.sort_by,
        params.page_size.as_deref(),
        &params.page_token,
        scope,
    )?)
}
