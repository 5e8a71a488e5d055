//! A node's panel: what the task took and made, its attempts, cache hit and source, the
//! command and image, its error, and its log with a live tail.

use std::collections::HashMap;

use askama::Template;
use weir_spec::ir::PipelineSpec;
use weir_store::{Artifact, Run, Task, TaskIo, TaskKind};

use super::run_graph::Tasks;
use crate::view::{duration, state_class, time, value_text, Chrome, UiResult};
use crate::Ui;

pub(crate) struct Io {
    pub name: String,
    pub value: String,
    pub artifacts: Vec<ArtifactLink>,
}

pub(crate) struct ArtifactLink {
    pub href: String,
    pub label: String,
    pub uri: String,
}

#[derive(Template)]
#[template(path = "node.html")]
pub(crate) struct NodePanel {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub kind: &'static str,
    pub attempts: i64,
    pub cached: bool,
    pub cache_source: Option<(String, String)>,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub image: String,
    pub command: String,
    pub error: String,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    pub log: String,
    pub log_href: String,
    pub log_live: String,
    pub history: Vec<(String, &'static str)>,
    pub has_log: bool,
}

fn io_rows(chrome: &Chrome, io: &TaskIo, artifacts: &HashMap<i64, Artifact>) -> Vec<Io> {
    let mut rows: Vec<Io> = io
        .parameters
        .iter()
        .map(|(name, value)| Io { name: name.clone(), value: value_text(value), artifacts: Vec::new() })
        .collect();
    for (name, ids) in &io.artifacts {
        let links = ids
            .iter()
            .map(|id| match artifacts.get(id) {
                Some(a) => ArtifactLink {
                    href: format!("{}/artifacts/{}", chrome.base, a.id),
                    label: format!("{} ({})", a.name, a.schema_title),
                    uri: a.uri.clone(),
                },
                None => {
                    ArtifactLink { href: String::new(), label: format!("artifact {id} (gone)"), uri: String::new() }
                }
            })
            .collect();
        rows.push(Io { name: name.clone(), value: String::new(), artifacts: links });
    }
    rows
}

/// The command a step runs, as the spec gives it (placeholders unresolved), and its image.
fn command_of(spec: &PipelineSpec, tasks: &Tasks<'_>, task: &Task) -> (String, String) {
    let Some(component) = tasks.component(spec, task) else {
        return (String::new(), String::new());
    };
    let Some(label) = &component.executor_label else {
        return (String::new(), String::new());
    };
    match spec.deployment_spec.executors.get(label).and_then(|e| e.container.as_ref()) {
        Some(container) => {
            let words: Vec<&str> = container.command.iter().chain(&container.args).map(String::as_str).collect();
            (words.join(" "), container.image.clone())
        }
        None => (String::new(), task.image.clone()),
    }
}

pub(crate) async fn node_panel(
    ui: &Ui,
    chrome: &Chrome,
    run: &Run,
    spec: &PipelineSpec,
    tasks: &Tasks<'_>,
    task: &Task,
) -> UiResult<NodePanel> {
    let mut ids: Vec<i64> = task.inputs.artifact_ids().chain(task.outputs.artifact_ids()).collect();
    ids.sort_unstable();
    ids.dedup();
    let artifacts: HashMap<i64, Artifact> =
        ui.services.execution.artifacts(&ids).await?.into_iter().map(|a| (a.id, a)).collect();
    // A cache hit's outputs are the artifacts of the run that made them.
    let cache_source = if task.cached {
        task.outputs
            .artifact_ids()
            .filter_map(|id| artifacts.get(&id))
            .find(|a| a.run_id != run.id)
            .map(|a| (format!("{}/runs/{}", chrome.base, a.run_id), a.run_id.clone()))
    } else {
        None
    };
    let (command, image) = command_of(spec, tasks, task);
    let has_log = task.kind == TaskKind::Container && task.attempts > 0 && !task.cached;
    let log =
        if has_log { ui.services.execution.logs(&run.id, &task.id).await.unwrap_or_default() } else { String::new() };
    let log_live = if has_log && !task.state.is_terminal() {
        format!("{}/runs/{}/nodes/{}/log/events", chrome.base, run.id, task.id)
    } else {
        String::new()
    };
    let now = ui.services.context.clock.now_ms();
    Ok(NodePanel {
        id: task.id.clone(),
        name: task.display_name.clone(),
        state: task.state.as_str(),
        state_class: state_class(task.state),
        kind: task.kind.as_str(),
        attempts: task.attempts,
        cached: task.cached,
        cache_source,
        started: time(task.started_at),
        finished: time(task.finished_at),
        duration: duration(task.started_at, task.finished_at, now),
        image: if image.is_empty() { task.image.clone() } else { image },
        command,
        error: task.error.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
        inputs: io_rows(chrome, &task.inputs, &artifacts),
        outputs: io_rows(chrome, &task.outputs, &artifacts),
        log,
        log_href: format!("{}/runs/{}/nodes/{}/log", chrome.base, run.id, task.id),
        log_live,
        history: task.state_history.iter().map(|c| (time(c.update_time), c.state.as_str())).collect(),
        has_log,
    })
}
