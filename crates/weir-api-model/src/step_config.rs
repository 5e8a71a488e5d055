//! Weir's API for the secrets and config maps steps are given (`/apis/weir/v1/secrets`,
//! `/apis/weir/v1/configmaps`, docs/api.md): what kfp-kubernetes pipelines name as Kubernetes
//! Secrets and ConfigMaps. A secret's values go in and never come out: it is shown by its keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema::Timestamp;

/// A new secret or config map.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct StepConfigInput {
    /// A Kubernetes object name: lowercase letters, digits, `-` and `.`, at most 253.
    pub name: String,
    /// Key → value. Keys are what Kubernetes allows in a Secret: letters, digits, `-`, `_`, `.`.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// A secret (keys only) or a config map (keys and values).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StepConfigInfo {
    pub name: String,
    pub keys: Vec<String>,
    /// A config map's values; never set for a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    #[schema(value_type = Timestamp)]
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ListStepConfigsResponse {
    pub items: Vec<StepConfigInfo>,
}
