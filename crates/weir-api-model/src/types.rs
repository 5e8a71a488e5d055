//! Request and response messages of the v2beta1 services, named as KFP names them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::serde_helpers::{int64, is_false, timestamp};

fn is_empty_map<K, V>(map: &BTreeMap<K, V>) -> bool {
    map.is_empty()
}

/// `google.rpc.Status`, the body of every gRPC-gateway error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default)]
    pub details: Vec<Value>,
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Healthz {
    pub commit_sha: String,
    pub tag_name: String,
    pub multi_user: bool,
    pub pipeline_store: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipeline {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
    #[serde(skip_serializing_if = "is_empty_map")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageUrl {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineVersion {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_url: Option<PackageUrl>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub code_source_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
    #[serde(skip_serializing_if = "is_empty_map")]
    pub tags: BTreeMap<String, String>,
}

/// Body of `POST /pipelines/create`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CreatePipelineAndVersionRequest {
    pub pipeline: Option<Pipeline>,
    pub pipeline_version: Option<PipelineVersion>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Experiment {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub experiment_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub storage_state: String,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub last_run_created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PipelineVersionReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RuntimeConfig {
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_root: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeStatus {
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub update_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunDetails {
    #[serde(skip_serializing_if = "is_zero_i64", with = "int64_plain")]
    pub pipeline_context_id: i64,
    #[serde(skip_serializing_if = "is_zero_i64", with = "int64_plain")]
    pub pipeline_run_context_id: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub task_details: Vec<Value>,
}

/// int64 that is never absent in Rust but omitted on the wire when zero.
mod int64_plain {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(super::int64::deserialize(d)?.unwrap_or_default())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Run {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub experiment_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub storage_state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_version_reference: Option<PipelineVersionReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<DateTime<Utc>>,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_details: Option<RunDetails>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub recurring_run_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_history: Vec<RuntimeStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CronSchedule {
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cron: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PeriodicSchedule {
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(with = "int64", skip_serializing_if = "Option::is_none")]
    pub interval_second: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Trigger {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron_schedule: Option<CronSchedule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub periodic_schedule: Option<PeriodicSchedule>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RecurringRun {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub recurring_run_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pipeline_version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_version_reference: Option<PipelineVersionReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    #[serde(with = "int64", skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
    #[serde(skip_serializing_if = "is_false")]
    pub no_catchup: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub experiment_id: String,
}

/// A list response. `items_key` differs per service (`recurringRuns` is the one camelCase key).
#[derive(Debug, Clone, Default)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub total_size: i64,
    pub next_page_token: String,
}

impl<T: Serialize> ListResponse<T> {
    /// Render as KFP does: empty lists and the last page's token are omitted.
    pub fn to_json(&self, items_key: &str) -> Value {
        let mut out = Map::new();
        if !self.items.is_empty() {
            out.insert(items_key.to_string(), serde_json::to_value(&self.items).unwrap_or(Value::Null));
        }
        out.insert("total_size".into(), Value::from(self.total_size));
        if !self.next_page_token.is_empty() {
            out.insert("next_page_token".into(), Value::from(self.next_page_token.clone()));
        }
        Value::Object(out)
    }
}

/// Query parameters shared by every list call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    pub page_token: String,
    pub page_size: Option<String>,
    pub sort_by: String,
    pub filter: String,
    pub namespace: String,
    pub experiment_id: String,
}
