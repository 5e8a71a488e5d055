//! One attempt of a step, start to end: its folder, its inputs, its process through the
//! driver, its outputs and its log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use weir_artifacts::layout;
use weir_store::Task;

use super::attempts::Outcome;
use super::files::log_tail;
use super::Engine;
use crate::driver::{Exit, PodRequest, ProcessSpec, PythonSpec, EXECUTOR_OUTPUT};
use crate::error::StepError;
use crate::launch::StepPlan;
use crate::step_env;

/// Taken, in an attempt's folder, by whoever decides first whether the attempt starts: the weir
/// starting it, or one recovering it after the claimer stopped. Created exclusively, so of the
/// two exactly one wins.
const START_MARKER: &str = ".weir-started";

/// A local step's temporary folder (`TMPDIR`), in its attempt's folder.
pub(super) const PRIVATE_TMP: &str = "tmp";

/// How long a step runs before its process id is written to its row.
const PID_RECORD_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// The file every attempt's start marker is a hard link to, in weir's working folder.
const MARKER_ANCHOR: &str = ".weir-start-marker";

/// Takes an attempt's start marker (making its folder if need be); false if it was taken.
///
/// The marker is a hard link to one file in `work_dir` rather than a file of its own: a link is
/// as exclusive as `O_EXCL` but allocates no inode, and nothing is freed when the folder goes.
/// Inodes made and freed by the thousand are what a big run's steps cost most on ext4 without
/// a journal, whose allocator skips every recently freed inode one by one (measured in
/// bench/RESULTS.md). Where a link cannot be made (another file system, the link limit), the
/// marker is a file of its own.
pub(super) async fn take_start_marker(work_dir: &Path, workdir: &Path) -> bool {
    // Links and folders: short calls, made here (see `local_fs`).
    let (anchor, workdir) = (work_dir.join(MARKER_ANCHOR), workdir.to_path_buf());
    super::local_fs::run(false, move || {
        if std::fs::create_dir_all(&workdir).is_err() {
            return false;
        }
        let marker = workdir.join(START_MARKER);
        let mut linked = std::fs::hard_link(&anchor, &marker);
        if matches!(&linked, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            let _ = std::fs::OpenOptions::new().write(true).create_new(true).open(&anchor);
            linked = std::fs::hard_link(&anchor, &marker);
        }
        match linked {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(_) => std::fs::OpenOptions::new().write(true).create_new(true).open(&marker).is_ok(),
        }
    })
    .await
    .unwrap_or(false)
}

impl Engine {
    /// The last checks before an attempt's process starts: this replica still holds its lease
    /// (a replica frozen past it may have lost the run), and nobody gave the attempt up (a
    /// weir that recovered the run while this one was stopped). Either way the attempt is
    /// given back as if weir had stopped: pending again, written only if this weir still
    /// drives the run.
    async fn may_start(&self, task_id: &str, workdir: &Path) -> Result<(), StepError> {
        let refused = if self.settings.replica.as_ref().is_some_and(|r| !r.holds()) {
            Some("this weir's lease lapsed before the step started; the step runs again")
        } else if !take_start_marker(&self.settings.work_dir, workdir).await {
            Some("another weir took this attempt over before it started; the step runs again")
        } else {
            None
        };
        match refused {
            Some(message) => {
                self.attempts.give_up(task_id);
                Err(StepError::Start(crate::driver::StartError::Runner(message.into())))
            }
            None => Ok(()),
        }
    }

    /// Prepares the folder, runs the process, collects outputs. The first error is the step's
    /// error.
    pub(super) async fn execute(&self, run_id: &str, task: &Task, plan: &StepPlan) -> Outcome {
        let workdir = self.attempt_dir(run_id, &task.id, task.attempts);
        let log_path = workdir.join(layout::LIVE_LOG);
        let forkable = self.settings.python_driver.as_ref().zip(plan.python_call());
        // A forked step's executor output goes in its own folder, so its task root in the
        // store is made only for its artifacts; or when its code may write there by itself,
        // through `dsl.get_uri()`, as it could when the task root held the executor output.
        let task_root_unneeded = forkable.is_some_and(|(_, (source, _))| !source.contains("get_uri"));
        self.prepare_folder(task, plan, &workdir, &log_path, task_root_unneeded).await?;
        for input in &plan.inputs {
            if let Some(local) = &input.local_path {
                self.fetch(&input.artifact, local).await?;
            }
        }
        let env = if self.driver.remote() {
            // A pod starts from its image's environment: only the step's own variables.
            let mut env = Vec::new();
            step_env::set(&mut env, "PYTHONUNBUFFERED", "1");
            for (name, value) in &plan.env {
                step_env::set(&mut env, name, value.clone());
            }
            step_env::set(&mut env, "WEIR_TASK_ID", task.id.clone());
            step_env::set(&mut env, "WEIR_RUN_ID", run_id);
            env
        } else {
            self.local_env(run_id, task, plan, &log_path).await?
        };
        tracing::info!(
            run.id = %run_id, task.id = %task.id, task.name = %task.name, image = %plan.image, attempt = task.attempts,
            "{}",
            if self.driver.remote() {
                "starting step as a pod in its image"
            } else {
                "starting step on this host (the image is recorded, not pulled)"
            }
        );
        if let Err(e) = self.may_start(&task.id, &workdir).await {
            let _ = tokio::fs::write(&log_path, format!("{e}\n")).await;
            self.keep_log(run_id, task, &log_path).await;
            return Err(e);
        }
        let started = match forkable {
            Some((python, (source, args))) => {
                let spec = PythonSpec {
                    task_id: task.id.clone(),
                    source: source.to_string(),
                    args: args.to_vec(),
                    env,
                    workdir: workdir.clone(),
                    log_path: log_path.clone(),
                    binds: plan.binds.clone(),
                    output_file: workdir.join(EXECUTOR_OUTPUT),
                };
                python.start_python(spec).await
            }
            None => {
                let pod = self.driver.remote().then(|| {
                    Box::new(PodRequest {
                        run_id: run_id.to_string(),
                        task_name: task.name.clone(),
                        attempt: task.attempts,
                        image: plan.image.clone(),
                        resources: plan.resources.clone(),
                        platform: plan.platform.clone(),
                        config_env: plan.config_env.clone(),
                        volumes: plan.volumes.clone(),
                        deadline_seconds: plan.deadline_seconds,
                    })
                });
                let spec = ProcessSpec {
                    task_id: task.id.clone(),
                    argv: plan.argv.clone(),
                    env,
                    workdir: workdir.clone(),
                    log_path: log_path.clone(),
                    binds: plan.binds.clone(),
                    pod,
                };
                self.driver.start(spec).await
            }
        };
        let running = match started {
            Ok(running) => running,
            Err(e) => {
                let _ = tokio::fs::write(&log_path, format!("{e}\n")).await;
                self.keep_log(run_id, task, &log_path).await;
                return Err(e.into());
            }
        };
        let handle = running.handle();
        self.attempts.started(&task.id, handle);
        let mut with_handle = task.clone();
        with_handle.pid = handle;
        // The handle is only for recovery (to find or stop the step), so it is written while
        // the step runs; both finish before the result is written, which keeps them ordered.
        // Kills go through the attempts this weir keeps in memory, never through the row.
        let record = async {
            if let Err(e) = self.save_task(run_id, with_handle, Vec::new()).await {
                tracing::warn!(task.id = %task.id, error = %e, "could not record the step's process id");
            }
        };
        let driver = &self.driver;
        let wait = async move {
            let Some(seconds) = plan.deadline_seconds else { return (running.wait().await, None) };
            let wait = running.wait();
            tokio::pin!(wait);
            tokio::select! {
                exit = &mut wait => (exit, None),
                () = tokio::time::sleep(std::time::Duration::from_secs(seconds)) => {
                    // `activeDeadlineSeconds`: Kubernetes stops the pod and the step fails.
                    driver.kill(handle);
                    (wait.await, Some(seconds))
                }
            }
        };
        // A step that ends within [`PID_RECORD_DELAY`] never has its process id written (one
        // transaction less per short step): recovery finds a step without it (the driver's
        // `leftover` looks for the task's process or Job), as it does for one whose weir stopped
        // before the write.
        tokio::pin!(wait);
        let (exit, deadline) = tokio::select! {
            ended = &mut wait => ended,
            () = tokio::time::sleep(PID_RECORD_DELAY) => tokio::join!(record, wait).1,
        };
        if let Some(seconds) = deadline {
            let tail = log_tail(&log_path).await;
            self.keep_log(run_id, task, &log_path).await;
            if plan.store_root.is_some() {
                let _ = tokio::fs::remove_dir_all(&plan.task_root_dir).await;
            }
            return Err(StepError::Deadline { seconds, tail });
        }
        let outcome = match exit {
            // The log is kept while the outputs are read: neither needs the other.
            Exit::Code(0) => tokio::join!(self.keep_log(run_id, task, &log_path), self.collect(run_id, task, plan)).1,
            // The error quotes the log's tail, read before the log moves into the store.
            other => {
                let error = exit_error(other, &log_path).await;
                self.keep_log(run_id, task, &log_path).await;
                Err(error)
            }
        };
        if outcome.is_err() && plan.store_root.is_some() {
            // What a failed step wrote in a local store is nobody's artifact.
            let _ = tokio::fs::remove_dir_all(&plan.task_root_dir).await;
        }
        outcome
    }

    /// A local process's environment: weir's base environment for steps, the step's own
    /// variables, those from secrets and config maps (and their files written), and the
    /// interpreter with the step's packages first on PATH.
    async fn local_env(
        &self,
        run_id: &str,
        task: &Task,
        plan: &StepPlan,
        log_path: &Path,
    ) -> Result<Vec<(String, String)>, StepError> {
        let python_bin = self.python_bin(&plan.python_packages).await?;
        // The whole environment of the step (see `step_env`): nothing else of weir's reaches it.
        let mut env = self.settings.step_env.clone();
        // A private temporary folder, as a container's own /tmp, which goes with the attempt's
        // folder: the SDK's launch script (and so every Python step) makes a folder there for
        // the component's module, which would otherwise pile up in the host's /tmp. The
        // component's own variables below may still name another.
        if let Some(workdir) = log_path.parent() {
            step_env::set(&mut env, "TMPDIR", workdir.join(PRIVATE_TMP).display().to_string());
        }
        step_env::set(&mut env, "KFP_POD_NAME", plan.pod_name.clone());
        step_env::set(&mut env, "KFP_POD_UID", task.id.clone());
        step_env::set(&mut env, "PYTHONUNBUFFERED", "1");
        for (name, value) in &plan.env {
            step_env::set(&mut env, name, value.clone());
        }
        let configured = async {
            self.config_files(plan).await?;
            self.config_values(plan).await
        };
        match configured.await {
            Ok(values) => {
                for (name, value) in values {
                    step_env::set(&mut env, &name, value);
                }
            }
            Err(e) => {
                let _ = tokio::fs::write(log_path, format!("{e}\n")).await;
                self.keep_log(run_id, task, log_path).await;
                return Err(e);
            }
        }
        let path = env.iter().find(|(n, _)| n == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
        step_env::set(&mut env, "PATH", format!("{}:{path}", python_bin.display()));
        step_env::set(&mut env, "WEIR_TASK_ID", task.id.clone());
        step_env::set(&mut env, "WEIR_RUN_ID", run_id);
        Ok(env)
    }

    /// Makes the attempt's folder afresh, with the folders its outputs go in, and starts its
    /// log with a header line. The folder of the executor output named in the executor input
    /// (the task root) is made unless `task_root_unneeded`.
    async fn prepare_folder(
        &self,
        task: &Task,
        plan: &StepPlan,
        workdir: &Path,
        log: &Path,
        task_root_unneeded: bool,
    ) -> Result<(), StepError> {
        // Only the folders this step's outputs go in (inputs make their own): creating and
        // removing folders is most of what a short step costs on some file systems.
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::from([workdir.to_path_buf()]);
        let parents = plan
            .outputs
            .iter()
            .map(|o| o.local_path.as_path())
            .chain(plan.output_parameters.values().map(|(p, _)| p.as_path()));
        dirs.extend(parents.filter_map(Path::parent).map(Path::to_path_buf));
        // The executor output's folder and the workspace only when the command can know them
        // (through the executor input or a placeholder).
        let mentioned = |path: &Path| {
            let text = path.display().to_string();
            plan.argv.iter().any(|a| a.contains(&text))
        };
        // What is mounted for the step, and where, must exist to be mounted (a mount point
        // missing on the host is made there, empty, as a container runtime makes it in the
        // container's file system).
        // A pod makes its own mount points: on weir's side only the folders are made (weir may
        // run without the right to make `/s3`).
        let remote = self.driver.remote();
        if !remote {
            dirs.insert(workdir.join(PRIVATE_TMP));
        }
        dirs.extend(
            plan.binds.iter().flat_map(|(folder, seen_at)| {
                std::iter::once(folder.clone()).chain((!remote).then(|| seen_at.clone()))
            }),
        );
        if let Some(parent) = plan.executor_output_file.parent().filter(|p| !task_root_unneeded && mentioned(p)) {
            dirs.insert(parent.to_path_buf());
        }
        let workspace = crate::launch::workspace_dir(workdir);
        if mentioned(&workspace) {
            dirs.insert(workspace);
        }
        let mut header = if self.driver.remote() {
            format!(
                "[weir] {} attempt {} as a Kubernetes pod in image {}\n",
                task.display_name, task.attempts, plan.image
            )
        } else {
            format!(
                "[weir] {} attempt {} on this host as a local process (image {} recorded, not pulled)\n",
                task.display_name,
                task.attempts,
                if plan.image.is_empty() { "none" } else { &plan.image }
            )
        };
        // The pod's labels and annotations are recorded with the step; nothing schedules by them.
        let metadata = &plan.pod_metadata;
        for (what, pairs) in [("labels", &metadata.labels), ("annotations", &metadata.annotations)] {
            if !pairs.is_empty() {
                let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                header.push_str(&format!("[weir] pod {what}: {}\n", shown.join(", ")));
            }
        }
        // A step working in a local store starts from an empty task folder there too: what an
        // earlier attempt left must not pass for this one's outputs.
        let in_store = plan.store_root.is_some().then(|| plan.task_root_dir.clone());
        // Made here, but for what an earlier attempt left: removing it may take long.
        let leftovers = workdir.exists() || in_store.as_ref().is_some_and(|root| root.exists());
        let (fresh, log) = (workdir.to_path_buf(), log.to_path_buf());
        let recycler = self.recycler.clone();
        super::local_fs::run(leftovers, move || {
            // What an attempt cut short left, if anything; then a finished attempt's folder,
            // emptied, where there is one.
            let _ = std::fs::remove_dir_all(&fresh);
            recycler.take_into(&fresh);
            if let Some(task_root) = in_store {
                let _ = std::fs::remove_dir_all(task_root);
            }
            for dir in dirs {
                create_dir_all(&dir).map_err(StepError::Folder)?;
            }
            std::fs::write(&log, header).map_err(StepError::Log)
        })
        .await
        .unwrap_or_else(|| Err(StepError::Folder(std::io::Error::other("the folder's preparation panicked"))))
    }
}

impl Engine {
    /// Writes the secrets and config maps a step gets as files, one file per key, into the
    /// folders mounted for it.
    async fn config_files(&self, plan: &StepPlan) -> Result<(), StepError> {
        for wanted in &plan.config_files {
            let config = match self.store.get_step_config(wanted.kind, &wanted.name).await {
                Ok(config) => config,
                Err(weir_store::StoreError::NotFound(_)) if wanted.optional => continue,
                Err(weir_store::StoreError::NotFound(_)) => {
                    return Err(StepError::Config(format!("{} {:?} does not exist", wanted.kind.noun(), wanted.name)))
                }
                Err(e) => {
                    return Err(StepError::Config(format!("cannot read {} {:?}: {e}", wanted.kind.noun(), wanted.name)))
                }
            };
            let write = async {
                tokio::fs::create_dir_all(&wanted.folder).await?;
                for (key, value) in &config.data {
                    tokio::fs::write(wanted.folder.join(key), value).await?;
                }
                Ok::<(), std::io::Error>(())
            };
            write.await.map_err(|e| {
                StepError::Config(format!("cannot write {} {:?} for the step: {e}", wanted.kind.noun(), wanted.name))
            })?;
        }
        Ok(())
    }

    /// The values of the variables a step gets from secrets and config maps, each read once.
    async fn config_values(&self, plan: &StepPlan) -> Result<Vec<(String, String)>, StepError> {
        let mut read: std::collections::HashMap<(weir_store::StepConfigKind, String), Option<weir_store::StepConfig>> =
            std::collections::HashMap::new();
        let mut values = Vec::new();
        for wanted in &plan.config_env {
            let id = (wanted.kind, wanted.name.clone());
            if !read.contains_key(&id) {
                let found = match self.store.get_step_config(wanted.kind, &wanted.name).await {
                    Ok(config) => Some(config),
                    Err(weir_store::StoreError::NotFound(_)) => None,
                    Err(e) => {
                        return Err(StepError::Config(format!(
                            "cannot read {} {:?}: {e}",
                            wanted.kind.noun(),
                            wanted.name
                        )))
                    }
                };
                read.insert(id.clone(), found);
            }
            let value = read[&id].as_ref().map(|config| config.data.get(&wanted.key));
            match value {
                Some(Some(value)) => values.push((wanted.env_var.clone(), value.clone())),
                _ if wanted.optional => {}
                None => {
                    return Err(StepError::Config(format!(
                        "{} {:?} does not exist (create it with `weir {} create`)",
                        wanted.kind.noun(),
                        wanted.name,
                        if wanted.kind == weir_store::StepConfigKind::Secret { "secret" } else { "configmap" }
                    )))
                }
                Some(None) => {
                    return Err(StepError::Config(format!(
                        "{} {:?} has no key {:?}",
                        wanted.kind.noun(),
                        wanted.name,
                        wanted.key
                    )))
                }
            }
        }
        Ok(values)
    }
}

/// Makes a folder and those above it. In a local store, the end of another run of the same
/// pipeline may remove an empty folder above it meanwhile (its pipeline's, see
/// `prune_store_folders`), which fails the making with NotFound: it is tried again.
fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::create_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => tries += 1,
            other => return other,
        }
    }
}

/// The error of a step that did not exit 0, with the last lines of its log.
pub(super) async fn exit_error(exit: Exit, log: &Path) -> StepError {
    match exit {
        Exit::Code(code) => {
            // A shell reports a child killed by signal N as 128 + N.
            let signal = if (129..160).contains(&code) {
                format!(" (its process was killed by signal {})", code - 128)
            } else {
                String::new()
            };
            StepError::Exited { code, detail: format!("{signal}{}", log_tail(log).await) }
        }
        Exit::Signal(signal) => StepError::Killed { signal, tail: log_tail(log).await },
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// The first to take an attempt's marker gets it, whoever comes next does not; the marker
    /// is a link to the one anchor file (made when missing), not an inode of its own.
    #[tokio::test]
    async fn a_start_marker_is_taken_once_and_is_a_link() {
        let work_dir = std::env::temp_dir().join(format!("weir-marker-{}", uuid::Uuid::new_v4()));
        let (one, two) = (work_dir.join("runs/r/a.1"), work_dir.join("runs/r/b.1"));
        assert!(take_start_marker(&work_dir, &one).await, "the first take of a fresh attempt");
        assert!(!take_start_marker(&work_dir, &one).await, "a marker already taken");
        assert!(take_start_marker(&work_dir, &two).await, "another attempt's marker is its own");
        let anchor = std::fs::metadata(work_dir.join(MARKER_ANCHOR)).unwrap();
        let marker = std::fs::metadata(one.join(START_MARKER)).unwrap();
        assert_eq!((marker.dev(), marker.ino()), (anchor.dev(), anchor.ino()));
        assert_eq!(anchor.nlink(), 3, "the anchor and two markers");
        std::fs::remove_dir_all(&one).unwrap();
        assert_eq!(std::fs::metadata(work_dir.join(MARKER_ANCHOR)).unwrap().nlink(), 2);
        std::fs::remove_dir_all(&work_dir).unwrap();
    }
}
