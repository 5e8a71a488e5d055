//! A step's files: its inputs fetched into its folder, its outputs and log kept in the
//! artifact store (both waiting out an outage of the store), and the Python environments of
//! components that ask for packages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use weir_store::{Artifact, Task};

use super::{log_key, Engine, SHUTDOWN_SAVE_RETRIES, STORE_UNAVAILABLE};
use crate::launch::{key_for_uri, StepPlan};
use crate::planner::new_artifact_id;

impl Engine {
    pub(super) async fn keep_log(&self, run_id: &str, task: &Task, log_path: &Path) {
        let bytes = tokio::fs::read(log_path).await.unwrap_or_default();
        let key = log_key(run_id, &task.id, task.attempts);
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

    /// The folder whose `python3` steps use: the configured interpreter, or a cached
    /// environment with the component's packages on top of it.
    pub(super) async fn python_bin(&self, packages: &[String]) -> Result<PathBuf, String> {
        let shim = self.settings.work_dir.join("bin");
        if packages.is_empty() {
            if shim.join("python3").exists() {
                return Ok(shim);
            }
            // Steps starting together would race on the temporary files.
            let _guard = self.env_locks.lock().await;
            if !shim.join("python3").exists() {
                tokio::fs::create_dir_all(&shim).await.map_err(|e| format!("cannot create {}: {e}", shim.display()))?;
                // A script, not a symlink: a virtualenv's interpreter finds its environment
                // from the path it was started by.
                let script = format!(
                    "#!/bin/sh\nexec '{}' \"$@\"\n",
                    self.settings.python.display().to_string().replace('\'', "'\\''")
                );
                for name in ["python3", "python"] {
                    let path = shim.join(name);
                    let temp = shim.join(format!(".{name}.tmp"));
                    tokio::fs::write(&temp, &script)
                        .await
                        .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
                    let mut permissions = tokio::fs::metadata(&temp).await.map_err(|e| e.to_string())?.permissions();
                    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
                    tokio::fs::set_permissions(&temp, permissions).await.map_err(|e| e.to_string())?;
                    tokio::fs::rename(&temp, &path).await.map_err(|e| e.to_string())?;
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
            .map_err(|e| format!("cannot create a Python environment: {e}"))?;
        if !venv.status.success() {
            return Err(format!("cannot create a Python environment: {}", String::from_utf8_lossy(&venv.stderr)));
        }
        // The new environment sees the configured interpreter's packages (kfp) behind its own:
        // `--system-site-packages` alone would reach the base installation, not a virtualenv.
        let base = tokio::process::Command::new(&self.settings.python)
            .env_clear()
            .envs(self.settings.step_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-c", "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])"])
            .output()
            .await
            .map_err(|e| format!("cannot ask the Python interpreter for its packages: {e}"))?;
        let own = tokio::process::Command::new(env_dir.join("bin").join("python"))
            .env_clear()
            .envs(self.settings.step_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
            .output()
            .await
            .map_err(|e| format!("cannot inspect the new Python environment: {e}"))?;
        let own_site = String::from_utf8_lossy(&own.stdout).trim().to_string();
        tokio::fs::write(Path::new(&own_site).join("_weir_base.pth"), &base.stdout)
            .await
            .map_err(|e| format!("cannot link the base packages into the environment: {e}"))?;
        let pip = tokio::process::Command::new(env_dir.join("bin").join("python"))
            // Installing a component's packages runs their build code: steps' environment.
            .env_clear()
            .envs(self.settings.step_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location"])
            .args(packages)
            .output()
            .await
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !pip.status.success() {
            let _ = tokio::fs::remove_dir_all(&env_dir).await;
            let stderr = String::from_utf8_lossy(&pip.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(format!("cannot install the packages {packages:?}: {}", tail.join(" | ")));
        }
        tokio::fs::write(env_dir.join(".ready"), sorted.join("\n")).await.map_err(|e| e.to_string())?;
        Ok(env_dir.join("bin"))
    }

    /// Places an input artifact at a local path: from weir's store (a file, or a folder of
    /// objects), or copied from a local path.
    pub(super) async fn fetch(&self, artifact: &Artifact, local: &Path) -> Result<(), String> {
        let fail = |e: String| format!("cannot fetch input artifact {} ({}): {e}", artifact.id, artifact.uri);
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| fail(e.to_string()))?;
        }
        if let Some(key) = key_for_uri(self.artifacts.url(), &artifact.uri) {
            if self.through_outages(&key, || self.artifacts.exists(&key)).await.map_err(fail)? {
                let bytes = self.through_outages(&key, || self.artifacts.get(&key)).await.map_err(fail)?;
                tokio::fs::write(local, &bytes).await.map_err(|e| fail(e.to_string()))?;
                return Ok(());
            }
            let keys = self.through_outages(&key, || self.artifacts.list(&key)).await.map_err(fail)?;
            if keys.is_empty() {
                // A metrics artifact has no file: the step gets an empty path, as with KFP.
                return Ok(());
            }
            for object in keys {
                let relative = object.strip_prefix(&format!("{key}/")).unwrap_or(&object);
                let target = local.join(relative);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| fail(e.to_string()))?;
                }
                let bytes = self.through_outages(&object, || self.artifacts.get(&object)).await.map_err(fail)?;
                tokio::fs::write(&target, &bytes).await.map_err(|e| fail(e.to_string()))?;
            }
            return Ok(());
        }
        if let Some(path) = local_path(&artifact.uri) {
            let source = self.allowed_local(path).await.map_err(fail)?;
            copy_local(&source, local).await.map_err(fail)?;
        }
        Ok(())
    }

    /// A local file an importer named, if the operator lets steps read it: it must resolve
    /// (links followed, `..` removed) to a place inside one of `local_artifact_roots`. Anything
    /// else of the host (weir's own configuration, keys, other deployments' files) is refused.
    pub(super) async fn allowed_local(&self, path: &Path) -> Result<PathBuf, String> {
        let resolved =
            tokio::fs::canonicalize(path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for root in &self.settings.local_artifact_roots {
            if let Ok(root) = tokio::fs::canonicalize(root).await {
                if resolved.starts_with(&root) {
                    return Ok(resolved);
                }
            }
        }
        Err(format!(
            "{} is a file of this host outside the artifact store; weir reads local files only from the folders \
             the operator allows (executor.local_artifact_roots, --allow-local-artifacts)",
            path.display()
        ))
    }

    /// Reads the step's outputs: parameters from executor_output.json or their files, output
    /// artifacts uploaded to the store with the metadata the step wrote.
    pub(super) async fn collect(
        &self,
        run_id: &str,
        task: &Task,
        plan: &StepPlan,
    ) -> Result<(Vec<Artifact>, Value), String> {
        let executor_output: Value = match tokio::fs::read(&plan.executor_output_file).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("the step wrote an invalid executor_output.json: {e}"))?,
            Err(_) => json!({}),
        };
        let mut parameters = Map::new();
        for (name, (path, kind)) in &plan.output_parameters {
            if let Some(value) = executor_output.get("parameterValues").and_then(|p| p.get(name)) {
                parameters.insert(name.clone(), crate::values::integral_numbers(value));
                continue;
            }
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|_| format!("the step did not produce its output parameter {name:?}"))?;
            parameters.insert(
                name.clone(),
                parse_parameter(&text, kind).map_err(|e| format!("output parameter {name:?}: {e}"))?,
            );
        }
        let mut artifacts = Vec::new();
        let mut artifact_ids = Map::new();
        for output in &plan.outputs {
            let written = executor_output
                .get("artifacts")
                .and_then(|a| a.get(&output.name))
                .and_then(|a| a.get("artifacts"))
                .and_then(|a| a.get(0));
            let metadata = written.and_then(|w| w.get("metadata")).cloned().unwrap_or(json!({}));
            let object_count = self.upload(&output.local_path, &output.key).await?;
            let artifact = Artifact {
                id: new_artifact_id(),
                run_id: run_id.to_string(),
                task_id: task.id.clone(),
                name: output.name.clone(),
                uri: format!("{}/{}", self.artifacts.url().trim_end_matches('/'), output.key),
                schema_title: output.schema_title.clone(),
                schema_version: output.schema_version.clone(),
                metadata,
                created_at: self.clock.now_ms(),
                object_count,
            };
            artifact_ids.insert(output.name.clone(), json!([artifact.id]));
            artifacts.push(artifact);
        }
        Ok((artifacts, json!({"parameters": parameters, "artifacts": artifact_ids})))
    }

    /// Uploads a file, or a folder's files under `key/`; returns how many objects it wrote.
    /// Calls the artifact store, waiting out an outage: a step whose inputs or outputs cannot
    /// move while the store is unreachable waits for it (its slot stays taken), rather than
    /// failing a step that did nothing wrong. During shutdown the wait is short; the error
    /// then starts with [`STORE_UNAVAILABLE`], and the step is left for the next start.
    pub(super) async fn through_outages<T, F, Fut>(&self, key: &str, call: F) -> Result<T, String>
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
                            return Err(format!("{STORE_UNAVAILABLE}: {e}"));
                        }
                    }
                    tracing::warn!(artifact.key = %key, error = %e, "the artifact store is unreachable; waiting for it");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub(super) async fn upload(&self, local: &Path, key: &str) -> Result<i64, String> {
        let fail = |e: String| format!("cannot keep output artifact {key}: {e}");
        let Ok(meta) = tokio::fs::metadata(local).await else { return Ok(0) };
        if meta.is_file() {
            let bytes = Bytes::from(tokio::fs::read(local).await.map_err(|e| fail(e.to_string()))?);
            self.through_outages(key, || self.artifacts.put(key, bytes.clone())).await.map_err(fail)?;
            return Ok(1);
        }
        let mut count = 0;
        let mut stack = vec![local.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut entries = tokio::fs::read_dir(&dir).await.map_err(|e| fail(e.to_string()))?;
            while let Some(entry) = entries.next_entry().await.map_err(|e| fail(e.to_string()))? {
                let path = entry.path();
                let file_type = entry.file_type().await.map_err(|e| fail(e.to_string()))?;
                if file_type.is_dir() {
                    stack.push(path);
                } else if file_type.is_file() {
                    let relative = path.strip_prefix(local).map_err(|e| fail(e.to_string()))?;
                    let object = format!("{key}/{}", relative.display());
                    let bytes = Bytes::from(tokio::fs::read(&path).await.map_err(|e| fail(e.to_string()))?);
                    self.through_outages(&object, || self.artifacts.put(&object, bytes.clone())).await.map_err(fail)?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

/// Converts an output parameter file by the parameter's type (KFP's `TextToPbValue`): strings
/// verbatim, numbers and booleans trimmed, lists and structs as JSON.
pub(super) fn parse_parameter(text: &str, kind: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    match kind {
        "STRING" | "" => Ok(Value::String(text.to_string())),
        "NUMBER_INTEGER" => {
            trimmed.parse::<i64>().map(Value::from).map_err(|_| format!("{trimmed:?} is not an integer"))
        }
        "NUMBER_DOUBLE" => trimmed.parse::<f64>().map(Value::from).map_err(|_| format!("{trimmed:?} is not a number")),
        "BOOLEAN" => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Ok(Value::Bool(true)),
            "false" | "0" | "f" => Ok(Value::Bool(false)),
            _ => Err(format!("{trimmed:?} is not a boolean")),
        },
        _ => serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON: {e}")),
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
pub(super) async fn copy_local(from: &Path, to: &Path) -> Result<(), String> {
    let meta = tokio::fs::symlink_metadata(from).await.map_err(|e| format!("{}: {e}", from.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!("{} is a link; links are not followed out of an allowed folder", from.display()));
    }
    if meta.is_file() {
        tokio::fs::copy(from, to).await.map_err(|e| e.to_string())?;
        return Ok(());
    }
    tokio::fs::create_dir_all(to).await.map_err(|e| e.to_string())?;
    let mut entries = tokio::fs::read_dir(from).await.map_err(|e| e.to_string())?;
    while let Some(entry) = entries.next_entry().await.map_err(|e| e.to_string())? {
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
