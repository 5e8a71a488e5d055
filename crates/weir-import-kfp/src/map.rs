//! KFP's encodings decoded (states, storage states, namespaces, parameters, specs) and the
//! shapes its rows take in weir: what the checksums are computed over, and what an apply
//! writes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::report::hex;
use crate::source::TextRow;

/// A column's text; NULL and absent read as "".
pub fn text<'a>(row: &'a TextRow, column: &str) -> &'a str {
    row.get(column).and_then(|v| v.as_deref()).unwrap_or("")
}

/// A seconds column as a number; 0, NULL and nonsense are "none".
pub fn seconds(row: &TextRow, column: &str) -> Option<i64> {
    text(row, column).trim().parse::<i64>().ok().filter(|s| *s > 0)
}

/// MySQL gives booleans as 1/0, PostgreSQL as true/false.
pub fn boolean(row: &TextRow, column: &str) -> bool {
    matches!(text(row, column).trim().to_ascii_lowercase().as_str(), "1" | "true" | "t")
}

/// `''` and `-` are KFP's "no namespace" (single-user mode).
pub fn namespace(row: &TextRow) -> String {
    match text(row, "Namespace") {
        "-" => String::new(),
        other => other.to_string(),
    }
}

/// A run's state in KFP's v2 words: `State` when set, else the v1 `Conditions` word, as KFP's
/// `RuntimeState.ToV2` reads them.
pub fn run_state(row: &TextRow) -> &'static str {
    match text(row, "State").trim() {
        "" => state_word(text(row, "Conditions")),
        state => state_word(state),
    }
}

/// One of KFP's state words (v2, or v1 `Conditions`) as a v2 state.
pub fn state_word(word: &str) -> &'static str {
    match word.trim().to_ascii_lowercase().as_str() {
        "succeeded" | "done" => "SUCCEEDED",
        "failed" | "error" => "FAILED",
        "running" | "enabled" | "ready" => "RUNNING",
        "pending" => "PENDING",
        "canceling" | "terminating" => "CANCELING",
        "canceled" | "cancelled" | "disabled" => "CANCELED",
        "skipped" => "SKIPPED",
        "paused" => "PAUSED",
        _ => "RUNTIME_STATE_UNSPECIFIED",
    }
}

/// Whether KFP's Argo workflow for a run in this state may still be running.
pub fn in_flight(state: &str) -> bool {
    matches!(state, "PENDING" | "RUNNING" | "CANCELING" | "PAUSED")
}

/// `AVAILABLE`/`ARCHIVED` and their v1 spellings (`STORAGESTATE_*`, `Disabled`).
pub fn archived(row: &TextRow) -> bool {
    let word = text(row, "StorageState").to_ascii_uppercase();
    word.contains("ARCHIVED") || word == "DISABLED"
}

/// What a spec text is: KFP's IR (runnable by weir), an Argo Workflow (KFP v1), or neither.
pub fn spec_format(spec: &str) -> &'static str {
    if spec.trim().is_empty() {
        return "none";
    }
    let first: Option<Value> = if spec.trim_start().starts_with('{') {
        serde_json::from_str(spec).ok()
    } else {
        serde_norway::Deserializer::from_str(spec).next().and_then(|doc| Value::deserialize(doc).ok())
    };
    match first {
        Some(v) if v.get("pipelineInfo").is_some() || v.get("root").is_some() => "ir",
        Some(v) if v.get("kind").and_then(Value::as_str) == Some("Workflow") => "argo",
        _ => "unknown",
    }
}

/// The spec a run or recurring run carries itself (v2 IR, else v1 Argo).
pub fn own_spec(row: &TextRow) -> Option<&str> {
    match (text(row, "PipelineSpecManifest"), text(row, "WorkflowSpecManifest")) {
        (v2, _) if !v2.trim().is_empty() => Some(v2),
        (_, v1) if !v1.trim().is_empty() => Some(v1),
        _ => None,
    }
}

/// Specs' formats by their digest: the runs of one version share their spec, and reading one
/// is the costliest part of a row.
#[derive(Default)]
pub struct Formats(std::collections::HashMap<String, &'static str>);

impl Formats {
    /// A spec's digest and format.
    pub fn of(&mut self, spec: Option<&str>) -> (Option<String>, &'static str) {
        let Some(spec) = spec else { return (None, "none") };
        let digest = sha256(spec);
        if self.0.len() >= 256 {
            self.0.clear();
        }
        let format = *self.0.entry(digest.clone()).or_insert_with(|| spec_format(spec));
        (Some(digest), format)
    }
}

pub fn sha256(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// A run's or recurring run's parameters as one JSON object: v2 `RuntimeParameters` (name →
/// value), else v1 `Parameters` (`[{name, value}]`). Text that is not JSON is kept as text.
pub fn parameters(row: &TextRow) -> Value {
    let v2 = text(row, "RuntimeParameters");
    if !v2.trim().is_empty() && v2.trim() != "null" {
        return serde_json::from_str(v2).unwrap_or_else(|_| Value::String(v2.to_string()));
    }
    let v1 = text(row, "Parameters");
    if v1.trim().is_empty() || v1.trim() == "null" {
        return Value::Object(Default::default());
    }
    match serde_json::from_str::<Value>(v1) {
        Ok(Value::Array(items)) => Value::Object(
            items
                .into_iter()
                .filter_map(|item| {
                    let name = item.get("name")?.as_str()?.to_string();
                    Some((name, item.get("value").cloned().unwrap_or(Value::Null)))
                })
                .collect(),
        ),
        _ => Value::String(v1.to_string()),
    }
}

#[derive(Debug, Serialize)]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub created_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Version {
    pub id: String,
    pub pipeline_id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub code_source_url: String,
    pub created_at: Option<i64>,
    /// Where the spec was found: column, uri, version-key, pipeline-key or missing.
    pub spec_source: &'static str,
    pub spec_sha256: Option<String>,
    pub format: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub created_at: Option<i64>,
    pub archived: bool,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: String,
    pub pipeline_id: String,
    pub pipeline_version_id: String,
    pub recurring_run_id: String,
    pub spec_sha256: Option<String>,
    pub format: &'static str,
    pub parameters: Value,
    pub pipeline_root: String,
    pub service_account: String,
    pub state: &'static str,
    pub state_history: Value,
    pub created_at: Option<i64>,
    pub scheduled_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub archived: bool,
    /// The Argo Workflow's name: where KFP's logs of the run are kept.
    pub argo_name: String,
}

#[derive(Debug, Serialize)]
pub struct RecurringRun {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: String,
    /// Whether that experiment is in the source (not part of the checksum).
    #[serde(skip)]
    pub experiment_known: bool,
    pub pipeline_id: String,
    pub pipeline_version_id: String,
    /// A spec stored with the schedule; unpinned schedules use the pipeline's latest version.
    pub spec_sha256: Option<String>,
    pub format: &'static str,
    /// KFP's cron text, seconds first (robfig/cron v1), or an interval.
    pub cron: Option<String>,
    pub cron_dialect: Option<&'static str>,
    pub interval_seconds: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub max_concurrency: i64,
    pub no_catchup: bool,
    pub enabled_in_kfp: bool,
    pub parameters: Value,
    pub pipeline_root: String,
    pub service_account: String,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}
