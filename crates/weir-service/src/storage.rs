//! What a person asks of the storage while weir serves it (the UI's storage page): whose it
//! is, its schema, the weirs serving it, how much it holds, and the last `weir storage check`.

use std::sync::Arc;

use serde_json::Value;
use weir_store::{Lease, SchemaState};

use crate::error::ServiceResult;
use crate::Context;

/// A lease whose heartbeat is older than this belongs to a weir that stopped (the CLI's rule).
pub const LEASE_TTL_MS: i64 = 30_000;

#[derive(Debug, Clone, Default)]
pub struct StorageStatus {
    pub dialect: &'static str,
    pub identity: Option<String>,
    pub deployment: Option<String>,
    pub artifact_identity: Option<String>,
    pub artifacts_url: String,
    pub schema_version: Option<i64>,
    pub head_version: Option<i64>,
    pub pending_migrations: Vec<i64>,
    pub rows: Vec<(String, i64)>,
    pub servers: Vec<Lease>,
    /// Objects in the artifact store, when asked for (a listing of the whole store).
    pub objects: Option<usize>,
    /// The report `weir storage check` left, if one ran.
    pub last_check: Option<Value>,
}

#[derive(Clone)]
pub struct StorageService {
    ctx: Arc<Context>,
}

impl StorageService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    pub async fn status(&self, count_objects: bool) -> ServiceResult<StorageStatus> {
        let store = &self.ctx.store;
        let mut status = StorageStatus {
            dialect: store.dialect(),
            artifacts_url: self.ctx.artifacts.url().to_string(),
            ..Default::default()
        };
        if let SchemaState::Weir { identity, applied, known, .. } = store.schema_state().await? {
            status.identity = identity.as_ref().map(|i| i.id.clone());
            status.deployment = identity.map(|i| i.deployment).filter(|d| !d.is_empty());
            status.schema_version = applied.iter().max().copied();
            status.head_version = known.iter().max().copied();
            status.pending_migrations = known.iter().filter(|v| !applied.contains(v)).copied().collect();
            status.rows = store.table_counts().await?;
        }
        status.servers = store.leases().await?;
        status.artifact_identity = self.ctx.artifacts.read_identity().await?.map(|m| m.id);
        if count_objects {
            let keys = self.ctx.artifacts.list("").await?;
            status.objects = Some(keys.iter().filter(|k| !k.starts_with(weir_artifacts::RESERVED_PREFIX)).count());
        }
        status.last_check = match self.ctx.artifacts.get(weir_artifacts::LAST_CHECK_KEY).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(_) => None,
        };
        Ok(status)
    }
}
