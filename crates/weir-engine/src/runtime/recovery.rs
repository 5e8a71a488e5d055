//! After a restart: steps an earlier weir left RUNNING are adopted while they still run, or
//! settled from how their driver says they ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weir_artifacts::layout;
use weir_store::{Progress, RuntimeState, Task, TaskKind};

use super::attempts::{settle, Outcome, Settled};
use super::step::exit_error;
use super::Engine;
use crate::driver::{AttemptRef, Leftover};
use crate::error::{EngineError, StepError};
use crate::launch::{plan_step, task_spec_ref};
use crate::planner::RunView;

impl Engine {
    /// After a restart, steps recorded as RUNNING belong to an earlier weir. A step the driver
    /// still runs is adopted: watched until it ends, then settled as if this weir had started
    /// it. A step that ended while no weir watched is settled from the exit status it left (a
    /// success keeps its outputs and is not run again); one that left none was lost, and is
    /// retried under its policy or failed.
    pub async fn recover(self: &Arc<Self>) -> Result<(), EngineError> {
        for (run_id, _) in self.store.active_runs().await? {
            self.recover_run(&run_id, true).await?;
        }
        Ok(())
    }

    /// Recovers one run's steps left RUNNING by an earlier weir (or, with several replicas, by
    /// the replica this one took the run from). `same_host`: that weir ran on this machine, so
    /// the attempt folders it made are here to look at.
    pub(super) async fn recover_run(self: &Arc<Self>, run_id: &str, same_host: bool) -> Result<(), EngineError> {
        let run_id = run_id.to_string();
        self.views.lock().expect("views").remove(&run_id);
        let lock = self.run_lock(&run_id);
        let _guard = lock.lock().await;
        let view = self.load(&run_id).await?;
        let mut changed = Vec::new();
        let mut new_artifacts = Vec::new();
        let mut folders: Vec<PathBuf> = Vec::new();
        // A step already adopted by an earlier, partial recovery is watched already.
        for task in view.tasks.iter().filter(|t| {
            t.kind == TaskKind::Container && t.state == RuntimeState::Running && !self.attempts.contains(&t.id)
        }) {
            let workdir = self.attempt_dir(&run_id, &task.id, task.attempts);
            let attempt = AttemptRef { task_id: &task.id, workdir: &workdir, handle: task.pid };
            let leftover = self.driver.leftover(attempt).await;
            if let Leftover::Running(handle) = leftover {
                tracing::info!(run.id = %run_id, task.id = %task.id, handle, "adopted a step still running from before the restart");
                self.attempts.adopt(&task.id, handle);
                let mut task = task.clone();
                task.pid = handle;
                let (engine, run_id) = (self.clone(), run_id.clone());
                tokio::spawn(async move {
                    engine.watch_adopted(&run_id, task).await;
                });
                continue;
            }
            // Claimed but never started: the weir that claimed it stopped between writing the
            // claim and starting the process. Taking the attempt's start marker first makes
            // sure it never starts (a frozen weir that wakes up finds the marker taken), so
            // the step runs as if for the first time, with no retry spent.
            if leftover == Leftover::Lost
                && same_host
                && super::step::take_start_marker(&self.settings.work_dir, &workdir).await
            {
                tracing::warn!(run.id = %run_id, task.id = %task.id, attempt = task.attempts, "a step was claimed but never started; it runs again");
                // Every attempt keeps a log; this one's says what became of it.
                let log = workdir.join(layout::LIVE_LOG);
                let note = format!(
                    "[weir] {} attempt {}: the weir that claimed it stopped before the step started; it runs again\n",
                    task.display_name, task.attempts
                );
                let _ = tokio::fs::write(&log, note).await;
                self.keep_log(&run_id, task, &log).await;
                let mut task = task.clone();
                let message = format!(
                    "attempt {} never started: the weir that claimed it stopped first; the step runs again",
                    task.attempts
                );
                task.set_state(
                    RuntimeState::Pending,
                    Some(weir_store::ErrorInfo { code: 2, message }),
                    self.clock.now_ms(),
                );
                task.finished_at = 0;
                task.pid = 0;
                changed.push(task);
                continue;
            }
            let (outcome, retry) = self.outcome_of(&view, task, leftover).await;
            match settle(task.clone(), outcome, None, retry.as_ref(), self.clock.now_ms()) {
                Settled::Record(task, artifacts) => {
                    tracing::warn!(run.id = %run_id, task.id = %task.id, task.state = %task.state, "settled a step that ended while weir was stopped");
                    crate::telemetry::step_finished(&task);
                    folders.push(workdir);
                    changed.push(*task);
                    new_artifacts.extend(artifacts);
                }
                // The store is still unreachable: the next pass tries again.
                Settled::Leave | Settled::Discard => {}
            }
        }
        if !changed.is_empty() {
            let progress =
                Progress { changed_tasks: changed, new_artifacts, owner: self.owner(), ..Default::default() };
            self.store.save_progress(&run_id, &progress).await?;
            for folder in folders {
                let _ = tokio::fs::remove_dir_all(folder).await;
            }
        }
        Ok(())
    }

    /// Waits for an adopted step to end (it is not our child: the driver tells how it ended),
    /// then records its result.
    #[tracing::instrument(skip_all, fields(run.id = %run_id, task.id = %task.id, attempt = task.attempts))]
    pub(super) async fn watch_adopted(self: &Arc<Self>, run_id: &str, task: Task) {
        let workdir = self.attempt_dir(run_id, &task.id, task.attempts);
        let attempt = AttemptRef { task_id: &task.id, workdir: &workdir, handle: task.pid };
        let leftover = loop {
            match self.driver.leftover(attempt).await {
                Leftover::Running(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                ended => break ended,
            }
        };
        let settled = async {
            let lock = self.run_lock(run_id);
            let _guard = lock.lock().await;
            let cached = self.take_view(run_id).await?;
            let outcome = self.outcome_of(&cached.view, &task, leftover).await;
            self.put_view(cached);
            Ok::<_, EngineError>(outcome)
        };
        match settled.await {
            Ok((outcome, retry)) => {
                let finished = self.finish_attempt(run_id, task.clone(), outcome, retry.as_ref(), None).await;
                if let Some(folder) = finished.folder {
                    let _ = tokio::fs::remove_dir_all(folder).await;
                }
                self.run_folders.attempt_gone(run_id).await;
            }
            Err(e) => {
                tracing::error!(run.id = %run_id, task.id = %task.id, error = %e, "could not settle an adopted step")
            }
        }
        self.attempts.end(&task.id);
        self.notify.notify_one();
    }

    /// How an attempt no weir watched end turned out, with its task's retry policy: its
    /// outputs collected as usual on success. Its log is kept first (an attempt lost before
    /// its process started printed nothing; its log says so, as every attempt has a log).
    async fn outcome_of(
        &self,
        view: &RunView,
        task: &Task,
        leftover: Leftover,
    ) -> (Outcome, Option<weir_spec::ir::RetryPolicy>) {
        let run_id = view.run.id.clone();
        let workdir = self.attempt_dir(&run_id, &task.id, task.attempts);
        let log = workdir.join(layout::LIVE_LOG);
        if tokio::fs::metadata(&log).await.is_err() {
            let _ = tokio::fs::create_dir_all(&workdir).await;
            let note = format!(
                "[weir] {} attempt {}: weir stopped before the step started\n",
                task.display_name, task.attempts
            );
            let _ = tokio::fs::write(&log, note).await;
        }
        let retry = task_spec_ref(&view.spec, &view.tasks, task).ok().and_then(|(spec, _)| spec.retry_policy.clone());
        let outcome = match leftover {
            Leftover::Ended(exit) if exit.success() => {
                let settings = self.step_settings();
                match plan_step(&view.spec, &view.run, &view.tasks, task, &view.artifacts, &workdir, &settings) {
                    Ok(plan) => self.collect(&run_id, task, &plan).await,
                    Err(e) => Err(StepError::Plan(e)),
                }
            }
            Leftover::Ended(exit) => Err(exit_error(exit, &log).await),
            Leftover::Running(_) | Leftover::Lost => Err(StepError::Lost(task.attempts)),
        };
        // After the error has quoted the log's tail: keeping it may move it into the store.
        self.keep_log(&run_id, task, &log).await;
        (outcome, retry)
    }
}
