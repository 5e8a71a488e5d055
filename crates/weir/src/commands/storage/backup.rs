//! `weir storage backup -o FILE`: both stores in one archive that restores on any backend.
//!
//! The metadata is read in one transaction and checked against the objects listed before it,
//! then the objects are copied, so an archive never holds metadata pointing at objects it
//! lacks (the mismatch KFP users met with separate database and bucket backups). Both stream
//! into the archive: memory holds a chunk of rows or one object, whatever the store's size.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use weir_artifacts::ArtifactStore;
use weir_store::{SchemaState, StoreAdmin, TableDump};
use weir_store_sql::{redact_url, SqlStore};

use super::archive::{Manifest, Writer, FORMAT, FORMAT_VERSION};
use super::{object_keys, open};
use crate::config::{Settings, StorageArgs};
use weir_gc::references::{covered, references, Reference};

pub async fn run(args: &StorageArgs, output: &Path) -> anyhow::Result<ExitCode> {
    let opened = open(args).await?;
    let manifest = write_backup(&opened.settings, &opened.store, &opened.artifacts, output).await?;
    opened.store.close().await;
    eprintln!(
        "backup of deployment {} (schema version {}): {} rows in {} tables, {} objects -> {}",
        manifest.identity.id,
        manifest.schema_version,
        manifest.tables.values().map(|t| t.rows).sum::<usize>(),
        manifest.tables.len(),
        manifest.objects.len(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a backup of the paired stores to `output` (atomically: a partial file is removed).
pub async fn write_backup(
    settings: &Settings,
    store: &SqlStore,
    artifacts: &ArtifactStore,
    output: &Path,
) -> anyhow::Result<Manifest> {
    let identity = match store.schema_state().await? {
        SchemaState::Weir { identity: Some(identity), .. } => identity,
        _ => bail!("the metadata store holds no weir deployment; nothing to back up"),
    };
    match artifacts.read_identity().await? {
        Some(marker) if marker.id == identity.id => {}
        other => bail!(
            "the artifact store belongs to {} but the metadata store to {}; back up a matching pair",
            other.map(|m| m.id).unwrap_or_else(|| "no deployment".into()),
            identity.id
        ),
    }
    let keys = std::sync::Arc::new(object_keys(artifacts).await?);
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        weir_version: env!("CARGO_PKG_VERSION").into(),
        created_at: weir_api_model::serde_helpers::format_timestamp(&weir_api_model::serde_helpers::from_millis(
            super::now_ms(),
        )),
        schema_version: 0,
        identity,
        deployment: settings.name.clone(),
        source_metadata: redact_url(&settings.metadata_url),
        source_artifacts: settings.artifacts_url.clone(),
        tables: BTreeMap::new(),
        objects: BTreeMap::new(),
    };
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = output.with_extension("partial");
    let writer = Writer::create(&partial, manifest)?;
    let result = async {
        // The metadata streams from one read transaction into the archive, written on a
        // blocking thread so reading and compressing overlap; each chunk's references are
        // checked against the object listing as it passes.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<TableDump>(8);
        let (store_url, listed) = (artifacts.url().to_string(), keys.clone());
        let write = tokio::task::spawn_blocking(move || {
            let mut writer = writer;
            let mut missing = Vec::new();
            while let Some(mut chunk) = rx.blocking_recv() {
                // Leases describe running processes, not data.
                if chunk.name == "server_leases" {
                    chunk.rows.clear();
                }
                for reference in references(&chunk, &store_url) {
                    if covered(&reference, &listed).is_none() {
                        let label = format!("{} ({})", reference.key, reference.what);
                        missing.push((reference, label));
                    }
                }
                if let Err(e) = writer.add_chunk(&chunk) {
                    writer.abandon();
                    return Err(e);
                }
            }
            Ok((writer, missing))
        });
        let (exported, written) = tokio::join!(store.export_tables(tx), write);
        let (mut writer, missing) = written.context("the archive writer stopped")??;
        let version = match exported {
            Ok(version) => version,
            Err(e) => {
                writer.abandon();
                return Err(e.into());
            }
        };
        writer.set_schema_version(version);
        // The objects were listed before the metadata was read, so an object written meanwhile
        // (and then referenced) is missing from that listing: list again before giving up.
        let keys = if missing.is_empty() { keys } else { std::sync::Arc::new(object_keys(artifacts).await?) };
        let missing: Vec<&(Reference, String)> = missing.iter().filter(|(r, _)| covered(r, &keys).is_none()).collect();
        if !missing.is_empty() {
            writer.abandon();
            bail!(
                "the artifact store lacks {} object(s) the metadata refers to, e.g. {}; run `weir storage check`",
                missing.len(),
                missing[0].1
            );
        }
        let bar = progress(keys.len() as u64, "copying objects");
        for key in keys.iter() {
            let bytes = artifacts.get(key).await.with_context(|| format!("cannot read object {key}"))?;
            let key = key.clone();
            writer = tokio::task::spawn_blocking(move || writer.add_object(&key, &bytes).map(|()| writer))
                .await
                .context("the archive writer stopped")??;
            bar.inc(1);
        }
        bar.finish_and_clear();
        tokio::task::spawn_blocking(move || writer.finish()).await.context("the archive writer stopped")?
    }
    .await;
    match result {
        Ok(manifest) => {
            std::fs::rename(&partial, output).with_context(|| format!("cannot write {}", output.display()))?;
            Ok(manifest)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

pub(crate) fn progress(len: u64, message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(message.to_string());
    bar
}
