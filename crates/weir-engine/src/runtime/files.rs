//! A step's files: its inputs fetched into its folder, its outputs and log kept in the
//! artifact store (both waiting out an outage of the store), and the Python environments of
//! components that ask for packages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use weir_artifacts::layout::{self, key_for_uri};
use weir_spec::values::integral_numbers;
use weir_store::{Artifact, Task, TaskIo};

use super::attempts::Outcome;
use super::{Engine, SHUTDOWN_SAVE_RETRIES};
use crate::driver::EXECUTOR_OUTPUT;
use crate::error::{EnvError, FileError, ParameterError, StepError};
use crate::launch::{OutputArtifact, StepPlan};
use crate::planner::new_artifact_id;

impl Engine {
    pub(super) async fn keep_log(&self, run_id: &str, task: &Task, log_path: &Path) {
        let key = layout::log_key(run_id, &task.id, task.attempts);
        if self.move_into_local_store(log_path, &key).await {
            return;
        }
        let bytes = tokio::fs::read(log_path).await.unwrap_or_default();
        let bytes = Bytes::from(bytes);
        // The result is recorded after the log is kept (the logs endpoint reads the store once
        // the step's folder is gone), so a step waits out an outage for its log too.
        if let Err(e) = self.through_outages(&key, || self.artifacts.put(&key, bytes.clone())).await {
            // Only when weir stops during an outage: the log is kept in memory and written
            // when the artifact store is back (for up to about ten minutes).
            tracing::warn!(task.id = %task.id, error = %e, "could not keep the step's log yet; retrying in the background");
            let artifacts = self.artifacts.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                for _ in 0..20 {
                    tokio::time::sleep(delay).await;
                    match artifacts.put(&key, bytes.clone()).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::debug!(artifact.key = %key, error = %e, "the step's log still cannot be kept")
                        }
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
                tracing::error!(artifact.key = %key, "gave up keeping a step's log: the artifact store stayed unreachable");
            });
        }
    }

    /// Removes the folders a finished run left empty in a local store: its tasks' folders
    /// (made for a Python step's executor output, moved out when read, and for outputs), then
    /// the task names', the run's and the pipeline's above them once empty. Nothing is stored
    /// under them, so deleting the run would not remove them. Only folders weir makes, never
    /// one inside a task's folder: an empty folder there is a step's output (an artifact that
    /// is a folder, or a folder in one), which stays as the step left it. The store's root
    /// folder stays too.
    ///
    /// Done once, by the pass that ends the run, rather than by each step: in a chain the run's
    /// folder would be emptied and made again at every step. The pass holds the run's lock, so
    /// a retry of the run starts its steps only after this (a step whose folder went would fail
    /// writing its outputs); a step of another run of the same pipeline that makes the
    /// pipeline's folder again meanwhile tries again.
    pub(super) async fn prune_store_folders(&self, view: &crate::planner::RunView) {
        let Some(store) = layout::local_store_root(self.artifacts.url()) else { return };
        let root = crate::launch::root_key(&view.spec, &view.run, self.artifacts.url());
        let (pipeline, run_id) = (&view.spec.pipeline_info.name, &view.run.id);
        let task_folders: Vec<PathBuf> = view
            .tasks
            .iter()
            .filter(|t| t.kind == weir_store::TaskKind::Container)
            .map(|t| store.join(layout::task_root_key(&root, pipeline, run_id, &t.name, &t.id)))
            .collect();
        // `<run>/<task name>/<task id>`: the run's folder and the pipeline's are above.
        let Some(run) = task_folders.first().and_then(|f| f.ancestors().nth(2)).map(Path::to_path_buf) else { return };
        let _ = tokio::task::spawn_blocking(move || {
            let mut names = std::collections::BTreeSet::new();
            for folder in task_folders {
                if std::fs::remove_dir(&folder).is_ok() {
                    names.extend(folder.parent().map(Path::to_path_buf));
                }
            }
            for name in names {
                let _ = std::fs::remove_dir(name);
            }
            if std::fs::remove_dir(&run).is_ok() {
                if let Some(pipeline) = run.parent() {
                    let _ = std::fs::remove_dir(pipeline);
                }
            }
        })
        .await;
    }

    /// Moves a file into a store that is a folder (`file://`), by rename: nothing is read or
    /// copied, and the object appears whole. False when the store is not a folder or the
    /// rename failed (another file system, say): the caller then copies it.
    async fn move_into_local_store(&self, file: &Path, key: &str) -> bool {
        let Some(root) = layout::local_store_root(self.artifacts.url()) else { return false };
        // Only keys whose object path is the key itself (the store escapes other characters).
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_')) {
            return false;
        }
        let (from, to) = (file.to_path_buf(), root.join(key));
        let moved = super::local_fs::run(false, move || {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&from, &to)
        })
        .await;
        matches!(moved, Some(Ok(())))
    }

    /// The folder whose `python3` steps use: the configured interpreter, or a cached
    /// environment with the component's packages on top of it.
    pub(super) async fn python_bin(&self, packages: &[String]) -> Result<PathBuf, EnvError> {
        let shim = self.settings.work_dir.join("bin");
        if packages.is_empty() {
            if shim.join("python3").exists() {
                return Ok(shim);
            }
            // Steps starting together would race on the temporary files.
            let _guard = self.env_locks.lock().await;
            if !shim.join("python3").exists() {
                let shim_error = |path: &Path| {
                    let path = path.to_path_buf();
                    move |source| EnvError::Shim { path, source }
                };
                tokio::fs::create_dir_all(&shim).await.map_err(shim_error(&shim))?;
                // A script, not a symlink: a virtualenv's interpreter finds its environment
                // from the path it was started by.
                let script = format!(
                    "#!/bin/sh\nexec '{}' \"$@\"\n",
                    self.settings.python.display().to_string().replace('\'', "'\\''")
                );
                for name in ["python3", "python"] {
                    let path = shim.join(name);
                    let temp = shim.join(format!(".{name}.tmp"));
                    tokio::fs::write(&temp, &script).await.map_err(shim_error(&temp))?;
                    let mut permissions = tokio::fs::metadata(&temp).await.map_err(shim_error(&temp))?.permissions();
                    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
                    tokio::fs::set_permissions(&temp, permissions).await.map_err(shim_error(&temp))?;
                    tokio::fs::rename(&temp, &path).await.map_err(shim_error(&path))?;
                }
            }
            return Ok(shim);
        }
        let mut sorted = packages.to_vec();
        sorted.sort();
        let digest: String = <sha2::Sha256 as sha2::Digest>::digest(sorted.join("\n").as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let env_dir = self.settings.work_dir.join("envs").join(digest);
        let _guard = self.env_locks.lock().await;
        if env_dir.join(".ready").exists() {
            return Ok(env_dir.join("bin"));
        }
        let _ = tokio::fs::remove_dir_all(&env_dir).await;
        let venv = tokio::process::Command::new(&self.settings.python)
            .env_clear()
            .envs(self.settings.step_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&env_dir)
            .output()
            .await
            .map_err(|e| EnvError::Venv(e.to_string()))?;
        if !venv.status.success() {
            return Err(EnvError::Venv(String::from_utf8_lossy(&venv.stderr).into_owned()));
        }
        // The new environment sees the configured interpreter's packages (kfp) behind its own:
        // `--system-site-packages` alone would reach the base installation, not a virtualenv.
        let base = tokio::process::Command::new(&self.settings.python)
            .env_clear()
            .envs(self.settings.step_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-c", "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])"])
            .output()
            .await
            .map_err(EnvError::Base)?;
        let own = tokio::process::Command::new(env_dir.join("bin").join("python"))
            .env_clear()
            .envs(self.settings.step_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
            .output()
            .await
            .map_err(EnvError::Inspect)?;
        let own_site = String::from_utf8_lossy(&own.stdout).trim().to_string();
        tokio::fs::write(Path::new(&own_site).join("_weir_base.pth"), &base.stdout).await.map_err(EnvError::Link)?;
        let pip = tokio::process::Command::new(env_dir.join("bin").join("python"))
            // Installing a component's packages runs their build code: steps' environment.
            .env_clear()
            .envs(self.settings.step_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location"])
            .args(packages)
            .output()
            .await
            .map_err(EnvError::Pip)?;
        if !pip.status.success() {
            let _ = tokio::fs::remove_dir_all(&env_dir).await;
            let stderr = String::from_utf8_lossy(&pip.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(EnvError::Install { packages: packages.to_vec(), tail: tail.join(" | ") });
        }
        tokio::fs::write(env_dir.join(".ready"), sorted.join("\n")).await.map_err(EnvError::Ready)?;
        Ok(env_dir.join("bin"))
    }

    /// Places an input artifact at a local path: from weir's store (a file, or a folder of
    /// objects), or copied from a local path.
    pub(super) async fn fetch(&self, artifact: &Artifact, local: &Path) -> Result<(), StepError> {
        self.fetch_into(artifact, local).await.map_err(|source| StepError::Input {
            id: artifact.id,
            uri: artifact.uri.clone(),
            source,
        })
    }

    async fn fetch_into(&self, artifact: &Artifact, local: &Path) -> Result<(), FileError> {
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let stored = key_for_uri(self.artifacts.url(), &artifact.uri)
            .or_else(|| layout::key_for_path(self.artifacts.url(), &artifact.uri));
        if let Some(key) = stored {
            if self.through_outages(&key, || self.artifacts.exists(&key)).await? {
                let bytes = self.through_outages(&key, || self.artifacts.get(&key)).await?;
                tokio::fs::write(local, &bytes).await?;
                return Ok(());
            }
            let keys = self.through_outages(&key, || self.artifacts.list(&key)).await?;
            if keys.is_empty() {
                // A metrics artifact has no file: the step gets an empty path, as with KFP.
                return Ok(());
            }
            for object in keys {
                let relative = object.strip_prefix(&format!("{key}/")).unwrap_or(&object);
                let target = local.join(relative);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let bytes = self.through_outages(&object, || self.artifacts.get(&object)).await?;
                tokio::fs::write(&target, &bytes).await?;
            }
            return Ok(());
        }
        if let Some(path) = local_path(&artifact.uri) {
            let source = self.allowed_local(path).await?;
            copy_local(&source, local).await?;
        }
        Ok(())
    }

    /// A local file an importer named, if the operator lets steps read it: it must resolve
    /// (links followed, `..` removed) to a place inside one of `local_artifact_roots`. Anything
    /// else of the host (weir's own configuration, keys, other deployments' files) is refused.
    pub(super) async fn allowed_local(&self, path: &Path) -> Result<PathBuf, FileError> {
        let resolved =
            tokio::fs::canonicalize(path).await.map_err(|source| FileError::At { path: path.to_path_buf(), source })?;
        for root in &self.settings.local_artifact_roots {
            if let Ok(root) = tokio::fs::canonicalize(root).await {
                if resolved.starts_with(&root) {
                    return Ok(resolved);
                }
            }
        }
        Err(FileError::NotAllowed(path.to_path_buf()))
    }

    /// Reads the step's outputs: parameters from executor_output.json or their files, output
    /// artifacts uploaded to the store with the metadata the step wrote.
    pub(super) async fn collect(&self, run_id: &str, task: &Task, plan: &StepPlan) -> Outcome {
        let written = plan.executor_output_file.clone();
        // A forked Python step wrote it in the attempt's folder. Another step's, in a local
        // store, would sit among the task's outputs: it moves into the attempt's folder
        // (atomically), where a weir restarted half-way through finds it to collect the step
        // again, and which is emptied or goes once the result is recorded. An empty one there
        // is a reused folder's, of no step.
        let in_folder = plan.workdir.join(EXECUTOR_OUTPUT);
        let local_store = plan.store_root.is_some();
        // Made here, but for a big output (see `local_fs`).
        let big = super::local_fs::big(&[&written, &in_folder]);
        let read = super::local_fs::run(big, move || {
            if local_store && written.exists() {
                let _ = std::fs::rename(&written, &in_folder);
            }
            match std::fs::read(&in_folder) {
                Ok(bytes) if !bytes.is_empty() => Ok(bytes),
                _ => std::fs::read(&written),
            }
        })
        .await;
        let executor_output: Value = match read {
            Some(Ok(bytes)) if !bytes.is_empty() => {
                serde_json::from_slice(&bytes).map_err(StepError::ExecutorOutput)?
            }
            _ => json!({}),
        };
        let mut parameters = Map::new();
        for (name, (path, kind)) in &plan.output_parameters {
            if let Some(value) = executor_output.get("parameterValues").and_then(|p| p.get(name)) {
                parameters.insert(name.clone(), integral_numbers(value));
                continue;
            }
            let text = tokio::fs::read_to_string(path).await.map_err(|_| StepError::MissingParameter(name.clone()))?;
            let value = parse_parameter(&text, kind)
                .map_err(|source| StepError::BadParameter { name: name.clone(), source })?;
            parameters.insert(name.clone(), value);
        }
        let mut artifacts = Vec::new();
        let mut artifact_ids = std::collections::BTreeMap::new();
        for output in &plan.outputs {
            // What the step said of its output (the SDK writes one entry per artifact: more for
            // a list of artifacts), else the artifact as planned.
            let written: Vec<Value> = executor_output
                .get("artifacts")
                .and_then(|a| a.get(&output.name))
                .and_then(|a| a.get("artifacts"))
                .and_then(Value::as_array)
                .filter(|list| !list.is_empty())
                .cloned()
                .unwrap_or_else(|| vec![json!({})]);
            let mut ids = Vec::with_capacity(written.len());
            for (index, entry) in written.iter().enumerate() {
                let metadata = entry.get("metadata").cloned().unwrap_or(json!({}));
                let place = self.output_place(plan, output, entry, index);
                let object_count = match (&place.key, place.existing) {
                    (Some(key), false) => self.keep_output(plan, output, &place.source, key).await?,
                    (Some(key), true) => existing_output(plan, output, key, &place.uri, self.artifacts.url())?,
                    // A URI outside weir's store: the step put its bytes there itself.
                    (None, _) => 0,
                };
                let artifact = Artifact {
                    id: new_artifact_id(),
                    run_id: run_id.to_string(),
                    task_id: task.id.clone(),
                    name: output.name.clone(),
                    uri: place.uri,
                    schema_title: output.schema_title.clone(),
                    schema_version: output.schema_version.clone(),
                    metadata,
                    created_at: self.clock.now_ms(),
                    object_count,
                };
                ids.push(artifact.id);
                artifacts.push(artifact);
            }
            artifact_ids.insert(output.name.clone(), ids);
        }
        Ok((artifacts, TaskIo { parameters, artifacts: artifact_ids, items: None }))
    }

    /// Where an output's bytes are and where they are kept, from what the step said of it in
    /// its executor output, as KFP's launcher merges the executor output into the artifact it
    /// planned (`mergeRuntimeArtifacts`, `uploadOutputArtifacts` in
    /// backend/src/v2/component/launcher_v2.go):
    /// - a `custom_path` (`artifact.set_path(…)`): the bytes are there, kept at the planned key;
    /// - a URI of the step's own (`dsl.get_uri()`, `Dataset(uri=…)`, `.uri = …`): the bytes
    ///   are at that URI's local form, as the SDK maps it; under the task's folder or in weir's
    ///   store they are kept at the matching key, and the artifact records its durable URI;
    ///   outside the store the URI is recorded as the step said it, and nothing is copied;
    /// - nothing said: the planned path and key.
    fn output_place(&self, plan: &StepPlan, output: &OutputArtifact, entry: &Value, index: usize) -> OutputPlace {
        let store_url = self.artifacts.url();
        let text = |key: &str| entry.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        let planned_key = if index == 0 { output.key.clone() } else { format!("{}-{index}", output.key) };
        let planned = |source: PathBuf| OutputPlace {
            uri: layout::uri_for_key(store_url, &planned_key),
            key: Some(planned_key.clone()),
            source,
            existing: false,
        };
        if let Some(custom) = text("custom_path").or_else(|| text("customPath")) {
            return planned(plan.host_path(Path::new(custom)));
        }
        let said = match text("uri") {
            Some(uri)
                if uri != output.local_path.display().to_string()
                    && uri != layout::uri_for_key(store_url, &output.key) =>
            {
                uri
            }
            _ => return planned(output.local_path.clone()),
        };
        let source = sdk_local_path(said).map(|seen| plan.host_path(&seen));
        if let Some(relative) = source.as_ref().and_then(|p| p.strip_prefix(&plan.task_root_dir).ok()) {
            let key = format!("{}/{}", plan.task_root, relative.display());
            return OutputPlace {
                uri: layout::uri_for_key(store_url, &key),
                key: Some(key),
                source: source.clone().unwrap_or_default(),
                existing: false,
            };
        }
        // Elsewhere in weir's store: only an input handed on as an output, referred to, never
        // written over (see `existing_output`).
        if let Some(key) = key_for_uri(store_url, said).or_else(|| layout::key_for_path(store_url, said)) {
            return OutputPlace {
                uri: layout::uri_for_key(store_url, &key),
                source: source.unwrap_or_else(|| output.local_path.clone()),
                key: Some(key),
                existing: true,
            };
        }
        OutputPlace { uri: said.to_string(), key: None, source: source.unwrap_or_default(), existing: false }
    }

    /// Keeps an output's bytes at its key: nothing to copy when the step wrote them there (a
    /// local store), else uploaded. A declared output the step did not write fails the step,
    /// except a metrics artifact, which is all metadata.
    async fn keep_output(
        &self,
        plan: &StepPlan,
        output: &OutputArtifact,
        source: &Path,
        key: &str,
    ) -> Result<i64, StepError> {
        let exists = tokio::fs::symlink_metadata(source).await.is_ok();
        if !exists {
            if METADATA_ONLY.contains(&output.schema_title.as_str()) {
                return Ok(0);
            }
            return Err(StepError::MissingOutput { name: output.name.clone(), path: source.to_path_buf() });
        }
        let in_place = plan.store_root.as_ref().is_some_and(|root| root.join(key) == source);
        if in_place {
            return count_files(source)
                .await
                .map_err(|source| StepError::Output { key: key.to_string(), source: source.into() });
        }
        self.upload(source, key).await.map_err(|source| StepError::Output { key: key.to_string(), source })
    }

    /// Uploads a file, or a folder's files under `key/`; returns how many objects it wrote.
    /// Calls the artifact store, waiting out an outage: a step whose inputs or outputs cannot
    /// move while the store is unreachable waits for it (its slot stays taken), rather than
    /// failing a step that did nothing wrong. During shutdown the wait is short; the error
    /// is then [`FileError::StoreUnavailable`], and the step is left for the next start.
    pub(super) async fn through_outages<T, F, Fut>(&self, key: &str, call: F) -> Result<T, FileError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = weir_artifacts::ArtifactResult<T>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut tries_while_stopping = 0;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(weir_artifacts::ArtifactError::Unavailable(e)) => {
                    if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                        tries_while_stopping += 1;
                        if tries_while_stopping > SHUTDOWN_SAVE_RETRIES {
                            return Err(FileError::StoreUnavailable(e));
                        }
                    }
                    tracing::warn!(artifact.key = %key, error = %e, "the artifact store is unreachable; waiting for it");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(FileError::Store(e)),
            }
        }
    }

    /// Uploads a file, or a folder's files under `key/`; returns how many objects it wrote.
    pub(super) async fn upload(&self, local: &Path, key: &str) -> Result<i64, FileError> {
        let Ok(meta) = tokio::fs::metadata(local).await else { return Ok(0) };
        if meta.is_file() {
            let bytes = Bytes::from(tokio::fs::read(local).await?);
            self.through_outages(key, || self.artifacts.put(key, bytes.clone())).await?;
            return Ok(1);
        }
        let mut count = 0;
        let mut stack = vec![local.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut entries = tokio::fs::read_dir(&dir).await?;
            while let Some(entry) = entries.next_entry().await? {
                let path = entry.path();
                let file_type = entry.file_type().await?;
                if file_type.is_dir() {
                    stack.push(path);
                } else if file_type.is_file() {
                    let relative = path.strip_prefix(local).unwrap_or(path.as_path());
                    let object = format!("{key}/{}", relative.display());
                    let bytes = Bytes::from(tokio::fs::read(&path).await?);
                    self.through_outages(&object, || self.artifacts.put(&object, bytes.clone())).await?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

/// An output naming a place of weir's store outside the step's own folder: one of the step's
/// inputs handed on (`return data`), recorded as a reference to it; anything else fails the
/// step, since writing there could overwrite another task's artifact.
fn existing_output(
    plan: &StepPlan,
    output: &OutputArtifact,
    key: &str,
    uri: &str,
    store_url: &str,
) -> Result<i64, StepError> {
    let key_of = |uri: &str| key_for_uri(store_url, uri).or_else(|| layout::key_for_path(store_url, uri));
    plan.inputs
        .iter()
        .find(|input| key_of(&input.artifact.uri).as_deref() == Some(key))
        .map(|input| input.artifact.object_count)
        .ok_or_else(|| StepError::ForeignOutput { name: output.name.clone(), uri: uri.to_string() })
}

/// Artifact types that are metadata only (the SDK writes their values into the executor
/// output, not a file).
const METADATA_ONLY: [&str; 3] =
    ["system.Metrics", "system.ClassificationMetrics", "system.SlicedClassificationMetrics"];

/// Where an output artifact's bytes are, the key they are kept at (none for a URI outside
/// weir's store) and the URI recorded.
struct OutputPlace {
    /// Kept already, by another task: referred to, not written.
    existing: bool,
    source: PathBuf,
    key: Option<String>,
    uri: String,
}

/// The local path the SDK gives an artifact with this URI (`Artifact._get_path` in
/// sdk/python/kfp/dsl/types/artifact_types.py): the mount points of KFP's object stores, a
/// path as itself.
fn sdk_local_path(uri: &str) -> Option<PathBuf> {
    for (scheme, mount) in [("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/")] {
        if let Some(rest) = uri.strip_prefix(scheme) {
            return Some(PathBuf::from(format!("{mount}{rest}")));
        }
    }
    local_path(uri).map(Path::to_path_buf)
}

/// How many files a file or folder holds (links not followed).
async fn count_files(path: &Path) -> std::io::Result<i64> {
    let meta = tokio::fs::symlink_metadata(path).await?;
    if !meta.is_dir() {
        return Ok(1);
    }
    let mut count = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let kind = entry.file_type().await?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Converts an output parameter file by the parameter's type (KFP's `TextToPbValue`): strings
/// verbatim, numbers and booleans trimmed, lists and structs as JSON.
pub(super) fn parse_parameter(text: &str, kind: &str) -> Result<Value, ParameterError> {
    let trimmed = text.trim();
    match kind {
        "STRING" | "" => Ok(Value::String(text.to_string())),
        "NUMBER_INTEGER" => {
            trimmed.parse::<i64>().map(Value::from).map_err(|_| ParameterError::NotInteger(trimmed.to_string()))
        }
        "NUMBER_DOUBLE" => {
            trimmed.parse::<f64>().map(Value::from).map_err(|_| ParameterError::NotNumber(trimmed.to_string()))
        }
        "BOOLEAN" => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Ok(Value::Bool(true)),
            "false" | "0" | "f" => Ok(Value::Bool(false)),
            _ => Err(ParameterError::NotBoolean(trimmed.to_string())),
        },
        _ => serde_json::from_str(trimmed).map_err(ParameterError::NotJson),
    }
}

pub(super) async fn log_tail(path: &Path) -> String {
    let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("[weir] ")).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(5)..];
    format!("; last output: {}", tail.join(" | "))
}

/// The host path a URI names, for an absolute path or a `file://` URI.
pub(super) fn local_path(uri: &str) -> Option<&Path> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    path.starts_with('/').then(|| Path::new(path))
}

/// Copies a file or a folder (`from` already allowed). Links inside a folder are not followed:
/// one could point anywhere on the host.
pub(super) async fn copy_local(from: &Path, to: &Path) -> Result<(), FileError> {
    let meta =
        tokio::fs::symlink_metadata(from).await.map_err(|source| FileError::At { path: from.to_path_buf(), source })?;
    if meta.file_type().is_symlink() {
        return Err(FileError::Link(from.to_path_buf()));
    }
    if meta.is_file() {
        tokio::fs::copy(from, to).await?;
        return Ok(());
    }
    tokio::fs::create_dir_all(to).await?;
    let mut entries = tokio::fs::read_dir(from).await?;
    while let Some(entry) = entries.next_entry().await? {
        Box::pin(copy_local(&entry.path(), &to.join(entry.file_name()))).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_parameter_files_convert_by_type() {
        assert_eq!(parse_parameter("hello\n", "STRING").unwrap(), json!("hello\n"));
        assert_eq!(parse_parameter(" 42\n", "NUMBER_INTEGER").unwrap(), json!(42));
        assert_eq!(parse_parameter("1.5", "NUMBER_DOUBLE").unwrap(), json!(1.5));
        assert_eq!(parse_parameter("True\n", "BOOLEAN").unwrap(), json!(true));
        assert_eq!(parse_parameter("[1, 2]", "LIST").unwrap(), json!([1, 2]));
        assert!(parse_parameter("x", "NUMBER_INTEGER").is_err());
    }
}
