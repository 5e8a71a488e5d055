//! The attempts this process runs or watches, and the one rule that decides how an attempt
//! ended: whether it was started here and waited for, or adopted after a restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weir_spec::ir::RetryPolicy;
use weir_store::{Artifact, ErrorInfo, RuntimeState, Task, TaskIo};

use crate::error::StepError;

/// Why the engine stopped an attempt before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Its run was terminated: it is canceled.
    Terminated,
    /// Weir is shutting down: it runs again at the next start.
    Shutdown,
    /// Its run was deleted: nothing of it is recorded.
    RunDeleted,
}

#[derive(Debug, Default)]
struct Attempt {
    /// The driver's handle, once the step runs.
    handle: Option<i64>,
    /// The handle it started with, kept after it ended.
    started_as: Option<i64>,
    stop: Option<Stop>,
    /// When its process started, and how long it ran once it ended: the rest of an attempt's
    /// time is the engine's.
    started: Option<Instant>,
    ran: Option<Duration>,
}

/// Attempts being launched, run or watched, by task id: one map, so whether an attempt is
/// ours, running, and why it was stopped cannot disagree.
#[derive(Debug, Default)]
pub(super) struct Attempts(Mutex<HashMap<String, Attempt>>);

impl Attempts {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attempt>> {
        self.0.lock().expect("attempts")
    }

    /// Takes charge of a task's attempt; false when one is already under way.
    pub(super) fn begin(&self, task_id: &str) -> bool {
        let mut map = self.map();
        if map.contains_key(task_id) {
            return false;
        }
        map.insert(task_id.to_string(), Attempt::default());
        true
    }

    /// Takes charge of a step an earlier weir left running.
    pub(super) fn adopt(&self, task_id: &str, handle: i64) {
        self.map().insert(
            task_id.to_string(),
            Attempt { handle: Some(handle), started_as: Some(handle), ..Attempt::default() },
        );
    }

    pub(super) fn started(&self, task_id: &str, handle: i64) {
        if let Some(attempt) = self.map().get_mut(task_id) {
            attempt.handle = Some(handle);
            attempt.started_as = Some(handle);
            attempt.started = Some(Instant::now());
        }
    }

    /// The step's process is over: returns why the engine stopped it, if it did.
    pub(super) fn ended(&self, task_id: &str) -> Option<Stop> {
        let mut map = self.map();
        let attempt = map.get_mut(task_id)?;
        attempt.handle = None;
        attempt.ran = attempt.started.map(|at| at.elapsed());
        attempt.stop.take()
    }

    /// How long the attempt's process ran, once it ended (unknown for an adopted one).
    pub(super) fn ran(&self, task_id: &str) -> Option<Duration> {
        self.map().get(task_id).and_then(|a| a.ran)
    }

    /// The attempt is settled and recorded (or left): the task is free for its next one.
    /// Forgets an attempt; returns the handle it started with, if it started.
    pub(super) fn end(&self, task_id: &str) -> Option<i64> {
        self.map().remove(task_id).and_then(|attempt| attempt.started_as)
    }

    pub(super) fn contains(&self, task_id: &str) -> bool {
        self.map().contains_key(task_id)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.map().len()
    }

    /// Marks an attempt that never started as stopped by shutdown: it is recorded pending, to
    /// run again.
    pub(super) fn give_up(&self, task_id: &str) {
        if let Some(attempt) = self.map().get_mut(task_id) {
            attempt.stop.get_or_insert(Stop::Shutdown);
        }
    }

    /// Marks a running attempt stopped for `why` and returns its handle, for the caller to
    /// kill. A deleted run overrides any other reason (nothing is recorded then); otherwise the
    /// first reason stands. An attempt not running yet is left alone: the planner asks again.
    pub(super) fn stop(&self, task_id: &str, why: Stop) -> Option<i64> {
        let mut map = self.map();
        let attempt = map.get_mut(task_id)?;
        let handle = attempt.handle?;
        if why == Stop::RunDeleted || attempt.stop.is_none() {
            attempt.stop = Some(why);
        }
        Some(handle)
    }

    /// Running attempts' task ids.
    pub(super) fn running(&self) -> Vec<String> {
        self.map().iter().filter(|(_, a)| a.handle.is_some()).map(|(id, _)| id.clone()).collect()
    }
}

/// How an attempt's process ended, as the engine saw it: success with its outputs collected,
/// or the error that failed it.
pub(super) type Outcome = Result<(Vec<Artifact>, TaskIo), StepError>;

/// What to do with an ended attempt.
#[derive(Debug)]
pub(super) enum Settled {
    /// Record the task's new row with these output artifacts.
    Record(Box<Task>, Vec<Artifact>),
    /// Record nothing and keep its folder: the artifact store stayed unreachable until weir
    /// stopped, and the next start settles the step from its folder once the store answers.
    Leave,
    /// Record nothing and remove its folder: its run is gone.
    Discard,
}

/// Decides how an attempt ended, for a step started here and one adopted after a restart
/// alike. A step that succeeded keeps its success even when weir was stopping (its work is
/// done and its outputs are kept; running it again could repeat its side effects); a step of a
/// terminated run is canceled; one stopped by shutdown runs again at the next start; any other
/// failure is retried under the task's policy, or fails the task.
pub(super) fn settle(
    mut task: Task,
    outcome: Outcome,
    stop: Option<Stop>,
    retry: Option<&RetryPolicy>,
    now: i64,
) -> Settled {
    task.pid = 0;
    match (stop, outcome) {
        (Some(Stop::RunDeleted), _) => return Settled::Discard,
        (_, Err(e)) if e.store_unavailable() => return Settled::Leave,
        (Some(Stop::Terminated), _) => task.set_state(RuntimeState::Canceled, Some(ErrorInfo::run_terminated()), now),
        (_, Ok((artifacts, outputs))) => {
            task.outputs = outputs;
            task.set_state(RuntimeState::Succeeded, None, now);
            return Settled::Record(Box::new(task), artifacts);
        }
        (Some(Stop::Shutdown), Err(_)) => {
            let message =
                format!("weir stopped during attempt {}; the step runs again at the next start", task.attempts);
            task.set_state(RuntimeState::Pending, Some(ErrorInfo { code: 2, message }), now);
            task.finished_at = 0;
        }
        (None, Err(e)) => fail_or_retry(&mut task, retry, e.to_string(), now),
    }
    Settled::Record(Box::new(task), Vec::new())
}

/// Fails a task's attempt: PENDING again after its backoff while its retry policy allows,
/// FAILED otherwise.
pub(super) fn fail_or_retry(task: &mut Task, retry: Option<&RetryPolicy>, message: String, now: i64) {
    task.pid = 0;
    let error = Some(ErrorInfo { code: 2, message });
    match retry {
        Some(policy) if task.attempts <= policy.max_retry_count => {
            task.set_state(RuntimeState::Failed, error, now);
            task.set_state(RuntimeState::Pending, None, now);
            task.finished_at = 0;
            task.retry_at = now + policy.backoff_ms(task.attempts);
        }
        _ => task.set_state(RuntimeState::Failed, error, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running_task() -> Task {
        let mut task = Task {
            id: "t".into(),
            run_id: "r".into(),
            parent_id: "root".into(),
            name: "step".into(),
            display_name: "step".into(),
            kind: weir_store::TaskKind::Container,
            iteration_index: None,
            state: RuntimeState::Pending,
            attempts: 1,
            inputs: TaskIo::default(),
            outputs: TaskIo::default(),
            fingerprint: String::new(),
            pipeline_name: "p".into(),
            cached: false,
            image: String::new(),
            error: None,
            created_at: 1,
            started_at: 0,
            finished_at: 0,
            retry_at: 0,
            pid: 42,
            state_history: Vec::new(),
        };
        task.set_state(RuntimeState::Running, None, 1);
        task
    }

    fn outputs() -> TaskIo {
        TaskIo::parameters(json!({"x": 1}).as_object().cloned().unwrap_or_default())
    }

    fn success() -> Outcome {
        Ok((Vec::new(), outputs()))
    }

    fn failure() -> Outcome {
        Err(StepError::Killed { signal: 9, tail: String::new() })
    }

    fn recorded(settled: Settled) -> Task {
        match settled {
            Settled::Record(task, _) => *task,
            other => panic!("expected a record, got {other:?}"),
        }
    }

    /// The case the two copies of this rule disagreed on: a step that exited 0 while weir was
    /// stopping. Started here or adopted, it is the same call.
    #[test]
    fn a_success_during_shutdown_stays_a_success() {
        let task = recorded(settle(running_task(), success(), Some(Stop::Shutdown), None, 5));
        assert_eq!(task.state, RuntimeState::Succeeded);
        assert_eq!(task.outputs, outputs());
        assert_eq!(task.pid, 0);
    }

    #[test]
    fn a_failure_during_shutdown_runs_again() {
        let task = recorded(settle(running_task(), failure(), Some(Stop::Shutdown), None, 5));
        assert_eq!(task.state, RuntimeState::Pending);
        assert_eq!(task.finished_at, 0);
        assert!(task.error.unwrap().message.contains("runs again at the next start"));
    }

    #[test]
    fn a_terminated_run_cancels_its_steps() {
        for outcome in [success(), failure()] {
            let task = recorded(settle(running_task(), outcome, Some(Stop::Terminated), None, 5));
            assert_eq!(task.state, RuntimeState::Canceled);
            assert_eq!(task.error, Some(ErrorInfo::run_terminated()));
        }
    }

    #[test]
    fn failures_retry_under_the_policy() {
        let policy = RetryPolicy { max_retry_count: 1, ..Default::default() };
        let task = recorded(settle(running_task(), failure(), None, Some(&policy), 5));
        assert_eq!(task.state, RuntimeState::Pending);
        assert!(task.retry_at >= 5);
        let mut second = running_task();
        second.attempts = 2;
        let task = recorded(settle(second, failure(), None, Some(&policy), 5));
        assert_eq!(task.state, RuntimeState::Failed);
        assert_eq!(task.error.unwrap().message, "the step was killed by signal 9");
    }

    #[test]
    fn deleted_runs_and_unreachable_stores_record_nothing() {
        assert!(matches!(settle(running_task(), success(), Some(Stop::RunDeleted), None, 5), Settled::Discard));
        let unreachable = Err(StepError::Output {
            key: "k".into(),
            source: crate::error::FileError::StoreUnavailable("down".into()),
        });
        assert!(matches!(settle(running_task(), unreachable, None, None, 5), Settled::Leave));
    }

    #[test]
    fn the_map_keeps_one_reason() {
        let attempts = Attempts::default();
        assert!(attempts.begin("t"));
        assert!(!attempts.begin("t"), "one attempt of a task at a time");
        assert_eq!(attempts.stop("t", Stop::Terminated), None, "not running yet");
        attempts.started("t", 7);
        assert_eq!(attempts.running(), ["t"]);
        assert_eq!(attempts.stop("t", Stop::Terminated), Some(7));
        assert_eq!(attempts.stop("t", Stop::Shutdown), Some(7));
        assert_eq!(attempts.ended("t"), Some(Stop::Terminated));
        assert!(attempts.running().is_empty());
        assert!(attempts.contains("t"));
        attempts.end("t");
        assert!(attempts.is_empty());
        attempts.adopt("u", 9);
        attempts.stop("u", Stop::Shutdown);
        attempts.stop("u", Stop::RunDeleted);
        assert_eq!(attempts.ended("u"), Some(Stop::RunDeleted));
    }
}
