//! The engine's metrics, rendered by the server's Prometheus endpoint: what an operator watches
//! to tell a busy engine from a stuck one.

use std::time::Duration;

use weir_store::{RuntimeState, Task};

pub(crate) fn step_started() {
    metrics::counter!("weir_steps_started_total").increment(1);
}

/// A step's attempt recorded, by how it ended.
pub(crate) fn step_finished(task: &Task) {
    let outcome = match task.state {
        RuntimeState::Succeeded if task.cached => "cached",
        RuntimeState::Succeeded => "succeeded",
        RuntimeState::Failed => "failed",
        RuntimeState::Canceled => "canceled",
        RuntimeState::Pending if task.retry_at > 0 => "retried",
        RuntimeState::Pending => "interrupted",
        _ => "other",
    };
    metrics::counter!("weir_steps_finished_total", "outcome" => outcome).increment(1);
}

/// The engine's own time around a step: from its claim to its process' start, and from its
/// process' end to its result recorded.
pub(crate) fn orchestration(time: Duration) {
    metrics::histogram!("weir_step_orchestration_seconds").record(time.as_secs_f64());
}

/// Runs waiting for a place under `max_running_runs`, runs under way, and steps this process
/// runs or watches.
pub(crate) fn queue(runs_waiting: usize, runs_under_way: usize, steps_running: usize) {
    metrics::gauge!("weir_runs_queued").set(runs_waiting as f64);
    metrics::gauge!("weir_runs_under_way").set(runs_under_way as f64);
    metrics::gauge!("weir_steps_running").set(steps_running as f64);
}
