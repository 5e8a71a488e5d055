//! Weir's API for retention (`/apis/weir/v1/experiments/{id}/retention`,
//! `/apis/weir/v1/gc/history`, docs/retention.md): an experiment's own policies, and the
//! history of every removal.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema::Timestamp;

/// A retention policy: which finished runs go (or are archived), and when. A field it does
/// not know is refused (a misspelt `keep_last` must not pass as a policy without it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicyInfo {
    /// Unique within its set; the history names it.
    pub name: String,
    /// Run states it applies to (`SUCCEEDED`, `FAILED`, `CANCELED`, `SKIPPED`); none: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<String>,
    /// Runs that finished longer ago than this: `30d`, `12h`, `90m`, `45s`, `2w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
    /// Keeps the newest this many matching runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<i64>,
    /// Only archived runs, archived longer ago than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_for: Option<String>,
    /// `delete` (the default) or `archive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Keep the artifacts of the runs it deletes.
    #[serde(default)]
    pub keep_artifacts: bool,
}

/// An experiment's retention: its own policies, or the deployment's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ExperimentRetention {
    pub policies: Vec<RetentionPolicyInfo>,
    /// True when the experiment has no policies of its own and these are the deployment's.
    #[serde(default)]
    pub inherited: bool,
}

/// An experiment's own policies, replacing the deployment's for its runs (none: keep all).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetExperimentRetention {
    pub policies: Vec<RetentionPolicyInfo>,
}

/// One removal.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct GcRecordInfo {
    pub id: String,
    #[schema(value_type = Timestamp)]
    pub at: String,
    /// `run`, `experiment`, `pipeline_version`, `orphans`.
    pub kind: String,
    pub target_id: String,
    pub display_name: String,
    /// The policy that chose it, or who asked (`api`, `cli`).
    pub policy: String,
    /// What went (rows, state, the action taken).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Objects and bytes deleted so far.
    pub objects: i64,
    pub bytes: i64,
    /// When its last object went; absent while objects remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub done_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ListGcHistoryResponse {
    pub records: Vec<GcRecordInfo>,
    /// The next page's token; absent on the last page.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// `GET /apis/weir/v1/gc/history` parameters.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct GcHistoryParams {
    pub page_size: Option<i64>,
    #[serde(default)]
    pub page_token: String,
}
