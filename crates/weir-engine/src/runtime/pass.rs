//! One pass over a run: decide, write, then launch or kill.

use std::sync::Arc;

use crate::planner::{RunView, Step};
use weir_artifacts::layout;
use weir_store::{Artifact, Progress, RunTransition, RuntimeState, StoreError, Task};

use super::{err, start_attempt, CachedRun, Engine, Prepared};
use crate::error::EngineError;
use crate::launch::StepPlan;
use crate::planner::advance;

/// What a pass did.
#[derive(Clone, Copy)]
pub(super) struct Passed {
    /// When the run has something due next.
    pub(super) wake: Option<i64>,
    /// Steps it started.
    pub(super) started: usize,
}

/// A finished step's result waiting for its run's lock, and where to say how it was written
/// (None: not written, for the step to write alone).
pub(super) struct QueuedResult {
    task: Task,
    artifacts: Vec<Artifact>,
    done: tokio::sync::oneshot::Sender<Option<Passed>>,
}

/// A pending step that has its slot, waiting for its run's lock to be marked RUNNING, and
/// where to say how that went: `Some(Some(_))` claimed and written, `Some(None)` not to run
/// (no longer pending, not due, or its run not running), `None` for the step to claim alone
/// (a cache hit to record, a plan error, or the combined write failed).
pub(super) struct QueuedClaim {
    task_id: String,
    done: tokio::sync::oneshot::Sender<Option<Option<Started>>>,
}

/// A step claimed for a slot it already holds: its task as written RUNNING, its plan and its
/// retry policy.
pub(super) type Started = (Task, StepPlan, Option<weir_spec::ir::RetryPolicy>);

/// What waits for a run's lock: whoever takes it next writes all of it with one pass.
#[derive(Default)]
pub(super) struct Queued {
    results: Vec<QueuedResult>,
    claims: Vec<QueuedClaim>,
}

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
        let cached = cached.expect("loaded above");
        let now = self.clock.now_ms();
        if cached.settled && cached.wake_at.is_none_or(|at| at > now) {
            let wake = cached.wake_at;
            self.put_view(cached);
            return Ok((wake, 0));
        }
        match self.advance_and_write(run_id, cached, Vec::new(), &[]).await {
            Ok((passed, _)) => Ok((passed.wake, passed.started)),
            // On any failure the view is dropped: the next event reads the run again.
            Err((StoreError::Aborted(_), _)) => {
                self.notify.notify_one();
                Ok((None, 0))
            }
            Err((StoreError::Fenced(_), _)) => {
                tracing::warn!(run.id = %run_id, "another weir took this run over; letting it go");
                Ok((None, 0))
            }
            Err((e, _)) => Err(e.into()),
        }
    }

    /// Records a finished step's attempt in the same transaction as the pass it lets happen,
    /// when the run's view is in memory and the run is running: one write per step instead of
    /// two (the result, then the next step's creation). Returns what the pass did, or None
    /// when nothing was written and the result is for the caller to record the usual way
    /// ([`Engine::save_result`], which retries).
    ///
    /// Results of the same run that end while its lock is held queue, and whoever takes the
    /// lock next writes them all with one pass: with many steps of a run under way (a wide
    /// `ParallelFor`), one transaction and one pass serve several steps' ends, instead of each
    /// waiting for the lock to write its own. Every step of the batch is told the same pass.
    ///
    /// Only for a result that ends the task: a retry's next attempt is launched by the usual
    /// pass, once this attempt is forgotten.
    ///
    /// Boxed, as [`Engine::advance_after_step`]: the pass spawns steps that call it again.
    pub(super) fn record_and_advance<'a>(
        self: &'a Arc<Self>,
        run_id: &'a str,
        task: &'a Task,
        artifacts: &'a [Artifact],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Passed>> + Send + 'a>> {
        Box::pin(async move {
            let (done, written) = tokio::sync::oneshot::channel();
            let queued = QueuedResult { task: task.clone(), artifacts: artifacts.to_vec(), done };
            self.queued.lock().expect("queued").entry(run_id.to_string()).or_default().results.push(queued);
            self.write_queued(run_id, written).await.flatten()
        })
    }

    /// Marks a pending step RUNNING for the slot its caller holds, in the same transaction as
    /// whatever else of its run waits for the run's lock (see [`Engine::record_and_advance`]):
    /// with more steps ready than slots, each step that ends frees a slot for one waiting,
    /// and every such claim was a transaction of its own under the run's lock. Returns None
    /// when the step is for the caller to claim alone.
    ///
    /// Boxed, as [`Engine::record_and_advance`]: the pass spawns steps that call it again.
    pub(super) fn claim_queued<'a>(
        self: &'a Arc<Self>,
        run_id: &'a str,
        task_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Option<Started>>> + Send + 'a>> {
        Box::pin(async move {
            let (done, claimed) = tokio::sync::oneshot::channel();
            let queued = QueuedClaim { task_id: task_id.to_string(), done };
            self.queued.lock().expect("queued").entry(run_id.to_string()).or_default().claims.push(queued);
            self.write_queued(run_id, claimed).await.flatten()
        })
    }

    /// Takes the run's lock for a queued write and returns its answer: from the holder before,
    /// which answers everything it took before it lets the lock go, or from the batch this
    /// caller writes, its own write among them. None when no answer came.
    async fn write_queued<T>(
        self: &Arc<Self>,
        run_id: &str,
        mut answer: tokio::sync::oneshot::Receiver<T>,
    ) -> Option<T> {
        let lock = self.run_lock(run_id);
        let _guard = lock.lock().await;
        match answer.try_recv() {
            Ok(answered) => return Some(answered),
            // Taken by a holder that ended without answering (it panicked): whether its write
            // committed is unknown, so the caller writes alone. At worst a result reports a
            // conflict (its folder is kept for the next start), and a claim finds its task
            // no longer pending (it is then RUNNING without a process, which the next start's
            // recovery settles).
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return None,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        // Not taken, so still queued: this one writes the batch.
        let batch = self.queued.lock().expect("queued").remove(run_id).unwrap_or_default();
        self.write_batch(run_id, batch).await;
        answer.try_recv().ok()
    }

    /// Writes queued results and claims with one pass, under the run's lock, and answers each.
    async fn write_batch(self: &Arc<Self>, run_id: &str, batch: Queued) {
        let Queued { results, claims } = batch;
        let answer = |results: Vec<QueuedResult>, passed: Option<Passed>| {
            for result in results {
                let _ = result.done.send(passed);
            }
        };
        let alone = |claims: Vec<QueuedClaim>| {
            for claim in claims {
                let _ = claim.done.send(None);
            }
        };
        let Some(cached) = self.views.lock().expect("views").remove(run_id) else {
            alone(claims);
            return answer(results, None);
        };
        if cached.view.run.state != RuntimeState::Running {
            self.put_view(cached);
            for claim in claims {
                let _ = claim.done.send(Some(None));
            }
            return answer(results, None);
        }
        // Only results of tasks the view has running: any other is written alone, which
        // reports why it cannot be.
        let (fit, unfit): (Vec<_>, Vec<_>) = results.into_iter().partition(|result| {
            cached.view.tasks.get(&result.task.id).is_some_and(|t| t.state == RuntimeState::Running)
        });
        answer(unfit, None);
        if fit.is_empty() && claims.is_empty() {
            self.put_view(cached);
            return;
        }
        let finished = fit.iter().map(|result| (result.task.clone(), result.artifacts.clone())).collect();
        let claim_ids: Vec<String> = claims.iter().map(|claim| claim.task_id.clone()).collect();
        match self.advance_and_write(run_id, cached, finished, &claim_ids).await {
            Ok((passed, claimed)) => {
                answer(fit, Some(passed));
                for (claim, claimed) in claims.into_iter().zip(claimed) {
                    let _ = claim.done.send(claimed);
                }
            }
            Err((e, cached)) => {
                // As in `save_task_with`, a fenced write keeps a view, so the loop's next
                // pass finds a deleted run gone and stops its running steps. It is the
                // advanced one: the steps it claimed were never started, so stopping them
                // does nothing. Any other failure drops it. The results and claims are then
                // written alone.
                if matches!(e, StoreError::Fenced(_)) {
                    self.put_view(cached);
                }
                tracing::debug!(run.id = %run_id, results = fit.len(), claims = claims.len(), error = %e, "writing steps' results and claims with their run's pass failed; writing each alone");
                answer(fit, None);
                alone(claims);
            }
        }
    }

    /// Claims, after the pass's planning, the pending steps whose callers hold slots for them,
    /// as a claim alone decides ([`Engine::claim`]): each RUNNING in the view and written last
    /// in the pass, so it lands after any change the planning made to the same row. One
    /// answer per claim, in order (see [`QueuedClaim`]).
    async fn claim_in_pass(
        &self,
        view: &mut RunView,
        step: &mut Step,
        claims: &[String],
        now: i64,
    ) -> Vec<Option<Option<Started>>> {
        // As for the steps a pass creates: none starts once weir is stopping, nor in a run the
        // pass ended or that is not running.
        let running =
            matches!(step.progress.run.as_ref().map(|t| t.to).unwrap_or(view.run.state), RuntimeState::Running)
                && !self.stopping.load(std::sync::atomic::Ordering::SeqCst);
        let mut answers = Vec::with_capacity(claims.len());
        for task_id in claims {
            let task = match view.tasks.get(task_id) {
                Some(task) if running && task.state == RuntimeState::Pending && task.retry_at <= now => task.clone(),
                _ => {
                    answers.push(Some(None));
                    continue;
                }
            };
            match self.prepare_attempt(view, &task).await {
                Ok(Prepared::Run(plan, retry)) => {
                    let mut task = task;
                    start_attempt(&mut task, &plan, now);
                    view.tasks.upsert(task.clone());
                    step.progress.changed_tasks.push(task.clone());
                    answers.push(Some(Some((task, plan, retry))));
                }
                // A cache hit or a plan error is recorded the usual way; a store that cannot
                // tell is asked again there.
                _ => answers.push(None),
            }
        }
        answers
    }

    /// The pass itself, on a view taken out under the run's lock: decide, write, then launch
    /// or kill. `finished` attempts' tasks and artifacts are applied to the view first and
    /// written in the pass's transaction. On a failed write nothing is started, and the error
    /// comes back with the view as it was advanced (for a caller to keep or drop).
    async fn advance_and_write(
        self: &Arc<Self>,
        run_id: &str,
        mut cached: CachedRun,
        finished: Vec<(Task, Vec<Artifact>)>,
        claims: &[String],
    ) -> Result<(Passed, Vec<Option<Option<Started>>>), (StoreError, CachedRun)> {
        let now = self.clock.now_ms();
        for (task, artifacts) in &finished {
            cached.view.artifacts.extend(artifacts.iter().map(|a| (a.id, a.clone())));
            cached.view.tasks.upsert(task.clone());
        }
        let mut step = advance(&mut cached.view, now);
        let claimed = self.claim_new_steps(&mut cached.view, &mut step, now).await;
        let answers = self.claim_in_pass(&mut cached.view, &mut step, claims, now).await;
        if !finished.is_empty() {
            // First, so a change the pass made to the same row lands last.
            let (tasks, artifacts): (Vec<_>, Vec<_>) = finished.into_iter().unzip();
            step.progress.changed_tasks.splice(0..0, tasks);
            step.progress.new_artifacts.splice(0..0, artifacts.into_iter().flatten());
        }
        if !step.progress.is_empty() {
            step.progress.owner = self.owner();
            if let Err(e) = self.store.save_progress(run_id, &step.progress).await {
                // The claims' slots go back with them.
                drop(claimed);
                return Err((e, cached));
            }
            if let Some(transition) = &step.progress.run {
                tracing::info!(run.id = %run_id, run.state = %transition.to, "run state changed");
                if transition.to.is_terminal() {
                    self.run_folders.run_ended(run_id).await;
                    self.prune_store_folders(&cached.view).await;
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
                let finished = engine.run_claimed(&run_id, claim.task, claim.plan, claim.retry, claim.permit).await;
                engine.after_attempt(&run_id, &task_id, finished).await;
            });
        }
        for task_id in step.launches {
            if self.attempts.begin(&task_id) {
                started += 1;
                let engine = self.clone();
                let run_id = run_id.to_string();
                tokio::spawn(async move {
                    let finished = engine.launch(&run_id, &task_id).await;
                    engine.after_attempt(&run_id, &task_id, finished).await;
                });
            }
        }
        Ok((Passed { wake: step.wake_at, started }, answers))
    }
}
