//! A pipeline's graph at one level of its DAG, and its drawing as SVG.
//!
//! A level is one DAG component: its tasks are the nodes, their dependencies (explicit ones and
//! data producers) the edges. A sub-DAG (a nested pipeline, a condition's or an exit handler's
//! group) and a ParallelFor are one node each, that the page lets one open; a run fills in
//! each node's state. The drawing is done here, laid out by [`crate::layout`], so a browser
//! gets a finished picture however many nodes there are.

use std::collections::HashMap;
use std::fmt::Write;

use weir_spec::ir::{ComponentSpec, PipelineSpec};
use weir_store::RuntimeState;

use crate::layout::{layout, LayoutError, Spacing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Container,
    Importer,
    /// A nested pipeline, or the group of a condition or an exit handler.
    Dag,
    /// A ParallelFor.
    Loop,
}

impl NodeKind {
    fn css(self) -> &'static str {
        match self {
            NodeKind::Container => "container",
            NodeKind::Importer => "importer",
            NodeKind::Dag => "dag",
            NodeKind::Loop => "loop",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The task's key in its DAG.
    pub key: String,
    pub label: String,
    pub kind: NodeKind,
    /// Set on a run's graph once the task exists.
    pub state: Option<RuntimeState>,
    /// A second line: a loop's iterations and their states, "cached", the condition.
    pub note: String,
    /// The task's trigger condition, if it has one.
    pub condition: String,
    /// The task runs whatever its upstream tasks ended as (an exit handler's task).
    pub exit_handler: bool,
    /// Where clicking the node goes.
    pub href: Option<String>,
    pub selected: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// (upstream, downstream) by node index.
    pub edges: Vec<(usize, usize)>,
}

impl Graph {
    /// The graph of `component`'s DAG (empty for a component without one).
    pub fn of_component(spec: &PipelineSpec, component: &ComponentSpec) -> Graph {
        let Some(dag) = &component.dag else {
            return Graph::default();
        };
        let index: HashMap<&str, usize> = dag.tasks.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        let mut graph = Graph::default();
        for (key, task) in &dag.tasks {
            let child = spec.components.get(&task.component_ref.name);
            let kind = if task.parameter_iterator.is_some() || task.artifact_iterator.is_some() {
                NodeKind::Loop
            } else if child.is_some_and(|c| c.dag.is_some()) {
                NodeKind::Dag
            } else if child
                .and_then(|c| c.executor_label.as_ref())
                .and_then(|l| spec.deployment_spec.executors.get(l))
                .is_some_and(|e| e.importer.is_some())
            {
                NodeKind::Importer
            } else {
                NodeKind::Container
            };
            let label = if task.task_info.name.is_empty() { key.clone() } else { task.task_info.name.clone() };
            graph.nodes.push(Node {
                key: key.clone(),
                label,
                kind,
                state: None,
                note: String::new(),
                condition: task.trigger_policy.condition.clone(),
                exit_handler: task.runs_after_failures(),
                href: None,
                selected: false,
            });
            let to = graph.nodes.len() - 1;
            for upstream in task.upstream() {
                if let Some(&from) = index.get(upstream.as_str()) {
                    graph.edges.push((from, to));
                }
            }
        }
        graph
    }

    /// The drawing: one `<svg>` element, nodes as links where they have somewhere to go.
    pub fn to_svg(&self) -> Result<String, LayoutError> {
        const W: f64 = 190.0;
        const H: f64 = 50.0;
        const PAD: f64 = 12.0;
        let spacing = Spacing { column: W + 30.0, row: H + 46.0 };
        let placed = layout(self.nodes.len(), &self.edges, spacing)?;
        let (mut min_x, mut min_y, mut max_x, mut max_y) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for &(x, y) in &placed.nodes {
            min_x = min_x.min(x - W / 2.0);
            max_x = max_x.max(x + W / 2.0);
            min_y = min_y.min(y - H / 2.0);
            max_y = max_y.max(y + H / 2.0);
        }
        if self.nodes.is_empty() {
            (min_x, min_y, max_x, max_y) = (0.0, 0.0, W, H);
        }
        let (vw, vh) = (max_x - min_x + 2.0 * PAD, max_y - min_y + 2.0 * PAD);
        let (ox, oy) = (PAD - min_x, PAD - min_y);
        let mut svg = String::with_capacity(400 * self.nodes.len() + 200);
        let _ = write!(
            svg,
            r#"<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {vw:.0} {vh:.0}" width="{vw:.0}" height="{vh:.0}" role="group" aria-label="pipeline graph, {} tasks">"#,
            self.nodes.len()
        );
        svg.push_str(
            r#"<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0 L8 4 L0 8 z"/></marker></defs><g class="edges">"#,
        );
        for points in &placed.edges {
            let Some((&first, rest)) = points.split_first() else { continue };
            let Some(&last) = rest.last() else { continue };
            // From the bottom of the source box to the top of the target's.
            let _ = write!(svg, r#"<path d="M{:.1} {:.1}"#, first.0 + ox, first.1 + oy + H / 2.0);
            for &(x, y) in &rest[..rest.len() - 1] {
                let _ = write!(svg, " L{:.1} {:.1}", x + ox, y + oy);
            }
            let _ =
                write!(svg, r#" L{:.1} {:.1}" marker-end="url(#arrow)"/>"#, last.0 + ox, last.1 + oy - H / 2.0 - 2.0);
        }
        svg.push_str("</g>");
        for (node, &(cx, cy)) in self.nodes.iter().zip(&placed.nodes) {
            let (x, y) = (cx + ox - W / 2.0, cy + oy - H / 2.0);
            let state = node.state.map(crate::view::state_class).unwrap_or("unstarted");
            let selected = if node.selected { " selected" } else { "" };
            let mut title = format!("{} ({})", node.label, node.state.map(|s| s.as_str()).unwrap_or("not started"));
            if !node.condition.is_empty() {
                let _ = write!(title, ", runs if {}", node.condition);
            }
            if node.exit_handler {
                title.push_str(", runs whatever its upstream tasks ended as");
            }
            match &node.href {
                Some(href) => {
                    let _ = write!(svg, r#"<a href="{}" aria-label="{}">"#, escape(href), escape(&title));
                }
                None => svg.push_str("<g>"),
            }
            let _ = write!(
                svg,
                r#"<g class="node {} {state}{selected}" data-task="{}"><title>{}</title><rect x="{x:.1}" y="{y:.1}" width="{W}" height="{H}" rx="6"/>"#,
                node.kind.css(),
                escape(&node.key),
                escape(&title),
            );
            let marker = match (node.kind, node.exit_handler, node.condition.is_empty()) {
                (NodeKind::Loop, _, _) => "⟳ ",
                (NodeKind::Dag, _, _) => "▸ ",
                (_, true, _) => "⤓ ",
                (_, _, false) => "? ",
                _ => "",
            };
            let _ = write!(
                svg,
                r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="5"/><text x="{:.1}" y="{:.1}" class="label">{}{}</text>"#,
                x + 13.0,
                y + 17.0,
                x + 24.0,
                y + 21.0,
                marker,
                escape(&truncate(&node.label, 22))
            );
            if !node.note.is_empty() {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" class="note">{}</text>"#,
                    x + 24.0,
                    y + 39.0,
                    escape(&truncate(&node.note, 28))
                );
            }
            svg.push_str("</g>");
            svg.push_str(if node.href.is_some() { "</a>" } else { "</g>" });
        }
        svg.push_str("</svg>");
        Ok(svg)
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Escapes text for SVG/HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str) -> Node {
        Node {
            key: key.into(),
            label: key.into(),
            kind: NodeKind::Container,
            state: None,
            note: String::new(),
            condition: String::new(),
            exit_handler: false,
            href: None,
            selected: false,
        }
    }

    #[test]
    fn the_drawing_escapes_names_and_links_nodes() {
        let mut a = node("<script>alert(1)</script>");
        a.href = Some("/runs/x?node=\"a\"".into());
        a.state = Some(RuntimeState::Failed);
        let graph = Graph { nodes: vec![a, node("b")], edges: vec![(0, 1)] };
        let svg = graph.to_svg().unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains(r#"href="/runs/x?node=&quot;a&quot;""#));
        assert!(svg.contains("node container failed"));
        assert_eq!(svg.matches("marker-end=").count(), 1);
    }

    #[test]
    fn a_spec_gives_nodes_and_edges() {
        let spec: serde_json::Value = serde_json::json!({
            "pipelineInfo": {"name": "p"},
            "schemaVersion": "2.1.0",
            "sdkVersion": "kfp-2.17.3",
            "deploymentSpec": {"executors": {"exec-a": {"container": {"image": "python"}}}},
            "components": {
                "comp-a": {"executorLabel": "exec-a"},
                "comp-loop": {"dag": {"tasks": {}}}
            },
            "root": {"dag": {"tasks": {
                "a": {"taskInfo": {"name": "a"}, "componentRef": {"name": "comp-a"}},
                "b": {"taskInfo": {"name": "b"}, "componentRef": {"name": "comp-a"}, "dependentTasks": ["a"],
                      "triggerPolicy": {"condition": "x == 1"}},
                "loop": {"taskInfo": {"name": "for-loop-1"}, "componentRef": {"name": "comp-loop"},
                         "dependentTasks": ["b"],
                         "parameterIterator": {"itemInput": "i", "items": {"raw": "[1,2]"}}}
            }}}
        });
        let spec = PipelineSpec::parse(&spec).unwrap();
        let graph = Graph::of_component(&spec, &spec.root);
        let kinds: Vec<_> = graph.nodes.iter().map(|n| (n.key.as_str(), n.kind)).collect();
        assert_eq!(kinds, [("a", NodeKind::Container), ("b", NodeKind::Container), ("loop", NodeKind::Loop)]);
        assert_eq!(graph.edges, [(0, 1), (1, 2)]);
        assert_eq!(graph.nodes[1].condition, "x == 1");
    }
}
