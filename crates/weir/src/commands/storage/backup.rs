//! `weir storage backup -o FILE`: both stores in one archive that restores on any backend.
//!
//! The metadata is read in one transaction; objects are copied after, then checked against
//! what that metadata refers to, so an archive never holds metadata pointing at objects it
//! lacks (the mismatch KFP users met with separate database and bucket backups).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use weir_artifacts::ArtifactStore;
use weir_store::{SchemaState, StoreAdmin};
use weir_store_sql::{redact_url, SqlStore};

use super::archive::{Manifest, Writer, FORMAT, FORMAT_VERSION};
use super::references::{covered, references};
use super::{object_keys, open};
use crate::config::{Settings, StorageArgs};

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
    let mut snapshot = store.export_snapshot().await?;
    // Leases describe running processes, not data.
    for table in snapshot.tables.iter_mut().filter(|t| t.name == "server_leases") {
        table.rows.clear();
    }
    let keys = object_keys(artifacts).await?;
    let missing: Vec<String> = references(&snapshot, artifacts.url())
        .iter()
        .filter(|r| covered(r, &keys).is_none())
        .map(|r| format!("{} ({})", r.key, r.what))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the artifact store lacks {} object(s) the metadata refers to, e.g. {}; run `weir storage check`",
            missing.len(),
            missing[0]
        );
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        weir_version: env!("CARGO_PKG_VERSION").into(),
        created_at: weir_api_model::serde_helpers::format_timestamp(&weir_api_model::serde_helpers::from_millis(
            super::now_ms(),
        )),
        schema_version: snapshot.schema_version,
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
    let result = async {
        let mut writer = Writer::create(&partial, manifest)?;
        writer.add_snapshot(&snapshot)?;
        let bar = progress(keys.len() as u64, "copying objects");
        let copied: BTreeSet<&String> = keys.iter().collect();
        for key in copied {
            let bytes = artifacts.get(key).await.with_context(|| format!("cannot read object {key}"))?;
            writer.add_object(key, &bytes)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        writer.finish()
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
