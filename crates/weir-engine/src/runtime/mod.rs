//! The engine loop: load a run's rows, let the planner decide, write the decision, then act.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use weir_artifacts::{layout, ArtifactStore};
use weir_store::{Artifact, Clock, ErrorInfo, MetadataStore, Progress, RuntimeState, StoreError, Task};

use crate::driver::Driver;
use crate::error::EngineError;
use crate::launch::{plan_step, task_spec_ref, PlanError, StepPlan, StepSettings};
use crate::planner::{RunView, Step};
use crate::telemetry;

mod attempts;
mod files;
mod local_fs;
mod pass;
mod recovery;
mod recycle;
mod replicas;
mod run_folders;
mod step;

use attempts::{settle, Attempts, Outcome, Settled, Stop};

/// Retries of a step's result write once shutdown has begun (with the usual backoff, about
/// ten seconds in all), before the result is left to the next start.
const SHUTDOWN_SAVE_RETRIES: u32 = 6;

/// How the engine runs steps.
#[derive(Clone)]
pub struct EngineSettings {
    /// Private working folders of attempts, cached Python environments, the `python3` shim.
    pub work_dir: PathBuf,
    /// Steps running at once, across runs.
    pub max_concurrent_steps: usize,
    /// The interpreter lightweight Python components run with (`python3` in their commands).
    pub python: PathBuf,
    /// Whether that interpreter has `kfp` (then the SDK's pip preamble is skipped).
    pub python_has_kfp: bool,
    /// How often to look for runs created by other weir processes when nothing happens.
    pub poll_interval: Duration,
    /// Runs under way at once; more wait PENDING in creation order.
    pub max_running_runs: usize,
    /// Starts lightweight Python steps from a warm interpreter (when it has kfp).
    pub python_driver: Option<Arc<dyn crate::driver::PythonDriver>>,
    /// The environment every step starts from ([`crate::step_env::base_environment`]).
    pub step_env: Vec<(String, String)>,
    /// Folders whose files importers may name by local path; the artifact store's own files
    /// are always allowed.
    pub local_artifact_roots: Vec<PathBuf>,
    /// Whether steps can have a mount namespace of their own (weir runs with the privilege to
    /// make one): then, with an object store, they see their artifacts at the local paths KFP's
    /// SDK derives from the durable URIs (`/s3/…`, `/gcs/…`).
    pub private_mounts: bool,
    /// The object store's mount point (`/s3`, `/gcs`) exists: steps see its artifacts there.
    pub object_mounts: bool,
    /// This weir as one of several on one database: it drives only the runs it took, and
    /// takes those whose replica died. None: the only weir, driving every run.
    pub replica: Option<Arc<crate::replica::Replica>>,
}

/// Checks whether an interpreter can run the kfp executor.
pub async fn python_has_kfp(python: &Path) -> bool {
    tokio::process::Command::new(python)
        .args(["-c", "import kfp.dsl.executor_main"])
        .env("_KFP_RUNTIME", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

pub struct Engine {
    store: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    clock: Arc<dyn Clock>,
    driver: Arc<dyn Driver>,
    settings: EngineSettings,
    notify: Arc<Notify>,
    slots: Arc<Semaphore>,
    /// Container steps this process is launching, running or watching.
    attempts: Attempts,
    /// Set on shutdown: no new step starts.
    stopping: std::sync::atomic::AtomicBool,
    /// One writer per run at a time within this process.
    run_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Finished steps' results and slotted steps' claims waiting for their run's lock, by
    /// run: whoever takes the lock writes all of them with one pass
    /// ([`Engine::record_and_advance`], [`Engine::claim_queued`]).
    queued: Mutex<HashMap<String, pass::Queued>>,
    /// Active runs as this engine last wrote them. The engine is the only writer of a run's
    /// tasks and artifacts, and the API only ever changes a run's state, so a view stays
    /// exact while the state the store reports matches it; reloading every task at every
    /// event would make a step cost O(tasks). Taken out and put back under the run's lock.
    views: Mutex<HashMap<String, CachedRun>>,
    /// Steps starting together would race on the files of a Python environment.
    env_locks: tokio::sync::Mutex<()>,
    /// Runs this replica took that wait for their recovery, with whether the weir before
    /// ran on this host.
    unrecovered: Mutex<HashMap<String, bool>>,
    /// Finished attempts' folders, emptied, for the next attempts.
    recycler: Arc<recycle::Recycler>,
    /// Removes a run's folder once it has ended and its attempts' folders are gone.
    run_folders: run_folders::RunFolders,
}

/// A run kept in memory between events.
struct CachedRun {
    view: RunView,
    /// The last advance had nothing to do and nothing has changed since (until `wake_at`).
    settled: bool,
    wake_at: Option<i64>,
}

fn err(message: impl Into<String>) -> Option<ErrorInfo> {
    Some(ErrorInfo { code: 2, message: message.into() })
}

/// What a pending task's next attempt turns out to be.
enum Prepared {
    Run(StepPlan, Option<weir_spec::ir::RetryPolicy>),
    /// A finished task with the same fingerprint answers it.
    Cached(StepPlan, Box<Task>),
    Unplannable(PlanError),
}

/// Marks a task's next attempt RUNNING with its plan's fingerprint and image.
fn start_attempt(task: &mut Task, plan: &StepPlan, now: i64) {
    task.fingerprint = plan.fingerprint.clone();
    task.image = plan.image.clone();
    task.attempts += 1;
    task.started_at = now;
    task.set_state(RuntimeState::Running, None, now);
}

/// How an attempt's end was recorded.
#[derive(Default)]
pub(super) struct Finished {
    /// The attempt's folder, once its result is recorded: for the caller to remove or reuse.
    folder: Option<PathBuf>,
    /// The run's pass, when it was written with the result.
    passed: Option<pass::Passed>,
}

/// A step claimed in the pass that created it, with the slot it runs in.
struct Claimed {
    task: Task,
    plan: StepPlan,
    retry: Option<weir_spec::ir::RetryPolicy>,
    permit: tokio::sync::OwnedSemaphorePermit,
}

impl Engine {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        artifacts: ArtifactStore,
        clock: Arc<dyn Clock>,
        driver: Arc<dyn Driver>,
        settings: EngineSettings,
        notify: Arc<Notify>,
    ) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(settings.max_concurrent_steps.max(1)));
        // A spare for each step that can end while others start, and a few more.
        let recycler =
            Arc::new(recycle::Recycler::new(&settings.work_dir, 2 * settings.max_concurrent_steps.max(1) + 2));
        let run_folders = run_folders::RunFolders::new(&settings.work_dir);
        Arc::new(Self {
            store,
            artifacts,
            clock,
            driver,
            settings,
            notify,
            slots,
            attempts: Attempts::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            run_locks: Mutex::new(HashMap::new()),
            queued: Mutex::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
            env_locks: tokio::sync::Mutex::new(()),
            unrecovered: Mutex::new(HashMap::new()),
            recycler,
            run_folders,
        })
    }

    /// Who the engine's writes are from, so the store refuses them once another replica took
    /// the run over.
    fn owner(&self) -> Option<String> {
        self.settings.replica.as_ref().map(|r| r.id().to_string())
    }

    /// Wakes the loop (a run was created, terminated or retried).
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// What planning a step needs to know of how steps run here.
    pub(crate) fn step_settings(&self) -> StepSettings {
        StepSettings {
            python_fast_path: self.settings.python_has_kfp,
            store_url: self.artifacts.url().to_string(),
            private_mounts: self.settings.private_mounts,
            object_mounts: self.settings.object_mounts,
            volumes_dir: self.settings.work_dir.join("volumes"),
            on_cluster: self.driver.remote(),
        }
    }

    /// The working folder of an attempt (its live log is `log.txt` there).
    pub fn attempt_dir(&self, run_id: &str, task_id: &str, attempt: i64) -> PathBuf {
        layout::attempt_dir(&self.settings.work_dir, run_id, task_id, attempt)
    }

    fn run_lock(&self, run_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.run_locks.lock().expect("run locks");
        locks.entry(run_id.to_string()).or_default().clone()
    }

    /// Runs until `shutdown` resolves. Steps still running then are left to finish or be
    /// recovered by the next start.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Until recovery has gone through once, steps of an earlier weir are neither watched
        // nor settled: it is tried again at every pass until the store lets it finish.
        let mut recovered = false;
        loop {
            if !recovered && self.settings.replica.is_some() {
                // Each run is recovered when this replica takes it.
                recovered = true;
            }
            if !recovered {
                match self.recover().await {
                    Ok(()) => recovered = true,
                    Err(e) => tracing::warn!(error = %e, "engine recovery failed; trying again at the next pass"),
                }
            }
            // A pass over many runs can be long; shutdown does not wait for it. Stopping
            // between any two writes is safe: rows are written before anything is acted on.
            let ticked = tokio::select! {
                ticked = self.tick_all() => ticked,
                _ = &mut shutdown => break,
            };
            let wake = match ticked {
                Ok(wake) => wake,
                Err(e) => {
                    tracing::warn!(error = %e, "engine tick failed");
                    None
                }
            };
            let now = self.clock.now_ms();
            let poll = self.settings.poll_interval.as_millis() as i64;
            let delay = wake.map(|w| (w - now).clamp(0, poll)).unwrap_or(poll);
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(delay as u64)) => {}
                _ = &mut shutdown => break,
            }
        }
    }

    /// Advances every active run once, oldest first; returns the earliest time something is
    /// due. At most `max_running_runs` runs are under way at once: the others wait PENDING, in
    /// creation order, so a flood of submissions queues instead of slowing every run down
    /// together (and the engine's memory stays bounded by the runs under way).
    pub async fn tick_all(self: &Arc<Self>) -> Result<Option<i64>, EngineError> {
        let mut wake: Option<i64> = None;
        let (active, others) = match self.settings.replica.clone() {
            Some(replica) => self.replica_runs(&replica).await?,
            None => (self.store.active_runs().await?, HashSet::new()),
        };
        {
            // Runs that ended or were deleted behind the engine's back leave memory; so do
            // runs another replica took over, but their steps are its to settle now.
            let ids: HashSet<&str> = active.iter().map(|(id, _)| id.as_str()).collect();
            let mut gone = Vec::new();
            self.views.lock().expect("views").retain(|id, cached| {
                let keep = ids.contains(id.as_str());
                if !keep && others.contains(id) {
                    tracing::warn!(run.id = %id, "another weir drives this run now");
                } else if !keep {
                    gone.push(
                        cached
                            .view
                            .tasks
                            .iter()
                            .filter(|t| t.state == RuntimeState::Running)
                            .map(|t| t.id.clone())
                            .collect::<Vec<_>>(),
                    );
                }
                keep
            });
            // A run that left while its steps run was deleted (the engine ends runs only
            // after their steps): its steps are stopped, as KFP's deletion of the workflow
            // stops its pods.
            for task_id in gone.into_iter().flatten() {
                if let Some(handle) = self.attempts.stop(&task_id, Stop::RunDeleted) {
                    tracing::info!(task.id = %task_id, "stopping a step of a deleted run");
                    self.driver.kill(handle);
                }
            }
            // A run's lock goes with it, unless someone still holds it.
            self.run_locks
                .lock()
                .expect("run locks")
                .retain(|id, lock| ids.contains(id.as_str()) || Arc::strong_count(lock) > 1);
        }
        let mut under_way = active.iter().filter(|(_, state)| *state != RuntimeState::Pending).count();
        let limit = self.settings.max_running_runs.max(1);
        let pending = active.len() - under_way;
        let admitted = pending.min(limit.saturating_sub(under_way));
        telemetry::queue(pending - admitted, under_way + admitted, self.attempts.len());
        for (run_id, state) in active {
            if state == RuntimeState::Pending {
                if under_way >= limit {
                    continue;
                }
                under_way += 1;
            }
            match self.tick(&run_id, state).await {
                Ok(Some(at)) => wake = Some(wake.map_or(at, |w| w.min(at))),
                Ok(None) => {}
                Err(e) => tracing::warn!(run.id = %run_id, error = %e, "could not advance run"),
            }
        }
        Ok(wake)
    }

    async fn load(&self, run_id: &str) -> Result<RunView, EngineError> {
        let run = self.store.get_run(run_id).await?;
        let mut spec = weir_spec::ir::PipelineSpec::parse(&run.pipeline_spec).map_err(EngineError::Spec)?;
        spec.platform =
            weir_spec::platform::PlatformConfig::parse(run.platform_spec.as_ref()).map_err(EngineError::Spec)?;
        let tasks = self.store.list_tasks(run_id).await?;
        let mut artifacts: HashMap<i64, Artifact> =
            self.store.list_artifacts(run_id).await?.into_iter().map(|a| (a.id, a)).collect();
        // Inputs may come from other runs' artifacts (cache hits).
        let missing = referenced_artifacts(&tasks, &artifacts);
        for artifact in self.store.get_artifacts(&missing).await? {
            artifacts.insert(artifact.id, artifact);
        }
        Ok(RunView { run, spec: Arc::new(spec), tasks: tasks.into(), artifacts })
    }

    /// The run's view: from memory, or loaded when it is not there.
    async fn take_view(&self, run_id: &str) -> Result<CachedRun, EngineError> {
        if let Some(cached) = self.views.lock().expect("views").remove(run_id) {
            return Ok(cached);
        }
        Ok(CachedRun { view: self.load(run_id).await?, settled: false, wake_at: None })
    }

    /// Keeps a view for the next event, unless the run is over.
    fn put_view(&self, cached: CachedRun) {
        if !cached.view.run.state.is_terminal() {
            self.views.lock().expect("views").insert(cached.view.run.id.clone(), cached);
        }
    }

    /// Graceful stop: no new step starts; running steps get `grace` to finish, then are
    /// stopped and recorded as pending, to run again at the next start.
    pub async fn drain(&self, grace: Duration) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        while !self.attempts.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let running = self.attempts.running();
        if running.is_empty() {
            return;
        }
        tracing::warn!(steps = running.len(), "grace period over: stopping the steps still running");
        for task_id in running {
            if let Some(handle) = self.attempts.stop(&task_id, Stop::Shutdown) {
                self.driver.kill(handle);
            }
        }
        // Let their launches record the interruption.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.attempts.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops a step of a terminated run.
    fn kill(&self, task_id: &str) {
        if let Some(handle) = self.attempts.stop(task_id, Stop::Terminated) {
            self.driver.kill(handle);
        }
    }

    async fn save_task(&self, run_id: &str, task: Task, artifacts: Vec<Artifact>) -> Result<(), StoreError> {
        let lock = self.run_lock(run_id);
        let _guard = lock.lock().await;
        self.save_task_locked(run_id, task, artifacts).await
    }

    /// Writes a task's new row (and its output artifacts), then the same into the run's view.
    /// Called with the run's lock held.
    async fn save_task_locked(&self, run_id: &str, task: Task, artifacts: Vec<Artifact>) -> Result<(), StoreError> {
        self.save_task_with(run_id, task, artifacts, Vec::new()).await
    }

    /// [`Self::save_task_locked`] for a cache hit, whose write holds its sources.
    async fn save_task_with(
        &self,
        run_id: &str,
        task: Task,
        artifacts: Vec<Artifact>,
        cache_sources: Vec<String>,
    ) -> Result<(), StoreError> {
        let cached = self.views.lock().expect("views").remove(run_id);
        let progress = Progress {
            changed_tasks: vec![task],
            new_artifacts: artifacts,
            owner: self.owner(),
            cache_sources,
            ..Default::default()
        };
        // A failed write drops the view: the next event reads the run again. Except a fenced
        // one (the run was deleted, or another weir took it): the view stays as it was, so the
        // loop's next pass finds the run gone and stops its running steps (a step's process id
        // is written once it has run a while, possibly after its run was deleted).
        if let Err(e) = self.store.save_progress(run_id, &progress).await {
            if let (StoreError::Fenced(_), Some(cached)) = (&e, cached) {
                self.put_view(cached);
            }
            return Err(e);
        }
        if let Some(mut cached) = cached {
            let Progress { changed_tasks, new_artifacts, .. } = progress;
            cached.view.artifacts.extend(new_artifacts.into_iter().map(|a| (a.id, a)));
            // A cache hit's outputs are another run's artifacts: the next steps need them. Only
            // the tasks written now can bring new ones.
            let missing = referenced_artifacts(&changed_tasks, &cached.view.artifacts);
            for task in changed_tasks {
                cached.view.tasks.upsert(task);
            }
            if !missing.is_empty() {
                match self.store.get_artifacts(&missing).await {
                    Ok(found) => cached.view.artifacts.extend(found.into_iter().map(|a| (a.id, a))),
                    // The next event reads the run again.
                    Err(_) => return Ok(()),
                }
            }
            cached.settled = false;
            self.put_view(cached);
        }
        Ok(())
    }

    /// One attempt of a container task, start to finish.
    async fn launch(self: &Arc<Self>, run_id: &str, task_id: &str) -> Finished {
        let Ok(permit) = self.slots.clone().acquire_owned().await else { return Finished::default() };
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Finished::default();
        }
        // Claim the task under the run's lock: it must still be pending and due. With what
        // else waits for the lock when it can be; alone when that cannot decide it.
        let claimed = match self.claim_queued(run_id, task_id).await {
            Some(claimed) => claimed,
            None => {
                let lock = self.run_lock(run_id);
                let _guard = lock.lock().await;
                match self.claim(run_id, task_id).await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!(run.id = %run_id, task.id = %task_id, error = %e, "could not start a step");
                        None
                    }
                }
            }
        };
        let Some((task, plan, retry)) = claimed else { return Finished::default() };
        self.run_claimed(run_id, task, plan, retry, permit).await
    }

    /// Claims, in memory, the steps this pass creates and can start at once (a free slot, no
    /// cache hit to look at, a plan that builds), so they are written RUNNING in the same
    /// transaction that creates them: one transaction less per step than creating them
    /// PENDING and claiming them after. Returns them with their slots; the rest of the
    /// launches (removed from `step`) go the usual way.
    async fn claim_new_steps(&self, view: &mut RunView, step: &mut Step, now: i64) -> Vec<Claimed> {
        let mut claimed = Vec::new();
        if step.launches.is_empty() || self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return claimed;
        }
        if !matches!(step.progress.run.as_ref().map(|t| t.to).unwrap_or(view.run.state), RuntimeState::Running) {
            return claimed;
        }
        let mut remaining = Vec::new();
        for task_id in std::mem::take(&mut step.launches) {
            let Some(at) = step.progress.new_tasks.iter().position(|t| t.id == task_id) else {
                remaining.push(task_id);
                continue;
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                remaining.push(task_id);
                continue;
            };
            // A plan error, a cache hit or a store that cannot tell: the usual claim records
            // each as it does for any step.
            let Ok(Prepared::Run(plan, retry)) = self.prepare_attempt(view, &step.progress.new_tasks[at]).await else {
                remaining.push(task_id);
                continue;
            };
            let mut task = step.progress.new_tasks[at].clone();
            start_attempt(&mut task, &plan, now);
            step.progress.new_tasks[at] = task.clone();
            if let Some(slot) = view.tasks.get_mut(&task.id) {
                *slot = task.clone();
            }
            claimed.push(Claimed { task, plan, retry, permit });
        }
        step.launches = remaining;
        claimed
    }

    /// Runs a claimed attempt to its end and records the result (see [`Engine::finish_attempt`]).
    #[tracing::instrument(skip_all, fields(run.id = %run_id, task.id = %task.id, attempt = task.attempts))]
    async fn run_claimed(
        self: &Arc<Self>,
        run_id: &str,
        task: Task,
        plan: StepPlan,
        retry: Option<weir_spec::ir::RetryPolicy>,
        permit: OwnedSemaphorePermit,
    ) -> Finished {
        let claimed = std::time::Instant::now();
        telemetry::step_started();
        let task_id = task.id.clone();
        let outcome = self.execute(run_id, &task, &plan).await;
        let finished = self.finish_attempt(run_id, task, outcome, retry.as_ref(), Some(permit)).await;
        if let Some(ran) = self.attempts.ran(&task_id) {
            telemetry::orchestration(claimed.elapsed().saturating_sub(ran));
        }
        finished
    }

    /// After a step's attempt is over: its folder goes while the run's next pass starts the
    /// steps it lets start, which is done at once (see [`Engine::advance_after_step`]) unless
    /// the pass was made with the result's write.
    pub(super) async fn after_attempt(self: &Arc<Self>, run_id: &str, task_id: &str, finished: Finished) {
        let Finished { folder, passed } = finished;
        let handle = self.attempts.end(task_id);
        // Reused only when the step left nothing running that could still write into it.
        let reuse = handle.is_some_and(|handle| self.driver.left_nothing_running(handle));
        let recycler = self.recycler.clone();
        let remove = async move {
            if let Some(folder) = folder {
                let _ = tokio::task::spawn_blocking(move || {
                    if reuse {
                        recycler.put(&folder);
                    } else {
                        let _ = std::fs::remove_dir_all(&folder);
                    }
                })
                .await;
            }
        };
        // The run's folder goes after its last attempt's, whichever ended the run.
        let remove = async move {
            remove.await;
            self.run_folders.attempt_gone(run_id).await;
        };
        let advanced = match passed {
            Some(passed) => {
                remove.await;
                passed.started > 0
            }
            None => tokio::join!(remove, self.advance_after_step(run_id)).1,
        };
        if !advanced {
            self.notify.notify_one();
        }
    }

    /// Settles an attempt whose process is over (started here, or adopted after a restart)
    /// and records it. The step's folder goes only once the result is recorded: until then
    /// the exit status it left there is how a restarted weir learns that the step already ran,
    /// and how it ended. Returns the folder of a recorded attempt, for the caller to remove,
    /// and the run's pass when it was written with the result.
    async fn finish_attempt(
        self: &Arc<Self>,
        run_id: &str,
        task: Task,
        outcome: Outcome,
        retry: Option<&weir_spec::ir::RetryPolicy>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Finished {
        // The process is over: its slot is free for the step the result lets start.
        drop(permit);
        let stop = self.attempts.ended(&task.id);
        let workdir = self.attempt_dir(run_id, &task.id, task.attempts);
        match settle(task, outcome, stop, retry, self.clock.now_ms()) {
            Settled::Record(task, artifacts) => {
                tracing::info!(run.id = %run_id, task.id = %task.id, task.name = %task.name, task.state = %task.state, attempt = task.attempts, "step finished");
                telemetry::step_finished(&task);
                // Ending the task, the result is best written with the pass it lets happen;
                // when that cannot be, alone (retried until it lands).
                if task.state.is_terminal() && !self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Some(passed) = self.record_and_advance(run_id, &task, &artifacts).await {
                        return Finished { folder: Some(workdir), passed: Some(passed) };
                    }
                }
                let stored = self.save_result(run_id, *task, artifacts).await;
                Finished { folder: stored.then_some(workdir), passed: None }
            }
            Settled::Leave => {
                tracing::warn!(run.id = %run_id, "leaving a finished step to the next start: the artifact store is unreachable");
                Finished::default()
            }
            Settled::Discard => {
                // Its run is gone: there is nowhere to record it, and nothing to settle later.
                let _ = tokio::fs::remove_dir_all(&workdir).await;
                let _ = tokio::fs::remove_dir(layout::run_dir(&self.settings.work_dir, run_id)).await;
                Finished::default()
            }
        }
    }

    /// Records a finished step; returns whether it is stored. A retryable failure (the store
    /// unreachable, a deadlock, a serialisation failure, a busy SQLite file) is retried until
    /// the write goes through: the step ran, and running it again because the database
    /// blinked would be wrong. During shutdown the retries stop after
    /// [`SHUTDOWN_SAVE_RETRIES`]; the step's folder then stays, and the next start settles the
    /// step from the exit status it left there.
    async fn save_result(&self, run_id: &str, task: Task, artifacts: Vec<Artifact>) -> bool {
        let mut delay = Duration::from_millis(50);
        let mut tries_while_stopping = 0;
        loop {
            match self.save_task(run_id, task.clone(), artifacts.clone()).await {
                Ok(()) => return true,
                Err(e) if e.is_retryable() => {
                    if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                        tries_while_stopping += 1;
                        if tries_while_stopping > SHUTDOWN_SAVE_RETRIES {
                            tracing::warn!(run.id = %run_id, task.id = %task.id, error = %e, "stopping before a step's result could be recorded; the next start settles it from its folder");
                            return false;
                        }
                    }
                    tracing::warn!(run.id = %run_id, task.id = %task.id, error = %e, "cannot record a step's result yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(StoreError::Fenced(_)) => {
                    tracing::warn!(run.id = %run_id, task.id = %task.id, "another weir took this run over; it settles the step from its folder");
                    return false;
                }
                Err(e) => {
                    tracing::error!(run.id = %run_id, task.id = %task.id, error = %e, "could not record a step's result; its folder is kept for the next start to settle it");
                    return false;
                }
            }
        }
    }

    /// Marks a pending task RUNNING (or answers it from the cache) before anything runs.
    /// Called with the run's lock held.
    async fn claim(
        &self,
        run_id: &str,
        task_id: &str,
    ) -> Result<Option<(Task, StepPlan, Option<weir_spec::ir::RetryPolicy>)>, EngineError> {
        let cached = self.take_view(run_id).await?;
        let view = &cached.view;
        if !matches!(view.run.state, RuntimeState::Running) {
            self.put_view(cached);
            return Ok(None);
        }
        let Some(mut task) = view.tasks.get(task_id).cloned() else {
            self.put_view(cached);
            return Ok(None);
        };
        let now = self.clock.now_ms();
        if task.state != RuntimeState::Pending || task.retry_at > now {
            self.put_view(cached);
            return Ok(None);
        }
        let prepared = self.prepare_attempt(view, &task).await;
        self.put_view(cached);
        match prepared? {
            Prepared::Unplannable(e) => {
                task.set_state(RuntimeState::Failed, err(e.to_string()), now);
                telemetry::step_finished(&task);
                self.save_task_locked(run_id, task, Vec::new()).await?;
                Ok(None)
            }
            Prepared::Cached(plan, hit) => {
                task.fingerprint = plan.fingerprint;
                task.image = plan.image;
                task.outputs = hit.outputs.clone();
                task.cached = true;
                task.set_state(RuntimeState::Succeeded, None, now);
                tracing::info!(run.id = %run_id, task.id = %task.id, cache.source = %hit.id, "cache hit");
                let finished = task.clone();
                match self.save_task_with(run_id, task, Vec::new(), vec![hit.id.clone()]).await {
                    Ok(()) => telemetry::step_finished(&finished),
                    // The source's run was removed between the lookup and this write: the
                    // task stays pending, and its next claim looks again (or runs it).
                    Err(StoreError::Aborted(reason)) => {
                        tracing::info!(run.id = %run_id, task.id = %task_id, cache.source = %hit.id, %reason, "cache source removed; looking again");
                        return Box::pin(self.claim(run_id, task_id)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
                Ok(None)
            }
            Prepared::Run(plan, retry) => {
                start_attempt(&mut task, &plan, now);
                self.save_task_locked(run_id, task.clone(), Vec::new()).await?;
                Ok(Some((task, plan, retry)))
            }
        }
    }

    /// Plans a pending task's next attempt and looks for a cache hit that answers it instead:
    /// what both claims (of a step created earlier, and in the pass that creates it) decide on.
    async fn prepare_attempt(&self, view: &RunView, task: &Task) -> Result<Prepared, StoreError> {
        let workdir = self.attempt_dir(&view.run.id, &task.id, task.attempts + 1);
        let settings = self.step_settings();
        let plan = match plan_step(&view.spec, &view.run, &view.tasks, task, &view.artifacts, &workdir, &settings) {
            Ok(plan) => plan,
            Err(e) => return Ok(Prepared::Unplannable(e)),
        };
        if !plan.fingerprint.is_empty() {
            if let Some(hit) = self.store.find_cached(&task.pipeline_name, &plan.fingerprint).await? {
                return Ok(Prepared::Cached(plan, Box::new(hit)));
            }
        }
        let retry = task_spec_ref(&view.spec, &view.tasks, task).ok().and_then(|(spec, _)| spec.retry_policy.clone());
        Ok(Prepared::Run(plan, retry))
    }
}

/// Artifact ids the tasks refer to (as inputs or outputs) that `known` lacks, sorted.
fn referenced_artifacts(tasks: &[Task], known: &HashMap<i64, Artifact>) -> Vec<i64> {
    let mut missing: Vec<i64> = tasks
        .iter()
        .flat_map(|t| t.inputs.artifact_ids().chain(t.outputs.artifact_ids()))
        .filter(|id| !known.contains_key(id))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}
