//! Weir's Kubernetes driver: each step attempt as a `batch/v1` Job in its component's image.
//!
//! The engine prepares an attempt's folder as it does for a local process (inputs fetched,
//! the executor input's paths in it); the driver stages that folder in the object store, and
//! the launcher (weir's own binary, copied into the pod by an init container) places it in the
//! pod at the same path, runs the step, and stages what the step left. When the Job ends the
//! driver brings the folder back and the engine collects the outputs as from a local step, so
//! both drivers give a step the same paths and the same semantics.
//!
//! Jobs are named after their task and attempt, so a second weir (or a restarted one) finds
//! the Job instead of starting another; a label-selected watch (kube's reflector, which
//! re-lists after a watch expires) mirrors Jobs and Pods.

mod jobs;
pub mod launcher;
pub mod manifest;
mod stage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use weir_engine::driver::{AttemptRef, Driver, Leftover, ProcessSpec, RunningStep, StartError};

pub use jobs::Cluster;

/// How steps run on the cluster (the `kubernetes` section of weir's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The namespace steps run in.
    pub namespace: String,
    /// The service account of steps' pods (default: the namespace's default).
    pub service_account: Option<String>,
    /// The image the launcher is copied from: weir's own.
    pub launcher_image: String,
    pub launcher_pull_policy: Option<String>,
    /// The artifact store as pods open it (weir's own URL).
    pub store_url: String,
    /// The S3 endpoint as pods reach it, when it differs from weir's.
    pub store_endpoint: Option<String>,
    /// A Secret of the store's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …)
    /// for the launcher; none when pods reach the store without (a role, an open server).
    pub store_secret: Option<String>,
    /// Requests of steps that ask for none.
    pub default_cpu_request: Option<String>,
    pub default_memory_request: Option<String>,
    /// How long a pod may wait for a node or its image before its step fails.
    pub pending_timeout: Duration,
    /// Variables every step gets (a pip index for `packages_to_install`, a proxy).
    pub step_env: Vec<(String, String)>,
    /// Tells this deployment's Jobs from another's in one namespace.
    pub deployment: String,
    /// A kubeconfig file; none: in-cluster configuration or `KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
}

/// The driver: a [`Cluster`] as the engine's [`Driver`].
pub struct KubernetesDriver {
    cluster: Arc<Cluster>,
}

impl KubernetesDriver {
    /// Connects to the cluster and starts watching this deployment's Jobs and Pods.
    pub async fn connect(settings: Settings, artifacts: weir_artifacts::ArtifactStore) -> Result<Self, String> {
        Ok(Self { cluster: Cluster::connect(settings, artifacts).await? })
    }
}

#[async_trait]
impl Driver for KubernetesDriver {
    fn remote(&self) -> bool {
        true
    }

    async fn start(&self, spec: ProcessSpec) -> Result<Box<dyn RunningStep>, StartError> {
        let running = self.cluster.start(spec).await.map_err(StartError::Runner)?;
        Ok(Box::new(running))
    }

    fn kill(&self, handle: i64) {
        self.cluster.kill(handle);
    }

    async fn leftover(&self, attempt: AttemptRef<'_>) -> Leftover {
        self.cluster.leftover(attempt).await
    }

    async fn create_volume(
        &self,
        name: &str,
        inputs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        self.cluster.create_volume(name, inputs).await
    }

    async fn delete_volume(&self, name: &str) -> Result<(), String> {
        self.cluster.delete_volume(name).await
    }
}

#[async_trait]
impl RunningStep for jobs::RunningJob {
    fn handle(&self) -> i64 {
        self.handle
    }

    async fn wait(self: Box<Self>) -> weir_engine::driver::Exit {
        self.finish().await
    }
}
