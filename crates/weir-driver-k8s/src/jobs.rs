//! Jobs on the cluster: created per attempt, mirrored by a label-selected watch, waited on,
//! and settled (the folder staged back, the log kept, the Job deleted).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use weir_artifacts::ArtifactStore;
use weir_engine::driver::{AttemptRef, Exit, Leftover, ProcessSpec};

use crate::manifest::{self, LABEL_DEPLOYMENT, LABEL_MANAGED, MAIN};
use crate::stage::{self, EXIT, IN, OUT};
use crate::Settings;

/// The cluster as the driver sees it: the API, the mirrored Jobs and Pods, and the attempts
/// this weir knows by handle.
pub struct Cluster {
    settings: Settings,
    artifacts: ArtifactStore,
    jobs_api: Api<Job>,
    pods_api: Api<Pod>,
    claims_api: Api<PersistentVolumeClaim>,
    jobs: Store<Job>,
    pods: Store<Pod>,
    /// Bumped on every change the watches see.
    changes: tokio::sync::watch::Receiver<u64>,
    known: Mutex<HashMap<i64, String>>,
}

/// An attempt's Job, waited on by the engine.
pub struct RunningJob {
    pub(crate) handle: i64,
    cluster: Arc<Cluster>,
    name: String,
    prefix: String,
    workdir: PathBuf,
    log_path: PathBuf,
}

/// What became of an attempt's pod, as far as the watch tells.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// Not there yet, or running.
    Waiting,
    /// Stuck before its step could start (no node, no image): since when, and why.
    Stuck(String),
    /// The step's container ended with this code.
    Ended(i32),
    /// The pod or Job failed around the step (deadline, eviction): why.
    Failed(String),
    /// The Job is gone (deleted: terminated).
    Gone,
}

impl Cluster {
    pub async fn connect(settings: Settings, artifacts: ArtifactStore) -> Result<Arc<Self>, String> {
        let config = match &settings.kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("cannot read the kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(|e| format!("cannot use the kubeconfig {}: {e}", path.display()))?
            }
            None => kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
        };
        let client = Client::try_from(config).map_err(|e| format!("cannot make a Kubernetes client: {e}"))?;
        let namespace = settings.namespace.clone();
        let jobs_api: Api<Job> = Api::namespaced(client.clone(), &namespace);
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client, &namespace);
        let selector =
            format!("{LABEL_MANAGED}=weir,{LABEL_DEPLOYMENT}={}", manifest::label_value(&settings.deployment));
        let (tx, changes) = tokio::sync::watch::channel(0u64);
        let tx = Arc::new(tx);
        let jobs = mirror(jobs_api.clone(), &selector, tx.clone());
        let pods = mirror(pods_api.clone(), &selector, tx);
        // Ready when both have listed once (a restarted weir asks about its Jobs at once).
        let wait = async {
            let _ = jobs.wait_until_ready().await;
            let _ = pods.wait_until_ready().await;
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .map_err(|_| format!("cannot list Jobs and Pods in namespace {namespace:?} (after 60 s)"))?;
        tracing::info!(namespace = %namespace, image = %settings.launcher_image, "steps run as Kubernetes Jobs");
        Ok(Arc::new(Self {
            settings,
            artifacts,
            jobs_api,
            pods_api,
            claims_api,
            jobs,
            pods,
            changes,
            known: Mutex::default(),
        }))
    }

    pub async fn start(self: &Arc<Self>, spec: ProcessSpec) -> Result<RunningJob, String> {
        let pod = spec.pod.as_deref().ok_or("the Kubernetes driver was given a step without its pod")?;
        let job = manifest::job(&self.settings, &spec, pod)?;
        let name = manifest::job_name(&spec.task_id, pod.attempt);
        let prefix = manifest::stage_prefix(&spec.task_id, pod.attempt);
        // What an earlier try of this attempt staged is stale.
        stage::remove(&self.artifacts, &prefix).await;
        stage::upload(&self.artifacts, &format!("{prefix}{IN}"), &spec.workdir, &[], &Default::default(), &[]).await?;
        match self.jobs_api.create(&PostParams::default(), &job).await {
            Ok(_) => {}
            // Another weir (or this one before a restart) made it: the same attempt, adopted.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::info!(job = %name, "the attempt's Job exists already; waiting on it")
            }
            Err(e) => {
                stage::remove(&self.artifacts, &prefix).await;
                return Err(format!("cannot create the step's Job {name}: {e}"));
            }
        }
        tracing::info!(job = %name, task.id = %spec.task_id, image = %pod.image, "step started as a Job");
        Ok(self.running(name, prefix, spec.workdir.clone(), spec.log_path.clone()))
    }

    fn running(self: &Arc<Self>, name: String, prefix: String, workdir: PathBuf, log_path: PathBuf) -> RunningJob {
        let handle = handle_of(&name);
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(handle, name.clone());
        RunningJob { handle, cluster: self.clone(), name, prefix, workdir, log_path }
    }

    /// Deletes an attempt's Job (and so its pod): the engine stops a step this way.
    pub fn kill(self: &Arc<Self>, handle: i64) {
        let Some(name) = self.known.lock().unwrap_or_else(|e| e.into_inner()).get(&handle).cloned() else {
            return;
        };
        let api = self.jobs_api.clone();
        tokio::spawn(async move {
            if let Err(e) = api.delete(&name, &DeleteParams::background()).await {
                tracing::warn!(job = %name, error = %e, "could not delete the step's Job");
            }
        });
    }

    /// kfp-kubernetes' CreatePVC, as KFP's driver does it (`createPVC` in
    /// backend/src/v2/driver/k8s.go): a claim that exists already is kept.
    pub async fn create_volume(
        &self,
        name: &str,
        inputs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        let claim = manifest::claim(&self.settings, name, inputs)?;
        match self.claims_api.create(&PostParams::default(), &claim).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(format!("cannot create the PVC {name}: {e}")),
        }
    }

    /// kfp-kubernetes' DeletePVC: one already gone is fine. Only a claim weir made (its label
    /// says so) is deleted: weir's own storage may have claims in the same namespace, and a
    /// pipeline naming one must not take a database's disk away.
    pub async fn delete_volume(&self, name: &str) -> Result<(), String> {
        let claim = match self.claims_api.get_opt(name).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("cannot read the PVC {name}: {e}")),
        };
        let labels = claim.metadata.labels.unwrap_or_default();
        if labels.get(LABEL_MANAGED).map(String::as_str) != Some("weir") {
            return Err(format!("the PVC {name} was not made by a pipeline's CreatePVC; weir does not delete it"));
        }
        match self.claims_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(format!("cannot delete the PVC {name}: {e}")),
        }
    }

    /// What became of an attempt an earlier weir started: its Job running (adopted), ended
    /// (its folder brought back), or neither.
    pub async fn leftover(self: &Arc<Self>, attempt: AttemptRef<'_>) -> Leftover {
        let number = manifest::attempt_of(attempt.workdir);
        let name = manifest::job_name(attempt.task_id, number);
        let prefix = manifest::stage_prefix(attempt.task_id, number);
        let log_path = attempt.workdir.join(weir_artifacts::layout::LIVE_LOG);
        let job = self.running(name.clone(), prefix.clone(), attempt.workdir.to_path_buf(), log_path);
        let mut seen = self.seen(&name);
        if seen == Seen::Gone && matches!(self.jobs_api.get_opt(&name).await, Ok(Some(_))) {
            seen = Seen::Waiting;
        }
        match seen {
            Seen::Waiting | Seen::Stuck(_) => Leftover::Running(job.handle),
            Seen::Gone => {
                // Ended and deleted before its result was recorded: the launcher's record says.
                let ended = self.artifacts.exists(&format!("{prefix}{EXIT}")).await.unwrap_or(false);
                if ended {
                    Leftover::Ended(job.settle(None).await)
                } else {
                    Leftover::Lost
                }
            }
            Seen::Ended(code) => Leftover::Ended(job.settle(Some(code)).await),
            Seen::Failed(reason) => {
                append(&job.log_path, &format!("[kubernetes] {reason}\n")).await;
                Leftover::Ended(job.settle(Some(1)).await)
            }
        }
    }

    /// The attempt's state from the mirrored Job and Pods.
    fn seen(&self, name: &str) -> Seen {
        let Some(job) = self.jobs.get(&ObjectRef::new(name).within(&self.settings.namespace)) else {
            return Seen::Gone;
        };
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get("job-name")).map(String::as_str) == Some(name))
            .collect();
        for pod in &pods {
            let status = pod.status.as_ref();
            let main = status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|all| all.iter().find(|c| c.name == MAIN))
                .and_then(|c| c.state.as_ref());
            if let Some(done) = main.and_then(|s| s.terminated.as_ref()) {
                return Seen::Ended(done.exit_code);
            }
            let inits = status.and_then(|s| s.init_container_statuses.as_ref()).cloned().unwrap_or_default();
            for init in &inits {
                if let Some(done) = init.state.as_ref().and_then(|s| s.terminated.as_ref()) {
                    if done.exit_code != 0 {
                        return Seen::Failed(format!(
                            "the pod's init container {} failed with exit code {}: {}",
                            init.name,
                            done.exit_code,
                            done.message.clone().unwrap_or_default().trim()
                        ));
                    }
                }
            }
            if status.and_then(|s| s.phase.as_deref()) == Some("Failed") {
                let reason = status.and_then(|s| s.reason.clone()).unwrap_or_else(|| "Failed".into());
                let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
                return Seen::Failed(format!("the step's pod failed ({reason}): {message}"));
            }
            let waiting = status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
                .chain(inits.iter())
                .filter_map(|c| c.state.as_ref().and_then(|s| s.waiting.as_ref()).map(|w| (c, w)))
                .find(|(_, w)| STUCK.contains(&w.reason.as_deref().unwrap_or_default()));
            if let Some((container, waiting)) = waiting {
                return Seen::Stuck(format!(
                    "container {} cannot start ({}): {}",
                    container.name,
                    waiting.reason.clone().unwrap_or_default(),
                    waiting.message.clone().unwrap_or_else(|| container.image.clone())
                ));
            }
            let unschedulable = status.and_then(|s| s.conditions.as_ref()).into_iter().flatten().find(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
            });
            if let Some(condition) = unschedulable {
                return Seen::Stuck(format!(
                    "the pod cannot be scheduled: {}",
                    condition.message.clone().unwrap_or_else(|| "no node fits it".into())
                ));
            }
        }
        let failed = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True");
        if let Some(condition) = failed {
            return Seen::Failed(format!(
                "the step's Job failed ({}): {}",
                condition.reason.clone().unwrap_or_default(),
                condition.message.clone().unwrap_or_default()
            ));
        }
        Seen::Waiting
    }
}

/// Waiting reasons of a container that will not start without someone's help.
const STUCK: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

impl RunningJob {
    /// Waits for the attempt's end and settles it.
    pub async fn finish(self) -> Exit {
        let mut changes = self.cluster.changes.clone();
        let mut stuck_since: Option<Instant> = None;
        let mut mirrored = false;
        loop {
            let seen = self.cluster.seen(&self.name);
            if seen == Seen::Gone && !mirrored {
                // Not in the mirror yet (just created), or deleted: the API tells which.
                match self.cluster.jobs_api.get_opt(&self.name).await {
                    Ok(None) => {}
                    _ => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
                        continue;
                    }
                }
            }
            mirrored = true;
            match seen {
                Seen::Ended(code) => return self.settle(Some(code)).await,
                Seen::Failed(reason) => {
                    append(&self.log_path, &format!("[kubernetes] {reason}\n")).await;
                    let exit = self.settle(Some(1)).await;
                    return if exit.success() { Exit::Code(1) } else { exit };
                }
                Seen::Gone => {
                    // Deleted: by a terminate, or by `kubectl`. What the launcher kept is kept.
                    let ended = self.cluster.artifacts.exists(&format!("{}{EXIT}", self.prefix)).await;
                    if ended.unwrap_or(false) {
                        return self.settle(None).await;
                    }
                    append(&self.log_path, "[kubernetes] the step's Job was deleted\n").await;
                    stage::remove(&self.cluster.artifacts, &self.prefix).await;
                    return Exit::Signal(9);
                }
                Seen::Stuck(reason) => {
                    let since = *stuck_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.cluster.settings.pending_timeout {
                        let waited = self.cluster.settings.pending_timeout.as_secs();
                        append(
                            &self.log_path,
                            &format!("[kubernetes] the step did not start within {waited} s: {reason}\n"),
                        )
                        .await;
                        let _ = self.cluster.jobs_api.delete(&self.name, &DeleteParams::background()).await;
                        stage::remove(&self.cluster.artifacts, &self.prefix).await;
                        return Exit::Code(1);
                    }
                }
                Seen::Waiting => stuck_since = None,
            }
            // A change, or a second: a stuck pod's time runs without changes.
            let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
        }
    }

    /// Brings the attempt's folder back from the store (the log with the step's output in
    /// it, or the pod's log when the launcher could not keep it), then deletes the Job and
    /// what was staged. The launcher's record of the exit is the step's own code.
    async fn settle(&self, code: Option<i32>) -> Exit {
        let cluster = &self.cluster;
        // Settled once: the handle is not needed to stop it any more.
        cluster.known.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.handle);
        let recorded = cluster.artifacts.get(&format!("{}{EXIT}", self.prefix)).await.ok();
        let recorded = recorded.and_then(|b| String::from_utf8_lossy(&b).trim().parse::<i32>().ok());
        if let Err(e) = stage::download(&cluster.artifacts, &format!("{}{OUT}", self.prefix), &self.workdir, &[]).await
        {
            append(&self.log_path, &format!("[kubernetes] cannot bring the step's files back: {e}\n")).await;
        }
        if recorded.is_none() {
            // The launcher did not finish: the pod's own log is all there is of the step.
            if let Some(text) = self.pod_log().await {
                append(&self.log_path, &text).await;
            }
        }
        if let Err(e) = cluster.jobs_api.delete(&self.name, &DeleteParams::background()).await {
            if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                tracing::warn!(job = %self.name, error = %e, "could not delete the step's Job");
            }
        }
        stage::remove(&cluster.artifacts, &self.prefix).await;
        Exit::Code(recorded.or(code).unwrap_or(1))
    }

    async fn pod_log(&self) -> Option<String> {
        let pod = self.cluster.pods.state().into_iter().find(|p| {
            p.metadata.labels.as_ref().and_then(|l| l.get("job-name")).map(String::as_str) == Some(&self.name)
        })?;
        let name = pod.metadata.name.clone()?;
        let params = LogParams { container: Some(MAIN.into()), ..LogParams::default() };
        self.cluster.pods_api.logs(&name, &params).await.ok()
    }
}

/// Mirrors the labelled objects of one kind; every change bumps `changes`.
fn mirror<K>(api: Api<K>, selector: &str, changes: Arc<tokio::sync::watch::Sender<u64>>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(selector);
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watching the steps' Jobs and Pods failed; retrying");
            }
            changes.send_modify(|n| *n += 1);
        }
    });
    reader
}

/// A handle the engine records for an attempt: the Job's name as a positive number.
fn handle_of(name: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (i64::from_be_bytes(bytes) & i64::MAX).max(1)
}

async fn append(path: &Path, text: &str) {
    use tokio::io::AsyncWriteExt;
    if let Ok(mut file) = tokio::fs::OpenOptions::new().append(true).create(true).open(path).await {
        let _ = file.write_all(text.as_bytes()).await;
    }
}
