//! The engine's state machine without processes: rows in, actions out. Each test plays the
//! runtime's part (launched steps start, then finish with outputs) and asserts on the actions.

use std::collections::HashMap;

use serde_json::{json, Value};
use weir_engine::planner::{advance, RunView, Step};
use weir_store::{Run, RuntimeState, StateChange, StorageState, Task, TaskIo, TaskKind};

fn spec(name: &str) -> Value {
    let path = format!("{}/tests/pipelines/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    weir_spec::read_package(&format!("{name}.yaml"), text.as_bytes()).unwrap().pipeline_spec
}

fn view(name: &str, parameters: Value) -> RunView {
    let pipeline_spec = spec(name);
    let run = Run {
        id: "run-1".into(),
        experiment_id: "e".into(),
        display_name: "r".into(),
        description: String::new(),
        namespace: String::new(),
        storage_state: StorageState::Available,
        pipeline_id: String::new(),
        pipeline_version_id: String::new(),
        pipeline_spec: pipeline_spec.clone(),
        platform_spec: None,
        parameters: parameters.as_object().cloned().unwrap_or_default(),
        pipeline_root: String::new(),
        service_account: String::new(),
        created_at: 0,
        scheduled_at: 0,
        finished_at: 0,
        state: RuntimeState::Pending,
        error: None,
        recurring_run_id: String::new(),
        state_history: vec![StateChange { update_time: 0, state: RuntimeState::Pending, error: None }],
    };
    RunView {
        run,
        spec: std::sync::Arc::new(weir_spec::ir::PipelineSpec::parse(&pipeline_spec).unwrap()),
        tasks: Default::default(),
        artifacts: HashMap::new(),
    }
}

/// Advances, then plays the runtime: applies the run transition and starts launched steps.
fn step(view: &mut RunView, now: i64) -> Step {
    let step = advance(view, now);
    if let Some(t) = &step.progress.run {
        view.run.state = t.to;
        view.run.error = t.error.clone();
    }
    for id in &step.launches {
        let task = view.tasks.iter_mut().find(|t| &t.id == id).unwrap();
        task.attempts += 1;
        task.set_state(RuntimeState::Running, None, now);
    }
    step
}

fn names(view: &RunView, ids: &[String]) -> Vec<String> {
    let mut names: Vec<String> =
        ids.iter().map(|id| view.tasks.iter().find(|t| &t.id == id).unwrap().name.clone()).collect();
    names.sort();
    names
}

fn task<'a>(view: &'a mut RunView, name: &str) -> &'a mut Task {
    view.tasks
        .iter_mut()
        .find(|t| t.name == name && t.kind == TaskKind::Container && !t.state.is_terminal())
        .unwrap_or_else(|| panic!("no open step {name}"))
}

/// A task's inputs or outputs as the JSON they are stored as.
fn io(value: &TaskIo) -> Value {
    serde_json::to_value(value).unwrap()
}

fn from_json(value: Value) -> TaskIo {
    serde_json::from_value(value).unwrap()
}

fn finish(view: &mut RunView, name: &str, outputs: Value) {
    let t = task(view, name);
    t.outputs = from_json(outputs);
    t.set_state(RuntimeState::Succeeded, None, 1);
}

fn state_of(view: &RunView, name: &str) -> RuntimeState {
    view.tasks.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no task {name}")).state
}

#[test]
fn a_chain_runs_step_by_step_and_resolves_inputs() {
    let mut v = view("chain", json!({"n": 4}));
    let s = step(&mut v, 1);
    assert_eq!(s.progress.run.as_ref().unwrap().to, RuntimeState::Running);
    assert_eq!(names(&v, &s.launches), ["produce"]);
    assert_eq!(io(&task(&mut v, "produce").inputs)["parameters"], json!({"n": 4}));

    // Nothing else can start until produce has finished.
    assert!(step(&mut v, 2).launches.is_empty());
    finish(&mut v, "produce", json!({"parameters": {"Output": 8}}));
    let s = step(&mut v, 3);
    assert_eq!(names(&v, &s.launches), ["write"], "consume waits for read (.after)");
    assert_eq!(io(&task(&mut v, "write").inputs)["parameters"], json!({"x": 8}));

    finish(&mut v, "write", json!({"artifacts": {"out": [101]}}));
    let s = step(&mut v, 4);
    assert_eq!(names(&v, &s.launches), ["read"]);
    assert_eq!(io(&task(&mut v, "read").inputs)["artifacts"], json!({"data": [101]}));
    finish(&mut v, "read", json!({"parameters": {"Output": "8"}}));
    let s = step(&mut v, 5);
    assert_eq!(names(&v, &s.launches), ["consume"]);
    assert_eq!(io(&task(&mut v, "consume").inputs)["parameters"], json!({"x": 8}));
    finish(&mut v, "consume", json!({"parameters": {"Output": "v=8"}}));

    let s = step(&mut v, 6);
    assert_eq!(s.progress.run.as_ref().unwrap().to, RuntimeState::Succeeded);
    let root = v.tasks.iter().find(|t| t.name == "root").unwrap();
    assert_eq!(io(&root.outputs)["parameters"], json!({"Output": "v=8"}), "pipeline outputs");
    // A finished run produces no more actions.
    assert_eq!(step(&mut v, 7), Step::default());
}

#[test]
fn a_missing_required_parameter_fails_the_run() {
    let mut v = view("chain", json!({}));
    let s = step(&mut v, 1);
    let transition = s.progress.run.unwrap();
    assert_eq!(transition.to, RuntimeState::Failed);
    assert_eq!(transition.from, [RuntimeState::Pending], "written from the state the store holds");
    assert!(transition.error.unwrap().message.contains("\"n\""));
    assert!(s.launches.is_empty());
}

#[test]
fn conditions_are_evaluated_with_cel_and_oneof_picks_the_branch_that_ran() {
    for (n, produced, branch, skipped, expect) in
        [(1, 2, "condition-3", "condition-2", "small=2"), (4, 8, "condition-2", "condition-3", "big=8")]
    {
        let mut v = view("branches", json!({"n": n}));
        step(&mut v, 1);
        finish(&mut v, "produce", json!({"parameters": {"Output": produced}}));
        let s = step(&mut v, 2);
        assert_eq!(s.launches.len(), 1);
        assert_eq!(state_of(&v, skipped), RuntimeState::Skipped);
        assert_eq!(state_of(&v, branch), RuntimeState::Running);
        let launched = s.launches[0].clone();
        let t = v.tasks.iter_mut().find(|t| t.id == launched).unwrap();
        t.outputs = from_json(json!({"parameters": {"Output": expect}}));
        t.set_state(RuntimeState::Succeeded, None, 3);
        let s = step(&mut v, 4);
        assert_eq!(s.progress.run.as_ref().unwrap().to, RuntimeState::Succeeded);
        let root = v.tasks.iter().find(|t| t.name == "root").unwrap();
        assert_eq!(io(&root.outputs)["parameters"]["Output"], json!(expect));
    }
}

#[test]
fn loops_respect_parallelism_and_collect_in_order() {
    let mut v = view("loop", json!({"n": 3}));
    step(&mut v, 1);
    finish(&mut v, "make-items", json!({"parameters": {"Output": [0, 1, 2]}}));
    let s = step(&mut v, 2);
    assert_eq!(s.launches.len(), 2, "parallelism=2");
    let iterations: Vec<&Task> = v.tasks.iter().filter(|t| t.kind == TaskKind::Iteration).collect();
    assert_eq!(iterations.len(), 2);
    // Finish the second iteration first: collection still follows iteration order.
    let second =
        v.tasks.iter().find(|t| t.kind == TaskKind::Iteration && t.iteration_index == Some(1)).unwrap().id.clone();
    let sq = v.tasks.iter_mut().find(|t| t.parent_id == second).unwrap();
    assert_eq!(io(&sq.inputs)["parameters"]["x"], json!(1));
    sq.outputs = from_json(json!({"parameters": {"Output": 1}}));
    sq.set_state(RuntimeState::Succeeded, None, 3);
    let s = step(&mut v, 4);
    assert_eq!(s.launches.len(), 1, "a slot freed: the third iteration starts");
    for t in v.tasks.iter_mut().filter(|t| t.name == "square" && t.state == RuntimeState::Running) {
        let x = io(&t.inputs)["parameters"]["x"].as_i64().unwrap();
        t.outputs = from_json(json!({"parameters": {"Output": x * x}}));
        t.set_state(RuntimeState::Succeeded, None, 5);
    }
    let s = step(&mut v, 6);
    assert_eq!(names(&v, &s.launches), ["total"]);
    assert_eq!(io(&task(&mut v, "total").inputs)["parameters"], json!({"values": [0, 1, 4]}));
}

#[test]
fn a_failure_skips_dependents_runs_the_exit_handler_and_fails_the_run() {
    let mut v = view("exit", json!({}));
    let s = step(&mut v, 1);
    assert_eq!(names(&v, &s.launches), ["produce"]);
    let t = task(&mut v, "produce");
    t.set_state(
        RuntimeState::Failed,
        Some(weir_store::ErrorInfo { code: 2, message: "the step exited with code 1".into() }),
        2,
    );
    let s = step(&mut v, 3);
    assert_eq!(names(&v, &s.launches), ["report"], "the exit task runs after a failure");
    let status = &io(&task(&mut v, "report").inputs)["parameters"]["status"];
    assert_eq!(status["state"], json!("FAILED"));
    // KFP's form, `<pipeline name>-<5 characters>`, not the run's id.
    let resource_name = weir_spec::names::job_resource_name(&v.spec.pipeline_info.name, "run-1");
    assert_eq!(status["pipelineJobResourceName"], json!(resource_name));
    assert_eq!(status["pipelineTaskName"], json!("exit-handler-1"));
    assert!(status["error"]["message"].as_str().unwrap().contains("exited with code 1"));
    finish(&mut v, "report", json!({"parameters": {"Output": "FAILED"}}));
    let s = step(&mut v, 4);
    assert_eq!(s.progress.run.as_ref().unwrap().to, RuntimeState::Failed, "the body failed, so the run fails");
}

#[test]
fn pending_retries_wait_for_their_backoff() {
    let mut v = view("exit", json!({}));
    step(&mut v, 1);
    let t = task(&mut v, "produce");
    t.set_state(RuntimeState::Pending, None, 2);
    t.retry_at = 2_000;
    let s = step(&mut v, 1_000);
    assert!(s.launches.is_empty());
    assert_eq!(s.wake_at, Some(2_000));
    let s = step(&mut v, 2_000);
    assert_eq!(names(&v, &s.launches), ["produce"]);
}

#[test]
fn terminate_kills_running_steps_then_cancels_the_run() {
    let mut v = view("loop", json!({"n": 3}));
    step(&mut v, 1);
    finish(&mut v, "make-items", json!({"parameters": {"Output": [0, 1, 2]}}));
    step(&mut v, 2);
    v.run.state = RuntimeState::Canceling;
    let s = step(&mut v, 3);
    assert_eq!(s.kills.len(), 2, "both running squares are stopped");
    assert!(s.progress.run.is_none(), "not CANCELED while steps still run");
    for id in s.kills {
        let t = v.tasks.iter_mut().find(|t| t.id == id).unwrap();
        t.set_state(RuntimeState::Canceled, None, 4);
    }
    let s = step(&mut v, 5);
    assert_eq!(s.progress.run.as_ref().unwrap().to, RuntimeState::Canceled);
    assert!(v.tasks.iter().all(|t| t.state.is_terminal()));
}

#[test]
fn retry_keeps_what_succeeded_and_reruns_the_rest() {
    let mut v = view("chain", json!({"n": 1}));
    step(&mut v, 1);
    finish(&mut v, "produce", json!({"parameters": {"Output": 2}}));
    step(&mut v, 2);
    let t = task(&mut v, "write");
    t.set_state(RuntimeState::Failed, None, 3);
    let s = step(&mut v, 4);
    let states: Vec<(String, RuntimeState)> = v.tasks.iter().map(|t| (t.name.clone(), t.state)).collect();
    assert_eq!(s.progress.run.as_ref().map(|r| r.to), Some(RuntimeState::Failed), "{states:?}");
    let produce_id = v.tasks.iter().find(|t| t.name == "produce").unwrap().id.clone();

    // The API moves the run back to PENDING; the planner reopens it.
    v.run.state = RuntimeState::Pending;
    let s = step(&mut v, 5);
    assert_eq!(s.progress.run.as_ref().unwrap().to, RuntimeState::Running);
    assert_eq!(s.progress.deleted_tasks.len(), 3, "write, and the skipped read and consume");
    assert_eq!(names(&v, &s.launches), ["write"]);
    let produce = v.tasks.iter().find(|t| t.name == "produce").unwrap();
    assert_eq!((produce.id.as_str(), produce.state), (produce_id.as_str(), RuntimeState::Succeeded), "not run again");
}
