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
use weir_store::{SchemaState, StoreAdmin, TableDump};

use super::archive::{for_each_chunk, for_each_object, verify};
use super::backup::progress;
use super::open;
use crate::config::StorageArgs;

/// Artifact URIs and pipeline roots name the store they live in; moved to another store, they
/// are rewritten to name it instead.
fn relocate(chunk: &mut TableDump, from: &str, to: &str) {
    let (from, to) = (from.trim_end_matches('/'), to.trim_end_matches('/'));
    if from == to {
        return;
    }
    let column = match chunk.name.as_str() {
        "artifacts" => "uri",
        "runs" | "recurring_runs" => "pipeline_root",
        _ => return,
    };
    let Some(i) = chunk.columns.iter().position(|c| c == column) else { return };
    for row in &mut chunk.rows {
        if let Some(serde_json::Value::String(value)) = row.get_mut(i) {
            if let Some(rest) = value.strip_prefix(from).filter(|r| r.is_empty() || r.starts_with('/')) {
                *value = format!("{to}{rest}");
            }
        }
    }
}

pub async fn run(args: &StorageArgs, input: &Path) -> anyhow::Result<ExitCode> {
    let manifest = {
        let input = input.to_path_buf();
        tokio::task::spawn_blocking(move || verify(&input)).await?
    }
    .with_context(|| format!("cannot restore {}", input.display()))?;
    let opened = open(args).await?;
    let (store, artifacts) = (&opened.store, &opened.artifacts);
    let known = weir_store_sql::migration_versions(store.dialect());
    if !known.contains(&manifest.schema_version) {
        bail!(
            "the archive has schema version {}, which this weir does not know (it knows {known:?}); use a newer weir",
            manifest.schema_version
        );
    }
    // Every row is checked against the schema before anything is written.
    {
        let (path, version, tables, checker) =
            (input.to_path_buf(), manifest.schema_version, manifest.tables.len(), store.clone());
        tokio::task::spawn_blocking(move || {
            for_each_chunk(&path, tables, |chunk| Ok(checker.check_chunk(version, &chunk)?))
        })
        .await?
        .with_context(|| format!("cannot restore {}", input.display()))?;
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

    // Objects stream from the archive one at a time (a reader thread, a small queue).
    let bar = progress(manifest.objects.len() as u64, "restoring objects");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(2);
    let path = input.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        for_each_object(&path, |key, bytes| {
            tx.blocking_send((key.to_string(), bytes)).map_err(|_| anyhow::anyhow!("restore stopped"))
        })
    });
    let mut put = Ok(());
    while let Some((key, bytes)) = rx.recv().await {
        if let Err(e) = artifacts.put(&key, Bytes::from(bytes)).await {
            put = Err(anyhow::Error::new(e).context(format!("cannot write object {key}")));
            break;
        }
        bar.inc(1);
    }
    drop(rx);
    put?;
    reader.await??;
    bar.finish_and_clear();

    // The metadata streams into one transaction: all of it lands, or none.
    let (tx, rx) = tokio::sync::mpsc::channel::<TableDump>(8);
    let (path, tables) = (input.to_path_buf(), manifest.tables.len());
    let (from, to) = (manifest.source_artifacts.clone(), artifacts.url().to_string());
    let reader = tokio::task::spawn_blocking(move || {
        for_each_chunk(&path, tables, |mut chunk| {
            relocate(&mut chunk, &from, &to);
            tx.blocking_send(chunk).map_err(|_| anyhow::anyhow!("the metadata load stopped"))
        })
    });
    let rows = manifest.tables.values().map(|t| t.rows as u64).sum();
    let loaded = store.import_tables(manifest.schema_version, rows, rx).await;
    let read = reader.await?;
    loaded.context("cannot load the metadata")?;
    read?;
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
