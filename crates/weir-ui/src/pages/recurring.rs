//! Recurring runs: list, a page with the trigger, the next fire times and the runs it made,
//! enable, disable and delete.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use weir_api_model::ListParams;
use weir_store::{RecurringRun, Trigger};

use super::runs::{run_rows, RunFilters, RunRow};
use super::Names;
use crate::view::{html, query_escape, time, Chrome, UiError, UiResult};
use crate::Ui;

/// How many upcoming fire times a recurring run's page lists.
const NEXT_FIRES: usize = 5;

pub(crate) struct RecurringRow {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub trigger: String,
    pub experiment: String,
    pub experiment_id: String,
    pub created: String,
}

pub(crate) fn trigger_text(trigger: &Trigger) -> String {
    let window = |start: &Option<i64>, end: &Option<i64>| {
        let mut text = String::new();
        if let Some(s) = start {
            text.push_str(&format!(", from {}", time(*s)));
        }
        if let Some(e) = end {
            text.push_str(&format!(", until {}", time(*e)));
        }
        text
    };
    match trigger {
        Trigger::Cron { cron, start_time, end_time } => format!("cron {cron}{}", window(start_time, end_time)),
        Trigger::Periodic { interval_second, start_time, end_time } => {
            format!("every {interval_second} s{}", window(start_time, end_time))
        }
    }
}

pub(crate) async fn recurring_rows(ui: &Ui, items: &[RecurringRun]) -> Vec<RecurringRow> {
    let mut names = Names::default();
    let mut rows = Vec::with_capacity(items.len());
    for r in items {
        rows.push(RecurringRow {
            id: r.id.clone(),
            name: r.display_name.clone(),
            enabled: r.enabled,
            trigger: trigger_text(&r.trigger),
            experiment: names.experiment(&ui.services, &r.experiment_id).await,
            experiment_id: r.experiment_id.clone(),
            created: time(r.created_at),
        });
    }
    rows
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListQuery {
    pub page_token: String,
}

#[derive(Template)]
#[template(path = "recurring_runs.html")]
struct RecurringRunsPage {
    chrome: Chrome,
    title: String,
    rows: Vec<RecurringRow>,
    next_href: String,
}

pub(crate) async fn list(State(ui): State<Ui>, chrome: Chrome, Query(q): Query<ListQuery>) -> UiResult {
    let params = ListParams {
        page_size: Some("50".into()),
        page_token: q.page_token,
        sort_by: "created_at desc".into(),
        ..Default::default()
    };
    let page = ui.services.recurring_runs.list(&params).await?;
    let rows = recurring_rows(&ui, &page.items).await;
    let next_href = if page.next_page_token.is_empty() {
        String::new()
    } else {
        format!("{}/recurring-runs?page_token={}", chrome.base, query_escape(&page.next_page_token))
    };
    html(RecurringRunsPage { chrome, title: "Recurring runs".into(), rows, next_href })
}

#[derive(Template)]
#[template(path = "recurring_run.html")]
struct RecurringRunPage {
    chrome: Chrome,
    title: String,
    row: RecurringRow,
    max_concurrency: i64,
    catchup: bool,
    next_fires: Vec<String>,
    timezone: String,
    runs: Vec<RunRow>,
    metric_columns: Vec<String>,
    pipeline_href: String,
}

pub(crate) async fn details(State(ui): State<Ui>, chrome: Chrome, Path(id): Path<String>) -> UiResult {
    let recurring = ui.services.recurring_runs.get(&id).await?;
    let tz = ui.config.timezone;
    let mut next_fires = Vec::new();
    if recurring.enabled {
        let mut after = ui.services.context.clock.now_ms().max(recurring.last_slot_at);
        while next_fires.len() < NEXT_FIRES {
            let Some(next) = weir_service::scheduler::next_slot(&recurring, after, tz) else { break };
            next_fires.push(format!("{} UTC", time(next)));
            after = next;
        }
    }
    let filters = RunFilters { recurring_run: id.clone(), ..Default::default() };
    let page = ui.services.runs.list(&filters.list_params()?).await?;
    let (runs, metric_columns) = run_rows(&ui, &chrome, &page.items).await;
    let pipeline_href = super::pipeline_href(&chrome.base, &recurring.pipeline_id, &recurring.pipeline_version_id);
    let row = recurring_rows(&ui, std::slice::from_ref(&recurring)).await.remove(0);
    html(RecurringRunPage {
        chrome,
        title: recurring.display_name.clone(),
        row,
        max_concurrency: recurring.max_concurrency,
        catchup: !recurring.no_catchup,
        next_fires,
        timezone: tz.to_string(),
        runs,
        metric_columns,
        pipeline_href,
    })
}

/// `POST /recurring-runs/{id}/actions/{enable|disable|delete}`.
pub(crate) async fn action(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path((id, action)): Path<(String, String)>,
) -> UiResult<Response> {
    let recurring = &ui.services.recurring_runs;
    match action.as_str() {
        "enable" => recurring.enable(&id).await?,
        "disable" => recurring.disable(&id).await?,
        "delete" => {
            recurring.delete(&id).await?;
            return Ok(chrome.see_other("/recurring-runs"));
        }
        other => return Err(UiError::bad_request(format!("unknown recurring run action {other:?}"))),
    }
    Ok(chrome.see_other(&format!("/recurring-runs/{id}")))
}
