//! A run's graph at one level: the level's DAG from the spec, each node's state from the run's
//! tasks, ParallelFor nodes with their iterations counted by state.

use std::collections::{BTreeMap, HashMap};

use weir_spec::ir::{ComponentSpec, PipelineSpec};
use weir_store::{RuntimeState, Task, TaskKind};

use crate::graph::{Graph, NodeKind};

/// The run's tasks, indexed.
pub(crate) struct Tasks<'a> {
    pub all: &'a [Task],
    by_id: HashMap<&'a str, &'a Task>,
    children: HashMap<&'a str, Vec<&'a Task>>,
}

impl<'a> Tasks<'a> {
    pub fn new(all: &'a [Task]) -> Self {
        let by_id = all.iter().map(|t| (t.id.as_str(), t)).collect();
        let mut children: HashMap<&str, Vec<&Task>> = HashMap::new();
        for task in all {
            children.entry(task.parent_id.as_str()).or_default().push(task);
        }
        for list in children.values_mut() {
            list.sort_by_key(|t| (t.iteration_index.unwrap_or(0), t.created_at));
        }
        Self { all, by_id, children }
    }

    pub fn get(&self, id: &str) -> Option<&'a Task> {
        self.by_id.get(id).copied()
    }

    pub fn root(&self) -> Option<&'a Task> {
        self.children.get("").and_then(|c| c.first().copied())
    }

    pub fn children(&self, id: &str) -> &[&'a Task] {
        self.children.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    /// The component a task runs: the root's is the pipeline's, an iteration's its loop's body.
    pub fn component<'s>(&self, spec: &'s PipelineSpec, task: &Task) -> Option<&'s ComponentSpec> {
        if task.parent_id.is_empty() {
            return Some(&spec.root);
        }
        let parent = self.get(&task.parent_id)?;
        let parent_component = self.component(spec, parent)?;
        if task.kind == TaskKind::Iteration {
            return Some(parent_component);
        }
        let task_spec = parent_component.dag.as_ref()?.tasks.get(&task.name)?;
        spec.components.get(&task_spec.component_ref.name)
    }

    /// The levels from the root down to `task`, for breadcrumbs.
    pub fn path(&self, task: &'a Task) -> Vec<&'a Task> {
        let mut path = vec![task];
        let mut at = task;
        while let Some(parent) = self.get(&at.parent_id) {
            path.push(parent);
            at = parent;
        }
        path.reverse();
        path
    }

    /// The steps that failed, deepest first: what a failed run's page names before anything.
    pub fn failed_steps(&self) -> Vec<&'a Task> {
        self.all
            .iter()
            .filter(|t| matches!(t.kind, TaskKind::Container | TaskKind::Importer) && t.state == RuntimeState::Failed)
            .collect()
    }
}

/// Counts by state, as `2 succeeded · 1 running`.
pub(crate) fn state_counts(tasks: &[&Task]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tasks {
        *counts.entry(crate::view::state_class(t.state)).or_default() += 1;
    }
    counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(" · ")
}

/// The graph of `level` (a DAG or iteration task), states filled in, nodes linked to
/// `href(node task)`.
pub(crate) fn level_graph(
    spec: &PipelineSpec,
    tasks: &Tasks<'_>,
    level: &Task,
    selected: &str,
    href: impl Fn(&Task, NodeKind) -> String,
) -> Graph {
    let Some(component) = tasks.component(spec, level) else {
        return Graph::default();
    };
    let mut graph = Graph::of_component(spec, component);
    let children: HashMap<&str, &Task> = tasks.children(&level.id).iter().map(|t| (t.name.as_str(), *t)).collect();
    for node in &mut graph.nodes {
        let Some(task) = children.get(node.key.as_str()) else {
            if !node.condition.is_empty() {
                node.note = format!("if {}", node.condition);
            }
            continue;
        };
        node.state = Some(task.state);
        node.selected = task.id == selected;
        node.href = Some(href(task, node.kind));
        node.note = match node.kind {
            NodeKind::Loop => {
                let iterations = tasks.children(&task.id);
                format!("{} iterations · {}", iterations.len(), state_counts(iterations))
            }
            NodeKind::Dag => {
                let inner = tasks.children(&task.id);
                if inner.is_empty() {
                    "group".into()
                } else {
                    format!("group · {}", state_counts(inner))
                }
            }
            _ if task.cached => "cached".into(),
            _ if task.attempts > 1 => format!("attempt {}", task.attempts),
            _ if !node.condition.is_empty() => format!("if {}", node.condition),
            _ => String::new(),
        };
    }
    graph
}
