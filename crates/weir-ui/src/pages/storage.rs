//! The storage page: identity, schema and pending migrations, the weirs serving it, row and
//! object counts, the last `weir storage check` and the latest removals.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::view::{html, time, Chrome, UiResult};
use crate::Ui;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StorageQuery {
    /// Count the artifact store's objects (a listing of the whole store, so only on request).
    pub objects: bool,
}

pub(crate) struct Server {
    pub deployment: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub heartbeat: String,
    pub live: bool,
}

pub(crate) struct LastCheck {
    pub at: String,
    pub ok: bool,
    pub summary: String,
    pub problems: Vec<String>,
}

/// One removal of the history.
pub(crate) struct Removal {
    pub at: String,
    pub kind: String,
    pub target: String,
    pub policy: String,
    pub action: String,
    pub objects: i64,
    pub bytes: i64,
    pub done: bool,
}

#[derive(Template)]
#[template(path = "storage.html")]
struct StoragePage {
    chrome: Chrome,
    title: String,
    status: weir_service::StorageStatus,
    paired: bool,
    pending: String,
    servers: Vec<Server>,
    last_check: Option<LastCheck>,
    removals: Vec<Removal>,
}

pub(crate) async fn page(State(ui): State<Ui>, chrome: Chrome, Query(q): Query<StorageQuery>) -> UiResult {
    let status = ui.services.storage.status(q.objects).await?;
    let now = ui.services.context.clock.now_ms();
    let servers = status
        .servers
        .iter()
        .map(|l| Server {
            deployment: l.deployment.clone(),
            host: l.host.clone(),
            pid: l.pid,
            version: l.version.clone(),
            heartbeat: format!("{} s ago", (now - l.heartbeat_at).max(0) / 1000),
            live: now - l.heartbeat_at < weir_service::storage::LEASE_TTL_MS,
        })
        .collect();
    let last_check = status.last_check.as_ref().map(|c| LastCheck {
        at: time(c["at"].as_i64().unwrap_or_default()),
        ok: c["ok"].as_bool().unwrap_or(false),
        summary: format!(
            "{} references against {} objects: {} missing, {} orphans",
            c["referenced"], c["objects"], c["missing"], c["orphans"]
        ),
        problems: c["problems"]
            .as_array()
            .map(|p| p.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
    });
    let removals = ui
        .services
        .retention
        .history(Some(50), "")
        .await?
        .records
        .into_iter()
        .map(|r| Removal {
            at: time(r.at),
            target: if r.display_name.is_empty() {
                r.target_id
            } else {
                format!("{} ({})", r.display_name, r.target_id)
            },
            kind: r.kind,
            policy: r.policy,
            action: r.detail["action"].as_str().unwrap_or("delete").to_string(),
            objects: r.objects,
            bytes: r.bytes,
            done: r.done_at > 0,
        })
        .collect();
    let pending = if status.pending_migrations.is_empty() {
        "none".to_string()
    } else {
        status.pending_migrations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
    };
    html(StoragePage {
        chrome,
        title: "Storage".into(),
        paired: status.identity.is_some() && status.identity == status.artifact_identity,
        pending,
        servers,
        last_check,
        removals,
        status,
    })
}
