//! The engine's state machine: given a run and its tasks, decide what happens next.
//!
//! `advance` is pure: it reads the run, the spec and the task rows, changes the rows in memory
//! and returns the actions (rows to write, steps to launch or kill, when to look again). The
//! runtime writes the rows before it carries out anything (write-ahead), so a crash at any
//! point leaves rows that the next `advance` continues from. Events (a step finished, a
//! terminate was asked) reach the planner as changed rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use weir_spec::ir::{ComponentSpec, DagSpec, PipelineSpec, TaskSpec};
use weir_store::{
    Artifact, ErrorInfo, Progress, Run, RunTransition, RuntimeState, StateChange, Task, TaskIo, TaskKind,
};

use weir_spec::values::{complete_parameters, complete_task_parameters, integral_numbers};
use weir_spec::SpecError;

mod kubernetes;
mod tasks;

pub use tasks::Tasks;

/// Everything the planner looks at for one run.
#[derive(Debug, Clone)]
pub struct RunView {
    pub run: Run,
    /// Shared, so a pass over the run borrows the spec instead of copying it.
    pub spec: Arc<PipelineSpec>,
    pub tasks: Tasks,
    pub artifacts: HashMap<i64, Artifact>,
}

/// What the runtime must do after one `advance`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Rows to write, in one transaction, before anything else.
    pub progress: Progress,
    /// Container tasks ready to start (after the rows are written).
    pub launches: Vec<String>,
    /// Running container tasks to stop (the run is being canceled).
    pub kills: Vec<String>,
    /// When to advance again if nothing else happens (retry backoff).
    pub wake_at: Option<i64>,
    /// PVCs DeletePVC removed (their folders go once the rows are written).
    pub deleted_volumes: Vec<String>,
    /// PVCs CreatePVC made: their names and the stub's inputs (size, access modes, storage
    /// class, …), for a driver whose volumes are the cluster's.
    pub created_volumes: Vec<(String, serde_json::Map<String, serde_json::Value>)>,
}

const ROOT: &str = "root";

/// Error code for failures of the run's own making (gRPC UNKNOWN, as KFP reports them).
const RUN_ERROR: i32 = 2;

fn error(message: impl std::fmt::Display) -> Option<ErrorInfo> {
    Some(ErrorInfo { code: RUN_ERROR, message: message.to_string() })
}

/// Advances a run as far as it can go without running anything.
pub fn advance(view: &mut RunView, now: i64) -> Step {
    let mut planner = Planner {
        view,
        now,
        created: BTreeSet::new(),
        changed: BTreeSet::new(),
        step: Step::default(),
        new_artifacts: Vec::new(),
    };
    planner.run();
    planner.finish()
}

pub(crate) struct Planner<'a> {
    view: &'a mut RunView,
    now: i64,
    created: BTreeSet<String>,
    changed: BTreeSet<String>,
    step: Step,
    new_artifacts: Vec<Artifact>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A random positive id that JavaScript can hold exactly (artifact ids are int64 in KFP).
pub fn new_artifact_id() -> i64 {
    (uuid::Uuid::new_v4().as_u128() as i64 & ((1i64 << 53) - 1)).max(1)
}

/// A task row the planner is about to create.
struct NewTask<'a> {
    parent_id: &'a str,
    name: &'a str,
    display_name: &'a str,
    kind: TaskKind,
    /// The item's index, for an iteration of a loop.
    iteration_index: Option<i64>,
    state: RuntimeState,
    inputs: TaskIo,
    error: Option<ErrorInfo>,
}

impl<'a> NewTask<'a> {
    /// A task that starts RUNNING: what most kinds are when created (a DAG, a loop, an
    /// importer); the others override `state` and `error`.
    fn running(parent_id: &'a str, name: &'a str, display_name: &'a str, kind: TaskKind, inputs: TaskIo) -> Self {
        Self {
            parent_id,
            name,
            display_name,
            kind,
            iteration_index: None,
            state: RuntimeState::Running,
            inputs,
            error: None,
        }
    }
}

impl Planner<'_> {
    fn finish(mut self) -> Step {
        // A DAG may be walked more than once in one advance; act once per task.
        let mut seen = BTreeSet::new();
        self.step.launches.retain(|id| seen.insert(id.clone()));
        let mut seen = BTreeSet::new();
        self.step.kills.retain(|id| seen.insert(id.clone()));
        // Only the rows this pass touched (a pass over a big run touches few of its rows), in
        // the order of the rows: parents before their children.
        let tasks = &self.view.tasks;
        let rows = |ids: Vec<&String>| -> Vec<Task> {
            let mut at: Vec<usize> = ids.into_iter().filter_map(|id| tasks.position(id)).collect();
            at.sort_unstable();
            at.into_iter().map(|i| tasks.as_slice()[i].clone()).collect()
        };
        self.step.progress.new_tasks = rows(self.created.iter().collect());
        self.step.progress.changed_tasks = rows(self.changed.iter().filter(|id| !self.created.contains(*id)).collect());
        self.step.progress.new_artifacts = self.new_artifacts;
        self.step
    }

    fn task(&self, id: &str) -> &Task {
        self.view.tasks.get(id).expect("task exists")
    }

    fn child(&self, parent_id: &str, name: &str) -> Option<&Task> {
        self.view.tasks.child(parent_id, name)
    }

    fn update(&mut self, id: &str, change: impl FnOnce(&mut Task)) {
        if let Some(task) = self.view.tasks.get_mut(id) {
            change(task);
            self.changed.insert(id.to_string());
        }
    }

    fn set_state(&mut self, id: &str, state: RuntimeState, err: Option<ErrorInfo>) {
        let now = self.now;
        self.update(id, |t| t.set_state(state, err, now));
    }

    fn transition_run(&mut self, to: RuntimeState, err: Option<ErrorInfo>) {
        // Several transitions in one advance (PENDING → RUNNING → FAILED) are written as one,
        // from the state the store holds.
        let from = match &self.step.progress.run {
            Some(earlier) => earlier.from.clone(),
            None => vec![self.view.run.state],
        };
        self.step.progress.run = Some(RunTransition { from, to, error: err.clone(), now: self.now });
        self.view.run.state = to;
        self.view.run.error = err;
    }

    fn create(&mut self, new: NewTask) -> String {
        let NewTask { parent_id, name, display_name, kind, iteration_index, state, inputs, error: err } = new;
        let id = new_id();
        let now = self.now;
        let mut history = vec![StateChange { update_time: now, state, error: err.clone() }];
        if state != RuntimeState::Pending && kind == TaskKind::Container {
            history.insert(0, StateChange { update_time: now, state: RuntimeState::Pending, error: None });
        }
        let task = Task {
            id: id.clone(),
            run_id: self.view.run.id.clone(),
            parent_id: parent_id.to_string(),
            name: name.to_string(),
            display_name: display_name.to_string(),
            kind,
            iteration_index,
            state,
            attempts: 0,
            inputs,
            outputs: TaskIo::default(),
            fingerprint: String::new(),
            pipeline_name: self.view.spec.pipeline_info.name.clone(),
            cached: false,
            image: String::new(),
            error: err,
            created_at: now,
            started_at: if state == RuntimeState::Running { now } else { 0 },
            finished_at: if state.is_terminal() { now } else { 0 },
            retry_at: 0,
            pid: 0,
            state_history: history,
        };
        self.view.tasks.push(task);
        self.created.insert(id.clone());
        id
    }

    fn run(&mut self) {
        match self.view.run.state {
            s if s.is_terminal() => {}
            RuntimeState::Canceling => self.cancel(),
            RuntimeState::Paused => {}
            _ => {
                if self.view.run.state == RuntimeState::Pending {
                    self.prepare_retry();
                    self.transition_run(RuntimeState::Running, None);
                }
                self.drive();
            }
        }
    }

    /// A run that comes back to PENDING with tasks (a retry) keeps what succeeded: steps that
    /// did not succeed are forgotten (they run again), DAGs around them are reopened.
    fn prepare_retry(&mut self) {
        self.view.tasks.forget_settled();
        let ids: Vec<(String, TaskKind, RuntimeState)> =
            self.view.tasks.iter().map(|t| (t.id.clone(), t.kind, t.state)).collect();
        for (id, kind, state) in ids {
            if state == RuntimeState::Succeeded {
                continue;
            }
            match kind {
                TaskKind::Container | TaskKind::Importer => {
                    self.view.tasks.retain(|t| t.id != id);
                    self.changed.remove(&id);
                    self.step.progress.deleted_tasks.push(id);
                }
                _ => {
                    // Skipped branches are decided again too; a skipped DAG is simply recreated.
                    if state == RuntimeState::Skipped {
                        self.view.tasks.retain(|t| t.id != id && t.parent_id != id);
                        self.step.progress.deleted_tasks.push(id);
                        continue;
                    }
                    let now = self.now;
                    self.update(&id, |t| {
                        t.set_state(RuntimeState::Running, None, now);
                        t.finished_at = 0;
                        t.outputs = TaskIo::default();
                    });
                }
            }
        }
    }

    fn drive(&mut self) {
        let root_id = match self.child("", ROOT) {
            Some(root) => root.id.clone(),
            None => {
                let params = self.view.run.parameters.clone();
                match complete_parameters(&self.view.spec.root.input_definitions, &params, "the pipeline") {
                    Ok(parameters) => {
                        let display = self.view.run.display_name.clone();
                        self.create(NewTask::running("", ROOT, &display, TaskKind::Dag, TaskIo::parameters(parameters)))
                    }
                    Err(message) => {
                        self.transition_run(RuntimeState::Failed, error(message));
                        return;
                    }
                }
            }
        };
        let spec = Arc::clone(&self.view.spec);
        if !self.task(&root_id).state.is_terminal() {
            self.walk_dag(&root_id, &spec.root);
        }
        let root_task = self.task(&root_id).clone();
        if root_task.state.is_terminal() {
            let state = match root_task.state {
                RuntimeState::Succeeded | RuntimeState::Skipped => RuntimeState::Succeeded,
                other => other,
            };
            self.transition_run(state, root_task.error.clone());
        }
    }

    /// Terminate: stop running steps, close everything else; the run is CANCELED once no step
    /// is still running.
    fn cancel(&mut self) {
        let open: Vec<Task> = self.view.tasks.iter().filter(|t| !t.state.is_terminal()).cloned().collect();
        let mut still_running = false;
        for task in open {
            if task.kind == TaskKind::Container && task.state == RuntimeState::Running {
                self.step.kills.push(task.id.clone());
                still_running = true;
            } else {
                self.set_state(&task.id, RuntimeState::Canceled, Some(ErrorInfo::run_terminated()));
            }
        }
        if !still_running {
            self.transition_run(RuntimeState::Canceled, Some(ErrorInfo::run_terminated()));
        }
    }

    /// The spec, shared: what is borrowed from it outlives changes to the planner.
    fn spec(&self) -> Arc<PipelineSpec> {
        Arc::clone(&self.view.spec)
    }

    fn walk_dag(&mut self, dag_task_id: &str, component: &ComponentSpec) {
        let Some(dag) = component.dag.as_ref() else {
            self.set_state(dag_task_id, RuntimeState::Failed, error("component has no dag"));
            return;
        };
        // Tasks are visited in name order; a task created late in a pass can unblock one
        // visited earlier, so passes repeat until one creates nothing.
        let mut visited: BTreeSet<String> = BTreeSet::new();
        loop {
            let created_before = self.created.len();
            for (name, spec) in &dag.tasks {
                // Only what the walk needs: copying whole tasks here made each pass costly.
                let existing = self.child(dag_task_id, name).map(|t| (t.id.clone(), t.kind, t.state, t.retry_at));
                match existing {
                    Some((_, _, state, _)) if state.is_terminal() => {}
                    Some((id, kind, state, retry_at)) => {
                        if !visited.contains(&id) {
                            visited.insert(id.clone());
                            self.walk_child(&id, kind, state, retry_at, spec);
                        }
                    }
                    None => self.try_create(dag_task_id, name, spec),
                }
            }
            if self.created.len() == created_before {
                break;
            }
        }
        self.complete_dag(dag_task_id, dag);
    }

    fn walk_child(&mut self, id: &str, kind: TaskKind, state: RuntimeState, retry_at: i64, spec: &TaskSpec) {
        match kind {
            TaskKind::Dag | TaskKind::Iteration => {
                let pipeline = self.spec();
                if let Some(component) = pipeline.components.get(&spec.component_ref.name) {
                    self.walk_dag(id, component);
                }
            }
            TaskKind::Loop => self.walk_loop(id, spec),
            TaskKind::Container => {
                if state == RuntimeState::Pending {
                    if retry_at <= self.now {
                        self.step.launches.push(id.to_string());
                    } else {
                        let at = self.step.wake_at.map_or(retry_at, |w| w.min(retry_at));
                        self.step.wake_at = Some(at);
                    }
                }
            }
            TaskKind::Importer => {}
        }
    }

    fn try_create(&mut self, parent_id: &str, name: &str, spec: &TaskSpec) {
        let display = if spec.task_info.name.is_empty() { name.to_string() } else { spec.task_info.name.clone() };
        let at = Place { parent_id: parent_id.to_string(), name: name.to_string(), display: display.clone() };
        let mut failed_upstream = None;
        let mut upstream = spec.upstream();
        upstream.extend(self.platform_producers(spec));
        for upstream in upstream {
            match self.child(parent_id, &upstream) {
                Some(t) if t.state.is_terminal() => {
                    // A task skipped because its own upstream failed passes the failure on.
                    let cascaded = t.state == RuntimeState::Skipped && t.error.is_some();
                    if matches!(t.state, RuntimeState::Failed | RuntimeState::Canceled) || cascaded {
                        failed_upstream = Some(upstream.clone());
                    }
                }
                _ => return,
            }
        }
        // What the task would have been, so a skipped step is listed as the step it is.
        let pipeline = self.spec();
        let component = pipeline.components.get(&spec.component_ref.name);
        let kind = component.map(|component| {
            if spec.parameter_iterator.is_some() || spec.artifact_iterator.is_some() {
                TaskKind::Loop
            } else if component.dag.is_some() {
                TaskKind::Dag
            } else {
                match component.executor_label.as_ref().and_then(|l| self.view.spec.deployment_spec.executors.get(l)) {
                    Some(executor) if executor.importer.is_some() => TaskKind::Importer,
                    _ => TaskKind::Container,
                }
            }
        });
        if let Some(upstream) = failed_upstream {
            if !spec.runs_after_failures() {
                let message = format!("not run: upstream task {upstream:?} did not succeed");
                self.decided(
                    &at,
                    kind.unwrap_or(TaskKind::Dag),
                    RuntimeState::Skipped,
                    TaskIo::default(),
                    error(message),
                );
                return;
            }
        }
        let (Some(component), Some(kind)) = (component, kind) else {
            let message = format!("unknown component {:?}", spec.component_ref.name);
            self.decided(&at, TaskKind::Dag, RuntimeState::Failed, TaskIo::default(), error(message));
            return;
        };
        let inputs = match crate::inputs::resolve(self, parent_id, name, spec) {
            Ok(inputs) => inputs,
            Err(crate::inputs::Unresolved::Skipped(reason)) => {
                self.decided(&at, kind, RuntimeState::Skipped, TaskIo::default(), None);
                tracing::debug!(task = name, reason, "skipped");
                return;
            }
            Err(crate::inputs::Unresolved::Failed(message)) => {
                self.decided(&at, kind, RuntimeState::Failed, TaskIo::default(), error(message));
                return;
            }
        };
        if !spec.trigger_policy.condition.is_empty() {
            match weir_spec::cel::evaluate_condition(&spec.trigger_policy.condition, &inputs.parameters) {
                Ok(true) => {}
                Ok(false) => {
                    self.decided(&at, kind, RuntimeState::Skipped, inputs, None);
                    return;
                }
                Err(e) => {
                    self.decided(&at, kind, RuntimeState::Failed, inputs, error(e.0));
                    return;
                }
            }
        }
        if kind == TaskKind::Container {
            if let Some(stub) = self.kubernetes_stub(component) {
                self.run_stub(&at, stub, inputs);
                return;
            }
        }
        match kind {
            TaskKind::Loop => {
                let items = match crate::inputs::loop_items(spec, &inputs) {
                    Ok(items) => items,
                    Err(message) => {
                        self.decided(&at, kind, RuntimeState::Failed, inputs, error(message));
                        return;
                    }
                };
                let mut inputs = inputs;
                inputs.items = Some(items);
                let id = self.create(NewTask::running(parent_id, name, &display, kind, inputs));
                self.walk_loop(&id, spec);
            }
            TaskKind::Dag => {
                let inputs = match self.with_defaults(component, inputs, &display) {
                    Ok(inputs) => inputs,
                    Err(message) => {
                        self.decided(&at, kind, RuntimeState::Failed, TaskIo::default(), error(message));
                        return;
                    }
                };
                let id = self.create(NewTask::running(parent_id, name, &display, kind, inputs));
                self.walk_dag(&id, component);
            }
            TaskKind::Importer => {
                let id = self.create(NewTask::running(parent_id, name, &display, kind, inputs));
                self.import(&id, component);
            }
            TaskKind::Container | TaskKind::Iteration => {
                let id = self.create(NewTask {
                    state: RuntimeState::Pending,
                    ..NewTask::running(parent_id, name, &display, TaskKind::Container, inputs)
                });
                let image = component
                    .executor_label
                    .as_ref()
                    .and_then(|l| self.view.spec.deployment_spec.executors.get(l))
                    .and_then(|e| e.container.as_ref())
                    .map(|c| c.image.clone())
                    .unwrap_or_default();
                self.update(&id, |t| t.image = image);
                self.step.launches.push(id);
            }
        }
    }

    /// Records a task that ends where it is decided: skipped, or failed before it could start.
    fn decided(&mut self, at: &Place, kind: TaskKind, state: RuntimeState, inputs: TaskIo, err: Option<ErrorInfo>) {
        self.create(NewTask {
            state,
            error: err,
            ..NewTask::running(&at.parent_id, &at.name, &at.display, kind, inputs)
        });
    }

    fn with_defaults(&self, component: &ComponentSpec, mut inputs: TaskIo, what: &str) -> Result<TaskIo, SpecError> {
        inputs.parameters =
            complete_task_parameters(&component.input_definitions, &inputs.parameters, &format!("task {what:?}"))?;
        Ok(inputs)
    }

    fn walk_loop(&mut self, loop_id: &str, spec: &TaskSpec) {
        let pipeline = self.spec();
        let Some(component) = pipeline.components.get(&spec.component_ref.name) else { return };
        let limit = spec.iterator_policy.parallelism_limit.max(0) as usize;
        // Only the iterations still open are looked at, and only their ids copied: a loop of
        // 10,000 items is walked once per finished step.
        let open_ids: Vec<String> = self
            .view
            .tasks
            .unsettled_children(loop_id)
            .into_iter()
            .filter(|t| !t.state.is_terminal())
            .map(|t| t.id.clone())
            .collect();
        for id in &open_ids {
            self.walk_dag(id, component);
        }
        let mut open = self.view.tasks.unsettled_children(loop_id).iter().filter(|t| !t.state.is_terminal()).count();
        let mut next = self.view.tasks.count_children(loop_id);
        let total = self.task(loop_id).inputs.items.as_ref().map_or(0, Vec::len);
        while next < total && (limit == 0 || open < limit) {
            let loop_task = self.task(loop_id);
            let item = loop_task.inputs.items.as_ref().map(|items| items[next].clone()).unwrap_or_default();
            let mut inputs = TaskIo {
                parameters: loop_task.inputs.parameters.clone(),
                artifacts: loop_task.inputs.artifacts.clone(),
                items: None,
            };
            let display = format!("{}-{next}", loop_task.display_name);
            if let Some(iterator) = &spec.parameter_iterator {
                inputs.parameters.insert(iterator.item_input.clone(), integral_numbers(&item));
            }
            if let Some(iterator) = &spec.artifact_iterator {
                // An artifact loop iterates over artifact ids.
                let id = item.as_i64().into_iter().collect();
                inputs.artifacts.insert(iterator.item_input.clone(), id);
            }
            let id = self.create(NewTask {
                iteration_index: Some(next as i64),
                ..NewTask::running(loop_id, "iteration", &display, TaskKind::Iteration, inputs)
            });
            self.walk_dag(&id, component);
            if !self.task(&id).state.is_terminal() {
                open += 1;
            }
            next += 1;
        }
        if self.view.tasks.count_children(loop_id) != total || !self.view.tasks.unsettled_children(loop_id).is_empty() {
            return;
        }
        let tasks = &self.view.tasks;
        let iterations = tasks.children_sorted(loop_id);
        let outputs = collect_loop_outputs(component, &iterations);
        let failed = iterations.iter().find(|t| matches!(t.state, RuntimeState::Failed | RuntimeState::Canceled));
        let (state, err) = match failed {
            Some(t) => {
                (RuntimeState::Failed, error(format!("iteration {} failed", t.iteration_index.unwrap_or_default())))
            }
            None => (RuntimeState::Succeeded, None),
        };
        self.update(loop_id, |t| t.outputs = outputs);
        self.set_state(loop_id, state, err);
    }

    fn complete_dag(&mut self, dag_task_id: &str, dag: &DagSpec) {
        // Checked by lookup first: most passes end here.
        let all_done =
            dag.tasks.keys().all(|name| self.child(dag_task_id, name).is_some_and(|c| c.state.is_terminal()));
        if !all_done {
            return;
        }
        let children = self.view.tasks.children_sorted(dag_task_id);
        let by_name: HashMap<&str, &Task> = children.iter().map(|c| (c.name.as_str(), *c)).collect();
        let failed = children.iter().find(|c| matches!(c.state, RuntimeState::Failed | RuntimeState::Canceled));
        let outputs = dag_outputs(dag, &by_name);
        let (state, err) = match failed {
            None => (RuntimeState::Succeeded, None),
            Some(first) => {
                let detail = first.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
                (RuntimeState::Failed, error(format!("task {:?} failed: {detail}", first.display_name)))
            }
        };
        self.update(dag_task_id, |t| t.outputs = outputs);
        self.set_state(dag_task_id, state, err);
    }

    /// An importer makes an artifact row for an existing URI; nothing runs.
    fn import(&mut self, task_id: &str, component: &ComponentSpec) {
        let task = self.task(task_id).clone();
        let importer = component
            .executor_label
            .as_ref()
            .and_then(|l| self.view.spec.deployment_spec.executors.get(l))
            .and_then(|e| e.importer.clone())
            .unwrap_or_default();
        let uri = match (&importer.artifact_uri.constant, &importer.artifact_uri.runtime_parameter) {
            (Some(Value::String(uri)), _) => Some(uri.clone()),
            (_, Some(param)) => task.inputs.parameters.get(param).and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        let Some(uri) = uri.filter(|u| !u.is_empty()) else {
            self.set_state(task_id, RuntimeState::Failed, error("the importer has no artifact URI"));
            return;
        };
        let output_name =
            component.output_definitions.artifacts.keys().next().cloned().unwrap_or_else(|| "artifact".into());
        let artifact = Artifact {
            id: new_artifact_id(),
            run_id: self.view.run.id.clone(),
            task_id: task_id.to_string(),
            name: output_name.clone(),
            uri,
            schema_title: importer.type_schema.schema_title.clone(),
            schema_version: importer.type_schema.schema_version.clone(),
            metadata: importer.metadata.clone().unwrap_or(json!({})),
            created_at: self.now,
            object_count: 0,
        };
        self.view.artifacts.insert(artifact.id, artifact.clone());
        let outputs = TaskIo { artifacts: [(output_name, vec![artifact.id])].into(), ..TaskIo::default() };
        self.new_artifacts.push(artifact);
        self.update(task_id, |t| t.outputs = outputs);
        self.set_state(task_id, RuntimeState::Succeeded, None);
    }

    pub(crate) fn sibling(&self, parent_id: &str, name: &str) -> Option<&Task> {
        self.child(parent_id, name)
    }

    pub(crate) fn parent(&self, parent_id: &str) -> &Task {
        self.task(parent_id)
    }

    pub(crate) fn run_row(&self) -> &Run {
        &self.view.run
    }

    pub(crate) fn job_resource_name(&self) -> String {
        weir_spec::names::job_resource_name(&self.view.spec.pipeline_info.name, &self.view.run.id)
    }
}

/// Where a task being created goes: its parent, its key and its display name.
struct Place {
    parent_id: String,
    name: String,
    display: String,
}

fn dag_outputs(dag: &DagSpec, children: &HashMap<&str, &Task>) -> TaskIo {
    let mut parameters = Map::new();
    let produced = |producer: &str, key: &str| -> Option<Value> {
        let task = children.get(producer)?;
        if task.state != RuntimeState::Succeeded {
            return None;
        }
        task.outputs.parameters.get(key).cloned()
    };
    for (name, output) in &dag.outputs.parameters {
        let value = if let Some(selector) = &output.value_from_parameter {
            produced(&selector.producer_subtask, &selector.output_parameter_key)
        } else if let Some(oneof) = &output.value_from_oneof {
            oneof.parameter_selectors.iter().find_map(|s| produced(&s.producer_subtask, &s.output_parameter_key))
        } else {
            None
        };
        if let Some(value) = value {
            parameters.insert(name.clone(), value);
        }
    }
    let mut artifacts = BTreeMap::new();
    for (name, output) in &dag.outputs.artifacts {
        let ids = output.artifact_selectors.iter().find_map(|s| {
            let task = children.get(s.producer_subtask.as_str())?;
            if task.state != RuntimeState::Succeeded {
                return None;
            }
            task.outputs.artifacts.get(&s.output_artifact_key).cloned()
        });
        if let Some(ids) = ids {
            artifacts.insert(name.clone(), ids);
        }
    }
    TaskIo { parameters, artifacts, items: None }
}

/// A loop's outputs are its iterations' outputs collected in iteration order
/// (`dsl.Collected`): parameter values into a list, artifact lists concatenated.
fn collect_loop_outputs(component: &ComponentSpec, iterations: &[&Task]) -> TaskIo {
    let mut parameters = Map::new();
    let mut artifacts = BTreeMap::new();
    if let Some(dag) = &component.dag {
        for name in dag.outputs.parameters.keys() {
            let values: Vec<Value> =
                iterations.iter().filter_map(|t| t.outputs.parameters.get(name).cloned()).collect();
            parameters.insert(name.clone(), Value::Array(values));
        }
        for name in dag.outputs.artifacts.keys() {
            let ids: Vec<i64> =
                iterations.iter().filter_map(|t| t.outputs.artifacts.get(name)).flatten().copied().collect();
            artifacts.insert(name.clone(), ids);
        }
    }
    TaskIo { parameters, artifacts, items: None }
}
