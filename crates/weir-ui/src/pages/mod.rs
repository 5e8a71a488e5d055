//! The pages, one module per part of the UI. Handlers read through `weir_service`, the same
//! services the HTTP API calls, and render a template.

pub mod artifacts;
pub mod assets;
pub mod compare;
pub mod experiments;
pub mod new_run;
pub mod node;
pub mod pipelines;
pub mod recurring;
pub mod run_details;
pub mod run_graph;
pub mod runs;
pub mod storage;

use std::collections::HashMap;

use weir_service::Services;
use weir_store::{Artifact, Run};

/// Display names of pipelines and experiments, looked up once per page.
#[derive(Default)]
pub(crate) struct Names {
    pipelines: HashMap<String, String>,
    experiments: HashMap<String, String>,
}

impl Names {
    pub async fn pipeline(&mut self, services: &Services, id: &str) -> String {
        if id.is_empty() {
            return String::new();
        }
        if let Some(name) = self.pipelines.get(id) {
            return name.clone();
        }
        let name = match services.pipelines.get(id).await {
            Ok(p) if !p.display_name.is_empty() => p.display_name,
            Ok(p) => p.name,
            Err(_) => format!("{id} (deleted)"),
        };
        self.pipelines.insert(id.to_string(), name.clone());
        name
    }

    pub async fn experiment(&mut self, services: &Services, id: &str) -> String {
        if id.is_empty() {
            return String::new();
        }
        if let Some(name) = self.experiments.get(id) {
            return name.clone();
        }
        let name = match services.experiments.get(id).await {
            Ok(e) => e.display_name,
            Err(_) => format!("{id} (deleted)"),
        };
        self.experiments.insert(id.to_string(), name.clone());
        name
    }
}

/// The pipeline name a run shows: its pipeline's, or its inline spec's.
pub(crate) async fn run_pipeline_name(names: &mut Names, services: &Services, run: &Run) -> String {
    if !run.pipeline_id.is_empty() {
        return names.pipeline(services, &run.pipeline_id).await;
    }
    run.pipeline_spec
        .pointer("/pipelineInfo/displayName")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .or_else(|| run.pipeline_spec.pointer("/pipelineInfo/name").and_then(|v| v.as_str()))
        .unwrap_or_default()
        .to_string()
}

/// The link of a run's (or recurring run's) pipeline version, or pipeline; empty for a spec
/// given inline.
pub(crate) fn pipeline_href(base: &str, pipeline_id: &str, version_id: &str) -> String {
    match (pipeline_id.is_empty(), version_id.is_empty()) {
        (false, false) => format!("{base}/pipelines/{pipeline_id}/versions/{version_id}"),
        (false, true) => format!("{base}/pipelines/{pipeline_id}"),
        _ => String::new(),
    }
}

pub(crate) const METRICS: &str = "system.Metrics";
pub(crate) const CLASSIFICATION_METRICS: &str = "system.ClassificationMetrics";

/// The scalar metrics of a run's `system.Metrics` artifacts, by name (KFP's `log_metric`
/// keeps each as a number in the artifact's metadata). A name logged by several steps is
/// qualified by the artifact's step.
pub(crate) fn scalar_metrics(artifacts: &[Artifact], task_names: &HashMap<String, String>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for artifact in artifacts.iter().filter(|a| a.schema_title == METRICS) {
        let Some(map) = artifact.metadata.as_object() else { continue };
        for (name, value) in map {
            let Some(number) = value.as_f64() else { continue };
            if name == "display_name" {
                continue;
            }
            let key = if out.iter().any(|(n, _)| n == name) {
                let task = task_names.get(&artifact.task_id).map(String::as_str).unwrap_or("step");
                format!("{task}/{name}")
            } else {
                name.clone()
            };
            out.push((key, number));
        }
    }
    out
}

/// A metric as a table shows it: up to 4 significant decimals.
pub(crate) fn metric_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_read_as_numbers() {
        assert_eq!(metric_text(0.912345), "0.9123");
        assert_eq!(metric_text(3.0), "3");
        assert_eq!(metric_text(0.5), "0.5");
    }
}
