//! The runs list: filters, sort, keyset paging, bulk archive/unarchive/delete, and a column
//! for each scalar metric the page's runs log.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use weir_api_model::ListParams;
use weir_store::RuntimeState;

use super::{metric_text, run_pipeline_name, scalar_metrics, Names};
use crate::security::url_pairs;
use crate::view::{duration, html, query_escape, state_class, time, Chrome, UiError, UiResult};
use crate::Ui;

/// The most metric columns a runs page shows.
const METRIC_COLUMNS: usize = 4;
const PAGE_SIZE: usize = 25;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RunFilters {
    pub name: String,
    pub state: String,
    pub experiment: String,
    pub pipeline: String,
    /// Created on or after this day (YYYY-MM-DD, UTC).
    pub from: String,
    /// Created before the end of this day.
    pub to: String,
    pub sort: String,
    pub archived: bool,
    pub page_token: String,
    pub recurring_run: String,
}

impl RunFilters {
    /// KFP's filter and sort for these choices.
    pub fn list_params(&self) -> Result<ListParams, UiError> {
        let mut predicates = vec![json!({
            "key": "storage_state", "operation": "EQUALS",
            "string_value": if self.archived { "ARCHIVED" } else { "AVAILABLE" },
        })];
        if !self.name.is_empty() {
            predicates.push(json!({"key": "display_name", "operation": "IS_SUBSTRING", "string_value": self.name}));
        }
        if !self.state.is_empty() {
            let state = RuntimeState::parse(&self.state)
                .ok_or_else(|| UiError::bad_request(format!("unknown run state {:?}", self.state)))?;
            predicates.push(json!({"key": "state", "operation": "EQUALS", "string_value": state.as_str()}));
        }
        if !self.pipeline.is_empty() {
            predicates.push(json!({"key": "pipeline_id", "operation": "EQUALS", "string_value": self.pipeline}));
        }
        if !self.recurring_run.is_empty() {
            predicates
                .push(json!({"key": "recurring_run_id", "operation": "EQUALS", "string_value": self.recurring_run}));
        }
        for (day, op, end_of_day) in [(&self.from, "GREATER_THAN_EQUALS", false), (&self.to, "LESS_THAN", true)] {
            if day.is_empty() {
                continue;
            }
            let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| UiError::bad_request(format!("{day:?} is not a date (YYYY-MM-DD)")))?;
            let date = if end_of_day { date.succ_opt().unwrap_or(date) } else { date };
            let stamp = date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().to_rfc3339();
            predicates.push(json!({"key": "created_at", "operation": op, "timestamp_value": stamp}));
        }
        let sort_by = match self.sort.as_str() {
            "" | "created_at desc" => "created_at desc",
            "created_at" => "created_at",
            "display_name" => "display_name",
            "display_name desc" => "display_name desc",
            "finished_at desc" => "finished_at desc",
            other => return Err(UiError::bad_request(format!("cannot sort runs by {other:?}"))),
        };
        Ok(ListParams {
            page_token: self.page_token.clone(),
            page_size: Some(PAGE_SIZE.to_string()),
            sort_by: sort_by.to_string(),
            filter: json!({ "predicates": predicates }).to_string(),
            experiment_id: self.experiment.clone(),
            ..ListParams::default()
        })
    }

    /// The query string of these filters on another page of results.
    fn query(&self, page_token: &str) -> String {
        let mut pairs = vec![];
        for (k, v) in [
            ("name", &self.name),
            ("state", &self.state),
            ("experiment", &self.experiment),
            ("pipeline", &self.pipeline),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
            ("recurring_run", &self.recurring_run),
        ] {
            if !v.is_empty() {
                pairs.push(format!("{k}={}", query_escape(v)));
            }
        }
        if self.archived {
            pairs.push("archived=true".into());
        }
        if !page_token.is_empty() {
            pairs.push(format!("page_token={}", query_escape(page_token)));
        }
        pairs.join("&")
    }
}

pub(crate) struct RunRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub duration: String,
    pub pipeline: String,
    pub pipeline_href: String,
    pub experiment: String,
    pub experiment_id: String,
    pub created: String,
    pub metrics: Vec<String>,
}

/// Rows for a page of runs, with a column per scalar metric (the most frequent first).
pub(crate) async fn run_rows(ui: &Ui, chrome: &Chrome, runs: &[weir_store::Run]) -> (Vec<RunRow>, Vec<String>) {
    let services = &ui.services;
    let now = ui.services.context.clock.now_ms();
    let mut names = Names::default();
    let mut per_run: Vec<Vec<(String, f64)>> = Vec::with_capacity(runs.len());
    let mut frequency: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs {
        let metrics = match services.execution.run_artifacts(&run.id).await {
            Ok(artifacts) => scalar_metrics(&artifacts, &HashMap::new()),
            Err(_) => Vec::new(),
        };
        for (name, _) in &metrics {
            *frequency.entry(name.clone()).or_default() += 1;
        }
        per_run.push(metrics);
    }
    let mut columns: Vec<(String, usize)> = frequency.into_iter().collect();
    columns.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let columns: Vec<String> = columns.into_iter().take(METRIC_COLUMNS).map(|(n, _)| n).collect();
    let mut rows = Vec::with_capacity(runs.len());
    for (run, metrics) in runs.iter().zip(per_run) {
        let pipeline = run_pipeline_name(&mut names, services, run).await;
        let pipeline_href = super::pipeline_href(&chrome.base, &run.pipeline_id, &run.pipeline_version_id);
        rows.push(RunRow {
            id: run.id.clone(),
            name: run.display_name.clone(),
            state: run.state.as_str(),
            state_class: state_class(run.state),
            duration: duration(run.created_at, run.finished_at, now),
            pipeline,
            pipeline_href,
            experiment: names.experiment(services, &run.experiment_id).await,
            experiment_id: run.experiment_id.clone(),
            created: time(run.created_at),
            metrics: columns
                .iter()
                .map(|c| metrics.iter().find(|(n, _)| n == c).map(|(_, v)| metric_text(*v)).unwrap_or_default())
                .collect(),
        });
    }
    (rows, columns)
}

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    chrome: Chrome,
    title: String,
    filters: RunFilters,
    rows: Vec<RunRow>,
    metric_columns: Vec<String>,
    states: Vec<Choice>,
    experiments: Vec<Choice>,
    pipelines: Vec<Choice>,
    sorts: Vec<Choice>,
    total: i64,
    next_href: String,
    first_href: String,
    return_to: String,
}

pub(crate) async fn list(State(ui): State<Ui>, chrome: Chrome, Query(filters): Query<RunFilters>) -> UiResult {
    let params = filters.list_params()?;
    let page = ui.services.runs.list(&params).await?;
    let (rows, metric_columns) = run_rows(&ui, &chrome, &page.items).await;
    let experiments = experiment_choices(&ui, &filters.experiment).await?;
    let pipelines = pipeline_choices(&ui, &filters.pipeline).await?;
    let states = std::iter::once(("", "any state"))
        .chain(RuntimeState::ALL.iter().map(|s| (s.as_str(), s.as_str())))
        .map(|(v, l)| Choice { value: v.into(), label: l.into(), selected: filters.state == v })
        .collect();
    let sorts = [
        ("created_at desc", "newest first"),
        ("created_at", "oldest first"),
        ("display_name", "name A–Z"),
        ("display_name desc", "name Z–A"),
        ("finished_at desc", "finished last"),
    ]
    .iter()
    .map(|(v, l)| Choice {
        value: v.to_string(),
        label: l.to_string(),
        selected: filters.sort == *v || (filters.sort.is_empty() && *v == "created_at desc"),
    })
    .collect();
    let next_href = if page.next_page_token.is_empty() {
        String::new()
    } else {
        format!("{}/runs?{}", chrome.base, filters.query(&page.next_page_token))
    };
    let first_href = if filters.page_token.is_empty() {
        String::new()
    } else {
        format!("{}/runs?{}", chrome.base, filters.query(""))
    };
    let return_to = format!("/runs?{}", filters.query(&filters.page_token));
    html(RunsPage {
        title: if filters.archived { "Archived runs".into() } else { "Runs".into() },
        chrome,
        filters,
        rows,
        metric_columns,
        states,
        experiments,
        pipelines,
        sorts,
        total: page.total_size,
        next_href,
        first_href,
        return_to,
    })
}

pub(crate) async fn experiment_choices(ui: &Ui, selected: &str) -> Result<Vec<Choice>, UiError> {
    let params = ListParams { page_size: Some("200".into()), sort_by: "display_name".into(), ..Default::default() };
    let page = ui.services.experiments.list(&params).await?;
    Ok(page
        .items
        .into_iter()
        .map(|e| Choice { selected: e.id == selected, value: e.id, label: e.display_name })
        .collect())
}

async fn pipeline_choices(ui: &Ui, selected: &str) -> Result<Vec<Choice>, UiError> {
    let params = ListParams { page_size: Some("200".into()), sort_by: "display_name".into(), ..Default::default() };
    let page = ui.services.pipelines.list(&params).await?;
    Ok(page
        .items
        .into_iter()
        .map(|p| Choice {
            selected: p.id == selected,
            value: p.id,
            label: if p.display_name.is_empty() { p.name } else { p.display_name },
        })
        .collect())
}

/// Where a form may send the browser back to: a path of this UI, nothing else.
pub(crate) fn safe_return(path: &str, fallback: &str) -> String {
    let ok = path.starts_with('/') && !path.starts_with("//") && !path.contains(['\\', '\r', '\n']);
    if ok {
        path.to_string()
    } else {
        fallback.to_string()
    }
}

/// `POST /runs/bulk`: archive, unarchive or delete the selected runs.
pub(crate) async fn bulk(State(ui): State<Ui>, chrome: Chrome, body: Bytes) -> UiResult<Response> {
    let mut ids = Vec::new();
    let (mut action, mut return_to) = (String::new(), String::new());
    for (key, value) in url_pairs(&body) {
        match key.as_str() {
            "ids" => ids.push(value),
            "action" => action = value,
            "return" => return_to = value,
            _ => {}
        }
    }
    if ids.is_empty() {
        return Err(UiError::bad_request("no runs selected"));
    }
    if !matches!(action.as_str(), "archive" | "unarchive" | "delete") {
        return Err(UiError::bad_request(format!("unknown action {action:?}")));
    }
    let runs = &ui.services.runs;
    // Every selected run must exist before any is changed, so a stale selection changes none.
    for id in &ids {
        runs.get(id).await?;
    }
    for id in &ids {
        match action.as_str() {
            "archive" => runs.archive(id).await?,
            "unarchive" => runs.unarchive(id).await?,
            _ => runs.delete(id).await?,
        }
    }
    Ok(chrome.see_other(&safe_return(&return_to, "/runs")))
}
