//! Experiments: list (active or archived), create, a page with its runs and recurring runs,
//! archive and restore.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use weir_api_model as wire;
use weir_api_model::ListParams;
use weir_store::StorageState;

use super::recurring::{recurring_rows, RecurringRow};
use super::runs::{run_rows, RunFilters, RunRow};
use crate::security::url_pairs;
use crate::view::{html, time, Chrome, UiError, UiResult};
use crate::Ui;

pub(crate) struct ExperimentRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: String,
    pub last_run: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListQuery {
    pub archived: bool,
    pub page_token: String,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    chrome: Chrome,
    title: String,
    archived: bool,
    rows: Vec<ExperimentRow>,
    next_href: String,
}

pub(crate) async fn list(State(ui): State<Ui>, chrome: Chrome, Query(q): Query<ListQuery>) -> UiResult {
    let state = if q.archived { "ARCHIVED" } else { "AVAILABLE" };
    let params = ListParams {
        page_size: Some("50".into()),
        page_token: q.page_token.clone(),
        sort_by: "created_at desc".into(),
        filter:
            serde_json::json!({"predicates": [{"key": "storage_state", "operation": "EQUALS", "string_value": state}]})
                .to_string(),
        ..Default::default()
    };
    let page = ui.services.experiments.list(&params).await?;
    let rows = page
        .items
        .into_iter()
        .map(|e| ExperimentRow {
            id: e.id,
            name: e.display_name,
            description: e.description,
            created: time(e.created_at),
            last_run: time(e.last_run_created_at),
        })
        .collect();
    let next_href = if page.next_page_token.is_empty() {
        String::new()
    } else {
        format!(
            "{}/experiments?archived={}&page_token={}",
            chrome.base,
            q.archived,
            crate::view::query_escape(&page.next_page_token)
        )
    };
    html(ExperimentsPage {
        chrome,
        title: if q.archived { "Archived experiments".into() } else { "Experiments".into() },
        archived: q.archived,
        rows,
        next_href,
    })
}

/// `POST /experiments` (name, description).
pub(crate) async fn create(State(ui): State<Ui>, chrome: Chrome, body: Bytes) -> UiResult<Response> {
    let mut experiment = wire::Experiment::default();
    for (k, v) in url_pairs(&body) {
        match k.as_str() {
            "name" => experiment.display_name = v.trim().to_string(),
            "description" => experiment.description = v.trim().to_string(),
            _ => {}
        }
    }
    let created = ui.services.experiments.create(&experiment).await?;
    Ok(chrome.see_other(&format!("/experiments/{}", created.id)))
}

#[derive(Template)]
#[template(path = "experiment.html")]
struct ExperimentPage {
    chrome: Chrome,
    title: String,
    id: String,
    description: String,
    created: String,
    archived: bool,
    runs: Vec<RunRow>,
    metric_columns: Vec<String>,
    recurring: Vec<RecurringRow>,
    runs_href: String,
}

pub(crate) async fn details(State(ui): State<Ui>, chrome: Chrome, Path(id): Path<String>) -> UiResult {
    let experiment = ui.services.experiments.get(&id).await?;
    let filters = RunFilters { experiment: id.clone(), ..Default::default() };
    let page = ui.services.runs.list(&filters.list_params()?).await?;
    let (runs, metric_columns) = run_rows(&ui, &chrome, &page.items).await;
    let params = ListParams {
        page_size: Some("50".into()),
        sort_by: "created_at desc".into(),
        experiment_id: id.clone(),
        ..Default::default()
    };
    let recurring = recurring_rows(&ui, &ui.services.recurring_runs.list(&params).await?.items).await;
    html(ExperimentPage {
        runs_href: format!("{}/runs?experiment={}", chrome.base, experiment.id),
        chrome,
        title: experiment.display_name,
        id: experiment.id,
        description: experiment.description,
        created: time(experiment.created_at),
        archived: experiment.storage_state == StorageState::Archived,
        runs,
        metric_columns,
        recurring,
    })
}

/// `POST /experiments/{id}/actions/{archive|unarchive|delete|delete-with-runs}`.
pub(crate) async fn action(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path((id, action)): Path<(String, String)>,
) -> UiResult<Response> {
    let experiments = &ui.services.experiments;
    match action.as_str() {
        "archive" => experiments.archive(&id).await?,
        "unarchive" => experiments.unarchive(&id).await?,
        "delete" => {
            experiments.delete(&id, false).await?;
            return Ok(chrome.see_other("/experiments"));
        }
        // Its runs (with their artifacts) and recurring runs too; the collector finishes it.
        "delete-with-runs" => {
            experiments.delete(&id, true).await?;
            return Ok(chrome.see_other("/storage"));
        }
        other => return Err(UiError::bad_request(format!("unknown experiment action {other:?}"))),
    }
    Ok(chrome.see_other(&format!("/experiments/{id}")))
}
