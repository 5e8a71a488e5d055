//! After a restart: steps an earlier weir left RUNNING are adopted while their process lives,
//! or settled from the exit status they left in their folder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weir_store::{Artifact, Progress, RuntimeState, StoreError, Task, TaskKind};

use super::files::log_tail;
use super::{err, Engine};
use crate::launch::{plan_step, task_spec_ref, StepSettings};
use crate::planner::RunView;

impl Engine {
    /// After a restart, steps recorded as RUNNING belong to an earlier weir. A step whose
    /// process is still alive is adopted: watched until it ends, then settled as if this weir
    /// had started it. A step whose process ended while no weir watched is settled from the
    /// exit status it left in its folder (a success keeps its outputs and is not run again);
    /// one that left none was lost, and is retried under its policy or failed.
    pub async fn recover(self: &Arc<Self>) -> Result<(), StoreError> {
        for (run_id, _) in self.store.active_runs().await? {
            self.views.lock().expect("views").remove(&run_id);
            let lock = self.run_lock(&run_id);
            let _guard = lock.lock().await;
            let view = self.load(&run_id).await?;
            let mut changed = Vec::new();
            let mut new_artifacts = Vec::new();
            let watched = self.inflight.lock().expect("inflight").clone();
            // A step already adopted by an earlier, partial recovery is watched already.
            for task in view.tasks.iter().filter(|t| {
                t.kind == TaskKind::Container && t.state == RuntimeState::Running && !watched.contains(&t.id)
            }) {
                let alive = if task.pid > 0 && self.driver.is_running_step(task.pid, &task.id) {
                    Some(task.pid)
                } else {
                    self.driver.find_step(&task.id)
                };
                if let Some(pid) = alive {
                    tracing::info!(run.id = %run_id, task.id = %task.id, pid, "adopted a step still running from before the restart");
                    self.running.lock().expect("running").insert(task.id.clone(), pid);
                    self.inflight.lock().expect("inflight").insert(task.id.clone());
                    let mut task = task.clone();
                    task.pid = pid;
                    let (engine, run_id) = (self.clone(), run_id.clone());
                    tokio::spawn(async move {
                        engine.watch_adopted(&run_id, task).await;
                    });
                    continue;
                }
                let (task, artifacts) = self.settle_orphan(&view, task.clone()).await;
                tracing::warn!(run.id = %run_id, task.id = %task.id, task.state = %task.state, "settled a step that ended while weir was stopped");
                changed.push(task);
                new_artifacts.extend(artifacts);
            }
            if !changed.is_empty() {
                let folders: Vec<PathBuf> =
                    changed.iter().map(|t| self.attempt_dir(&run_id, &t.id, t.attempts)).collect();
                let progress = Progress { changed_tasks: changed, new_artifacts, ..Default::default() };
                self.store.save_progress(&run_id, &progress).await?;
                for folder in folders {
                    let _ = tokio::fs::remove_dir_all(folder).await;
                }
            }
        }
        Ok(())
    }

    /// Waits for an adopted step's process to end (it is not our child: its status comes from
    /// its exit file), then records its result.
    pub(super) async fn watch_adopted(self: &Arc<Self>, run_id: &str, task: Task) {
        while self.driver.is_running_step(task.pid, &task.id) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.running.lock().expect("running").remove(&task.id);
        let killed = self.killed.lock().expect("killed").remove(&task.id);
        let interrupted = self.interrupted.lock().expect("interrupted").remove(&task.id);
        let settled = async {
            let lock = self.run_lock(run_id);
            let _guard = lock.lock().await;
            let cached = self.take_view(run_id).await?;
            let settled = self.settle_orphan(&cached.view, task.clone()).await;
            self.put_view(cached);
            Ok::<_, StoreError>(settled)
        };
        match settled.await {
            Ok((mut settled, artifacts)) => {
                let now = self.clock.now_ms();
                if killed {
                    settled.set_state(RuntimeState::Canceled, err("the run was terminated"), now);
                } else if interrupted && settled.state != RuntimeState::Succeeded {
                    let message = format!(
                        "weir stopped during attempt {}; the step runs again at the next start",
                        settled.attempts
                    );
                    settled.set_state(RuntimeState::Pending, err(message), now);
                    settled.finished_at = 0;
                }
                if self.save_result(run_id, settled, artifacts).await {
                    let _ = tokio::fs::remove_dir_all(self.attempt_dir(run_id, &task.id, task.attempts)).await;
                }
            }
            Err(e) => {
                tracing::error!(run.id = %run_id, task.id = %task.id, error = %e, "could not settle an adopted step")
            }
        }
        self.inflight.lock().expect("inflight").remove(&task.id);
        self.notify.notify_one();
    }

    /// The result of an attempt no weir watched end: from the exit status the step left in its
    /// folder, with its outputs collected as usual on success.
    pub(super) async fn settle_orphan(&self, view: &RunView, mut task: Task) -> (Task, Vec<Artifact>) {
        let run_id = view.run.id.clone();
        let workdir = self.attempt_dir(&run_id, &task.id, task.attempts);
        let exit =
            tokio::fs::read_to_string(workdir.join(".weir-exit")).await.ok().and_then(|s| s.trim().parse::<i32>().ok());
        // Keep what the attempt printed, if its folder is still here. An attempt lost before
        // its process started printed nothing; its log says so (every attempt has a log).
        let log = workdir.join("log.txt");
        if tokio::fs::metadata(&log).await.is_err() {
            let _ = tokio::fs::create_dir_all(&workdir).await;
            let note = format!(
                "[weir] {} attempt {}: weir stopped before the step started\n",
                task.display_name, task.attempts
            );
            let _ = tokio::fs::write(&log, note).await;
        }
        self.keep_log(&run_id, &task, &log).await;
        let retry = task_spec_ref(&view.spec, &view.tasks, &task).ok().and_then(|(spec, _)| spec.retry_policy.clone());
        let now = self.clock.now_ms();
        task.pid = 0;
        let outcome = match exit {
            Some(0) => {
                let settings = StepSettings {
                    python_fast_path: self.settings.python_has_kfp,
                    store_url: self.artifacts.url().to_string(),
                };
                match plan_step(&view.spec, &view.run, &view.tasks, &task, &view.artifacts, &workdir, &settings) {
                    Ok(plan) => self.collect(&run_id, &task, &plan).await,
                    Err(message) => Err(message),
                }
            }
            Some(code) => Err(format!("the step exited with code {code}{}", log_tail(&log).await)),
            None => Err(format!("the step's process was lost when weir stopped (attempt {})", task.attempts)),
        };
        match outcome {
            Ok((artifacts, outputs)) => {
                task.outputs = outputs;
                task.set_state(RuntimeState::Succeeded, None, now);
                (task, artifacts)
            }
            Err(message) => {
                self.fail_or_retry(&mut task, retry.as_ref(), message);
                (task, Vec::new())
            }
        }
    }
}
