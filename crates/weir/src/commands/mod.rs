pub mod deploy;
pub mod import;
pub mod launcher;
pub mod run;
pub mod server;
pub mod step_config;
pub mod storage;

use std::sync::Arc;

use anyhow::Context;
use weir_artifacts::ArtifactStore;
use weir_store_sql::{redact_url, ConnectSettings, SqlStore};

use crate::config::Settings;

/// Opens both stores named by the settings (without checking them against each other).
pub async fn open_stores(settings: &Settings) -> anyhow::Result<(Arc<SqlStore>, ArtifactStore)> {
    let connect = ConnectSettings { max_connections: settings.max_connections, ..Default::default() };
    let store = SqlStore::connect(&settings.metadata_url, &connect)
        .await
        .with_context(|| format!("cannot open the metadata store {}", redact_url(&settings.metadata_url)))?;
    let artifacts = ArtifactStore::open(&settings.artifacts_url, &settings.s3)
        .with_context(|| format!("cannot open the artifact store {}", settings.artifacts_url))?;
    Ok((Arc::new(store), artifacts))
}

/// The name this machine (or pod) goes by in server leases.
pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}
