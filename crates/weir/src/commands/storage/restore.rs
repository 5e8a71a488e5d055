//! `weir storage restore -i FILE`: load an archive into empty storage, on any backend.
//!
//! Everything is checked before anything is written. Objects go first, then the metadata in
//! one transaction with the identity marked as initialising, then the identity marker; a start
//! (or this command) completes the identity, so an interrupted restore is never mistaken for
//! a finished one.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use bytes::Bytes;
use weir_artifacts::IdentityMarker;
use weir_store::{SchemaState, StoreAdmin};

use super::archive::{for_each_object, verify};
use super::backup::progress;
use super::open;
use crate::config::StorageArgs;

/// Artifact URIs and pipeline roots name the store they live in; moved to another store, they
/// are rewritten to name it instead.
fn relocate(mut snapshot: weir_store::Snapshot, from: &str, to: &str) -> weir_store::Snapshot {
    let (from, to) = (from.trim_end_matches('/'), to.trim_end_matches('/'));
    if from == to {
        return snapshot;
    }
    for (table, column) in [("artifacts", "uri"), ("runs", "pipeline_root"), ("recurring_runs", "pipeline_root")] {
        let Some(dump) = snapshot.tables.iter_mut().find(|t| t.name == table) else { continue };
        let Some(i) = dump.columns.iter().position(|c| c == column) else { continue };
        for row in &mut dump.rows {
            if let Some(serde_json::Value::String(value)) = row.get_mut(i) {
                if let Some(rest) = value.strip_prefix(from).filter(|r| r.is_empty() || r.starts_with('/')) {
                    *value = format!("{to}{rest}");
                }
            }
        }
    }
    snapshot
}

pub async fn run(args: &StorageArgs, input: &Path) -> anyhow::Result<ExitCode> {
    let verified = verify(input).with_context(|| format!("cannot restore {}", input.display()))?;
    let manifest = &verified.manifest;
    let opened = open(args).await?;
    let (store, artifacts) = (&opened.store, &opened.artifacts);
    let known = weir_store_sql::migration_versions(store.dialect());
    if !known.contains(&manifest.schema_version) {
        bail!(
            "the archive has schema version {}, which this weir does not know (it knows {known:?}); use a newer weir",
            manifest.schema_version
        );
    }
    match store.schema_state().await? {
        SchemaState::Empty => {}
        SchemaState::Weir { identity: None, .. } if store.table_counts().await?.iter().all(|(_, n)| *n == 0) => {}
        SchemaState::Weir { identity, .. } => bail!(
            "the metadata store is not empty (it holds deployment {}); restore needs empty storage",
            identity.map(|i| i.id).unwrap_or_else(|| "with rows but no identity".into())
        ),
    }
    if let Some(marker) = artifacts.read_identity().await? {
        bail!("the artifact store is not empty (it belongs to deployment {}); restore needs empty storage", marker.id);
    }
    store.migrate_to(manifest.schema_version).await?;

    let bar = progress(manifest.objects.len() as u64, "restoring objects");
    let mut pending = Vec::new();
    for_each_object(input, |key, bytes| {
        pending.push((key.to_string(), bytes));
        Ok(())
    })?;
    for (key, bytes) in pending {
        artifacts.put(&key, Bytes::from(bytes)).await.with_context(|| format!("cannot write object {key}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let snapshot = relocate(verified.snapshot.clone(), &manifest.source_artifacts, artifacts.url());
    store.import_snapshot(&snapshot).await.context("cannot load the metadata")?;
    artifacts
        .write_identity(&IdentityMarker { id: manifest.identity.id.clone(), created_at: manifest.identity.created_at })
        .await?;
    store.finish_identity().await?;
    store.close().await;
    eprintln!(
        "restored deployment {} (schema version {}): {} rows, {} objects",
        manifest.identity.id,
        manifest.schema_version,
        manifest.tables.values().map(|t| t.rows).sum::<usize>(),
        manifest.objects.len()
    );
    if manifest.schema_version < known.iter().copied().max().unwrap_or_default() {
        eprintln!("the archive's schema is older than this weir's: run `weir storage upgrade` next");
    }
    Ok(ExitCode::SUCCESS)
}
