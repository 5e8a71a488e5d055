//! A run's page: header (state, the failing step first, parameters, times), the graph at the
//! level being looked at, a node's panel, actions, and live updates over server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use weir_spec::ir::PipelineSpec;
use weir_store::{Run, RuntimeState, Task, TaskKind};

use super::node::{node_panel, NodePanel};
use super::run_graph::{level_graph, state_counts, Tasks};
use super::{run_pipeline_name, Names};
use crate::graph::NodeKind;
use crate::view::{duration, html, no_store, state_class, time, value_text, Chrome, UiError, UiResult};
use crate::Ui;

/// How often a live page looks for changes.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Focus {
    /// The DAG, loop or iteration task whose level is shown (the root when empty).
    pub dag: String,
    /// The task whose panel is open.
    pub node: String,
}

pub(crate) struct Crumb {
    pub label: String,
    pub href: String,
}

pub(crate) struct FailedStep {
    pub name: String,
    pub error: String,
    pub href: String,
}

pub(crate) struct Iteration {
    pub label: String,
    pub href: String,
    pub state: &'static str,
    pub state_class: &'static str,
}

/// What the live stream replaces: the state line and the graph (or iterations).
pub(crate) struct Live {
    pub state: &'static str,
    pub state_class: &'static str,
    pub duration: String,
    pub finished: String,
    pub graph_svg: String,
    pub iterations: Vec<Iteration>,
    pub steps: String,
    pub terminal: bool,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    title: String,
    run: Run,
    live: Live,
    pipeline: String,
    pipeline_href: String,
    experiment: String,
    created: String,
    parameters: Vec<(String, String)>,
    failed: Vec<FailedStep>,
    crumbs: Vec<Crumb>,
    panel: Option<NodePanel>,
    live_href: String,
    can_terminate: bool,
    can_retry: bool,
    archived: bool,
}

#[derive(Template)]
#[template(path = "run_live.html")]
struct LiveFragment<'a> {
    live: &'a Live,
}

fn level_href(chrome: &Chrome, run_id: &str, dag: &str, node: &str) -> String {
    let mut href = format!("{}/runs/{run_id}", chrome.base);
    let mut sep = '?';
    if !dag.is_empty() {
        href.push_str(&format!("{sep}dag={dag}"));
        sep = '&';
    }
    if !node.is_empty() {
        href.push_str(&format!("{sep}node={node}"));
    }
    href
}

/// A run, its tasks and its spec, read through the run service.
async fn load(ui: &Ui, id: &str) -> UiResult<(Run, Vec<Task>, PipelineSpec)> {
    let (run, tasks) = ui.services.runs.get(id).await?;
    let spec = PipelineSpec::parse(&run.pipeline_spec)
        .map_err(|e| UiError::internal(format!("the run's spec cannot be read: {e}")))?;
    Ok((run, tasks, spec))
}

/// The level's graph (or a loop's iterations) and the run's state line.
pub(crate) fn live_view(
    chrome: &Chrome,
    run: &Run,
    spec: &PipelineSpec,
    tasks: &Tasks<'_>,
    focus: &Focus,
    now: i64,
) -> UiResult<Live> {
    let level = if focus.dag.is_empty() { tasks.root() } else { tasks.get(&focus.dag) };
    let mut graph_svg = String::new();
    let mut iterations = Vec::new();
    match level {
        Some(level) if level.kind == TaskKind::Loop => {
            for task in tasks.children(&level.id) {
                iterations.push(Iteration {
                    label: format!("iteration {}", task.iteration_index.unwrap_or_default()),
                    href: level_href(chrome, &run.id, &task.id, ""),
                    state: task.state.as_str(),
                    state_class: state_class(task.state),
                });
            }
        }
        Some(level) => {
            let graph = level_graph(spec, tasks, level, &focus.node, |task, kind| match kind {
                NodeKind::Dag | NodeKind::Loop => level_href(chrome, &run.id, &task.id, ""),
                NodeKind::Container | NodeKind::Importer => level_href(chrome, &run.id, &focus.dag, &task.id),
            });
            graph_svg = graph.to_svg().map_err(UiError::internal)?;
        }
        None if focus.dag.is_empty() => {
            // Not started: the pipeline's graph, every node still to run.
            let graph = crate::graph::Graph::of_component(spec, &spec.root);
            graph_svg = graph.to_svg().map_err(UiError::internal)?;
        }
        None => return Err(UiError::bad_request(format!("run {} has no task {:?}", run.id, focus.dag))),
    }
    Ok(Live {
        state: run.state.as_str(),
        state_class: state_class(run.state),
        duration: duration(run.created_at, run.finished_at, now),
        finished: time(run.finished_at),
        graph_svg,
        iterations,
        steps: step_counts(tasks.all),
        terminal: run.state.is_terminal(),
    })
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path(id): Path<String>,
    Query(focus): Query<Focus>,
) -> UiResult {
    let (run, all_tasks, spec) = load(&ui, &id).await?;
    let tasks = Tasks::new(&all_tasks);
    let now = ui.services.context.clock.now_ms();
    let live = live_view(&chrome, &run, &spec, &tasks, &focus, now)?;
    let mut names = Names::default();
    let pipeline = run_pipeline_name(&mut names, &ui.services, &run).await;
    let pipeline_href = super::pipeline_href(&chrome.base, &run.pipeline_id, &run.pipeline_version_id);
    let experiment = names.experiment(&ui.services, &run.experiment_id).await;
    let mut crumbs = Vec::new();
    if let Some(level) = if focus.dag.is_empty() { None } else { tasks.get(&focus.dag) } {
        for task in tasks.path(level) {
            let label = if task.parent_id.is_empty() {
                "pipeline".to_string()
            } else if task.kind == TaskKind::Iteration {
                format!("iteration {}", task.iteration_index.unwrap_or_default())
            } else {
                task.display_name.clone()
            };
            let dag = if task.parent_id.is_empty() { "" } else { task.id.as_str() };
            crumbs.push(Crumb { label, href: level_href(&chrome, &run.id, dag, "") });
        }
    }
    let failed = tasks
        .failed_steps()
        .into_iter()
        .map(|t| FailedStep {
            name: t.display_name.clone(),
            error: t.error.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
            href: level_href(&chrome, &run.id, &t.parent_id_for_link(&tasks), &t.id),
        })
        .collect();
    let panel = match focus.node.as_str() {
        "" => None,
        node => {
            let task = tasks.get(node).ok_or_else(|| UiError::bad_request(format!("run {id} has no task {node:?}")))?;
            Some(node_panel(&ui, &chrome, &run, &spec, &tasks, task).await?)
        }
    };
    let mut parameters: Vec<(String, String)> =
        run.parameters.iter().map(|(k, v)| (k.clone(), value_text(v))).collect();
    parameters.sort();
    let live_href = if live.terminal {
        String::new()
    } else {
        let mut href = format!("{}/runs/{}/events", chrome.base, run.id);
        if !focus.dag.is_empty() {
            href.push_str(&format!("?dag={}", focus.dag));
        }
        href
    };
    html(RunPage {
        title: run.display_name.clone(),
        can_terminate: matches!(run.state, RuntimeState::Pending | RuntimeState::Running | RuntimeState::Paused),
        can_retry: matches!(run.state, RuntimeState::Failed | RuntimeState::Canceled),
        archived: run.storage_state == weir_store::StorageState::Archived,
        created: time(run.created_at),
        chrome,
        pipeline,
        pipeline_href,
        experiment,
        parameters,
        failed,
        crumbs,
        panel,
        live_href,
        live,
        run,
    })
}

/// Where a failed step's link goes: its own level (the iteration or group it sits in).
trait LinkLevel {
    fn parent_id_for_link(&self, tasks: &Tasks<'_>) -> String;
}

impl LinkLevel for Task {
    fn parent_id_for_link(&self, tasks: &Tasks<'_>) -> String {
        match tasks.get(&self.parent_id) {
            Some(parent) if !parent.parent_id.is_empty() => parent.id.clone(),
            _ => String::new(),
        }
    }
}

/// `GET /runs/{id}/events`: the live fragment each time it changes, until the run ends.
pub(crate) async fn events(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path(id): Path<String>,
    Query(focus): Query<Focus>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    ui.services.runs.get(&id).await?;
    let stream = async_stream_unfold(ui, chrome, id, focus);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn async_stream_unfold(
    ui: Ui,
    chrome: Chrome,
    id: String,
    focus: Focus,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct At {
        ui: Ui,
        chrome: Chrome,
        id: String,
        focus: Focus,
        last: String,
        done: bool,
    }
    let start = At { ui, chrome, id, focus, last: String::new(), done: false };
    futures::stream::unfold(start, |mut at| async move {
        if at.done {
            return None;
        }
        loop {
            let rendered = async {
                let (run, all_tasks, spec) = load(&at.ui, &at.id).await?;
                let now = at.ui.services.context.clock.now_ms();
                let live = live_view(&at.chrome, &run, &spec, &Tasks::new(&all_tasks), &at.focus, now)?;
                let text = LiveFragment { live: &live }.render()?;
                Ok::<_, UiError>((text, live.terminal))
            }
            .await;
            match rendered {
                Ok((text, terminal)) if terminal => {
                    at.done = true;
                    let data = serde_json::json!({ "live": text }).to_string();
                    // The last state, then the end: the page stops listening.
                    let events =
                        vec![Event::default().event("replace").data(data), Event::default().event("done").data("")];
                    return Some((events, at));
                }
                Ok((text, _)) if text != at.last => {
                    at.last = text.clone();
                    let data = serde_json::json!({ "live": text }).to_string();
                    return Some((vec![Event::default().event("replace").data(data)], at));
                }
                Ok(_) => {}
                Err(e) => {
                    at.done = true;
                    let data = serde_json::Value::String(e.message).to_string();
                    return Some((vec![Event::default().event("done").data(data)], at));
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>)))
}

/// `GET /runs/{id}/nodes/{task}/log`: the step's log as a file.
pub(crate) async fn log_download(State(ui): State<Ui>, Path((id, task)): Path<(String, String)>) -> UiResult {
    let text = ui.services.execution.logs(&id, &task).await?;
    let disposition = format!("attachment; filename=\"{}-{}.log\"", safe_file_name(&id), safe_file_name(&task));
    Ok(no_store(
        (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            text,
        )
            .into_response(),
    ))
}

fn safe_file_name(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// `GET /runs/{id}/nodes/{task}/log/events`: the log's new text as it is written, until the
/// step ends.
pub(crate) async fn log_events(
    State(ui): State<Ui>,
    Path((id, task)): Path<(String, String)>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let first = ui.services.execution.logs(&id, &task).await?;
    struct At {
        ui: Ui,
        id: String,
        task: String,
        sent: usize,
        done: bool,
    }
    let start = At { ui, id, task, sent: first.len(), done: false };
    let stream = futures::stream::unfold(start, |mut at| async move {
        if at.done {
            return None;
        }
        loop {
            tokio::time::sleep(POLL).await;
            let finished = match at.ui.services.runs.get(&at.id).await {
                Ok((_, tasks)) => tasks.iter().find(|t| t.id == at.task).is_none_or(|t| t.state.is_terminal()),
                Err(_) => true,
            };
            let text = at.ui.services.execution.logs(&at.id, &at.task).await.unwrap_or_default();
            let mut events = Vec::new();
            if text.len() > at.sent && text.is_char_boundary(at.sent) {
                let data = serde_json::Value::String(text[at.sent..].to_string()).to_string();
                events.push(Event::default().event("append").data(data));
                at.sent = text.len();
            }
            if finished {
                at.done = true;
                events.push(Event::default().event("done").data(""));
            }
            if !events.is_empty() {
                return Some((events, at));
            }
        }
    })
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `POST /runs/{id}/actions/{action}`: terminate, retry, archive, unarchive, delete.
pub(crate) async fn action(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path((id, action)): Path<(String, String)>,
) -> UiResult<Response> {
    let runs = &ui.services.runs;
    match action.as_str() {
        "terminate" => runs.terminate(&id).await?,
        "retry" => runs.retry(&id).await?,
        "archive" => runs.archive(&id).await?,
        "unarchive" => runs.unarchive(&id).await?,
        "delete" => {
            runs.delete(&id).await?;
            return Ok(chrome.see_other("/runs"));
        }
        other => return Err(UiError::bad_request(format!("unknown run action {other:?}"))),
    }
    Ok(chrome.see_other(&format!("/runs/{id}")))
}

/// Counts of a run's steps by state, for the header.
fn step_counts(tasks: &[Task]) -> String {
    let steps: Vec<&Task> = tasks.iter().filter(|t| t.kind == TaskKind::Container).collect();
    if steps.is_empty() {
        return "no steps yet".into();
    }
    format!("{} steps: {}", steps.len(), state_counts(&steps))
}
