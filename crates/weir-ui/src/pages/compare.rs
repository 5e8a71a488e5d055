//! Compare 2 to 10 runs: parameters and scalar metrics side by side, rows that differ
//! highlighted, ROC curves of their classification metrics overlaid.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::extract::{RawQuery, State};

use super::artifacts::roc_points;
use super::{metric_text, scalar_metrics, CLASSIFICATION_METRICS};
use crate::chart::{roc_svg, Curve};
use crate::security::url_pairs;
use crate::view::{html, state_class, value_text, Chrome, UiError, UiResult};
use crate::Ui;

const MAX_RUNS: usize = 10;

pub(crate) struct Column {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub state_class: &'static str,
}

pub(crate) struct Row {
    pub name: String,
    pub values: Vec<String>,
    pub differs: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    chrome: Chrome,
    title: String,
    columns: Vec<Column>,
    parameters: Vec<Row>,
    metrics: Vec<Row>,
    roc_svg: String,
}

fn rows(names: &BTreeSet<String>, per_run: &[HashMap<String, String>]) -> Vec<Row> {
    names
        .iter()
        .map(|name| {
            let values: Vec<String> = per_run.iter().map(|m| m.get(name).cloned().unwrap_or_default()).collect();
            let differs = values.iter().any(|v| v != &values[0]);
            Row { name: name.clone(), values, differs }
        })
        .collect()
}

pub(crate) async fn page(State(ui): State<Ui>, chrome: Chrome, RawQuery(query): RawQuery) -> UiResult {
    let query = query.unwrap_or_default();
    let mut ids: Vec<String> =
        url_pairs(query.as_bytes()).filter(|(k, _)| k == "ids" || k == "runs").map(|(_, v)| v).collect();
    ids.dedup();
    if ids.len() < 2 || ids.len() > MAX_RUNS {
        return Err(UiError::bad_request(format!("select 2 to {MAX_RUNS} runs to compare ({} given)", ids.len())));
    }
    let mut columns = Vec::new();
    let (mut parameter_names, mut metric_names) = (BTreeSet::new(), BTreeSet::new());
    let (mut parameters, mut metrics) = (Vec::new(), Vec::new());
    let mut curves = Vec::new();
    for id in &ids {
        let (run, tasks) = ui.services.runs.get(id).await?;
        let artifacts = ui.services.execution.run_artifacts(id).await?;
        let task_names: HashMap<String, String> =
            tasks.iter().map(|t| (t.id.clone(), t.display_name.clone())).collect();
        let run_parameters: HashMap<String, String> =
            run.parameters.iter().map(|(k, v)| (k.clone(), value_text(v))).collect();
        let run_metrics: HashMap<String, String> =
            scalar_metrics(&artifacts, &task_names).into_iter().map(|(k, v)| (k, metric_text(v))).collect();
        parameter_names.extend(run_parameters.keys().cloned());
        metric_names.extend(run_metrics.keys().cloned());
        parameters.push(run_parameters);
        metrics.push(run_metrics);
        for artifact in artifacts.iter().filter(|a| a.schema_title == CLASSIFICATION_METRICS) {
            if let Some(points) = roc_points(&artifact.metadata) {
                curves.push(Curve { name: format!("{} · {}", run.display_name, artifact.name), points });
            }
        }
        columns.push(Column {
            id: run.id.clone(),
            name: run.display_name.clone(),
            state: run.state.as_str(),
            state_class: state_class(run.state),
        });
    }
    let roc_svg = if curves.is_empty() { String::new() } else { roc_svg(&curves).map_err(UiError::internal)? };
    html(ComparePage {
        chrome,
        title: format!("Compare {} runs", columns.len()),
        parameters: rows(&parameter_names, &parameters),
        metrics: rows(&metric_names, &metrics),
        columns,
        roc_svg,
    })
}
