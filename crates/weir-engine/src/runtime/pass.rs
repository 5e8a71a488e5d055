//! One pass over a run: decide, write, then launch or kill.

use std::sync::Arc;

use weir_artifacts::layout;
use weir_store::{Progress, RunTransition, RuntimeState, StoreError};

use super::{err, CachedRun, Engine};
use crate::error::EngineError;
use crate::planner::advance;

impl Engine {
    /// Advances one run whose stored state is `state`: decide, write, then launch or kill.
    #[tracing::instrument(level = "debug", skip_all, fields(run.id = %run_id))]
    pub async fn tick(self: &Arc<Self>, run_id: &str, state: RuntimeState) -> Result<Option<i64>, EngineError> {
        self.pass(run_id, state).await.map(|(wake, _)| wake)
    }

    /// Advances a run as soon as one of its steps has ended, in the task that ran the step:
    /// its next step starts without waiting for the engine's loop to wake and list the active
    /// runs. True when the pass started a step; otherwise the loop is due (the freed slot may
    /// be another run's, or the run ended and another may be admitted). A run the API changed
    /// meanwhile (terminated, say) is read again by the loop, which the API wakes.
    ///
    /// Boxed: the pass it makes spawns the steps that call it again when they end.
    pub(super) fn advance_after_step<'a>(
        self: &'a Arc<Self>,
        run_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let state = self.views.lock().expect("views").get(run_id).map(|cached| cached.view.run.state);
            if state != Some(RuntimeState::Running) {
                return false;
            }
            matches!(self.pass(run_id, RuntimeState::Running).await, Ok((_, started)) if started > 0)
        })
    }

    /// [`Engine::tick`], also returning how many steps the pass started.
    async fn pass(self: &Arc<Self>, run_id: &str, state: RuntimeState) -> Result<(Option<i64>, usize), EngineError> {
        let lock = self.run_lock(run_id);
        let _guard = lock.lock().await;
        let mut cached = match self.views.lock().expect("views").remove(run_id) {
            // The API changed the run (terminate): read it again.
            Some(cached) if cached.view.run.state != state => None,
            other => other,
        };
        if cached.is_none() {
            cached = match self.load(run_id).await {
                Ok(view) => Some(CachedRun { view, settled: false, wake_at: None }),
                Err(EngineError::Spec(e)) => {
                    let transition = Progress {
                        run: Some(RunTransition {
                            from: vec![RuntimeState::Pending, RuntimeState::Running, RuntimeState::Canceling],
                            to: RuntimeState::Failed,
                            error: err(e.0),
                            now: self.clock.now_ms(),
                        }),
                        owner: self.owner(),
                        ..Default::default()
                    };
                    self.store.save_progress(run_id, &transition).await?;
                    return Ok((None, 0));
                }
                Err(e) => return Err(e),
            };
        }
        let mut cached = cached.expect("loaded above");
        let now = self.clock.now_ms();
        if cached.settled && cached.wake_at.is_none_or(|at| at > now) {
            let wake = cached.wake_at;
            self.put_view(cached);
            return Ok((wake, 0));
        }
        let mut step = advance(&mut cached.view, now);
        let claimed = self.claim_new_steps(&mut cached.view, &mut step, now).await;
        if !step.progress.is_empty() {
            step.progress.owner = self.owner();
            // On any failure the view is dropped: the next event reads the run again.
            if let Err(e) = self.store.save_progress(run_id, &step.progress).await {
                if matches!(e, StoreError::Aborted(_)) {
                    self.notify.notify_one();
                    return Ok((None, 0));
                }
                if matches!(e, StoreError::Fenced(_)) {
                    tracing::warn!(run.id = %run_id, "another weir took this run over; letting it go");
                    return Ok((None, 0));
                }
                return Err(e.into());
            }
            if let Some(transition) = &step.progress.run {
                tracing::info!(run.id = %run_id, run.state = %transition.to, "run state changed");
                if transition.to.is_terminal() {
                    // The run's workspace goes with the run, as KFP's workspace volume goes
                    // with its workflow; then the run's folder, once its steps' folders are
                    // gone (it is only removed when empty).
                    let run_dir = layout::run_dir(&self.settings.work_dir, run_id);
                    let _ = tokio::fs::remove_dir_all(run_dir.join("workspace")).await;
                    let _ = tokio::fs::remove_dir(run_dir).await;
                }
            }
        }
        // Made before the tasks that mount them can start (they launch on a later pass).
        for (name, inputs) in &step.created_volumes {
            if let Err(e) = self.driver.create_volume(name, inputs).await {
                tracing::warn!(run.id = %run_id, volume = %name, error = %e, "could not create the PVC; the steps that mount it will not start");
            }
        }
        for name in &step.deleted_volumes {
            if self.driver.remote() {
                if let Err(e) = self.driver.delete_volume(name).await {
                    tracing::warn!(run.id = %run_id, volume = %name, error = %e, "could not delete the PVC");
                }
                continue;
            }
            let folder = self.settings.work_dir.join("volumes").join(layout::segment(name));
            let _ = tokio::fs::remove_dir_all(folder).await;
        }
        cached.settled = step.progress.is_empty() && step.launches.is_empty() && step.kills.is_empty();
        cached.wake_at = step.wake_at;
        self.put_view(cached);
        for task_id in step.kills {
            self.kill(&task_id);
        }
        let mut started = 0;
        for claim in claimed {
            self.attempts.begin(&claim.task.id);
            started += 1;
            let engine = self.clone();
            let run_id = run_id.to_string();
            tokio::spawn(async move {
                let task_id = claim.task.id.clone();
                let folder = engine.run_claimed(&run_id, claim.task, claim.plan, claim.retry, claim.permit).await;
                engine.after_attempt(&run_id, &task_id, folder).await;
            });
        }
        for task_id in step.launches {
            if self.attempts.begin(&task_id) {
                started += 1;
                let engine = self.clone();
                let run_id = run_id.to_string();
                tokio::spawn(async move {
                    let folder = engine.launch(&run_id, &task_id).await;
                    engine.after_attempt(&run_id, &task_id, folder).await;
                });
            }
        }
        Ok((step.wake_at, started))
    }
}
