//! Where backups go, and `weir storage backups`: the backups kept in the object store.
//!
//! On Kubernetes a weir pod's data folder is scratch (an emptyDir), so a backup written there
//! would go with the pod. When the artifact store is remote (S3, GCS, Azure) an upgrade's
//! backup is therefore kept in the store itself, under `.weir/backups/`: beside the data it
//! protects, on the volume or bucket that outlives every pod, and out of the way of backups
//! (which copy every object outside `.weir/`) and of `weir storage check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use weir_artifacts::ArtifactStore;
use weir_store_sql::SqlStore;

use super::archive::Manifest;
use super::backup::write_backup;
use super::{open, Output};
use crate::config::{Settings, StorageArgs};

/// The prefix under which backups are kept in the object store.
pub const BACKUP_PREFIX: &str = ".weir/backups/";

/// Where a backup is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTarget {
    /// The artifact store, under [`BACKUP_PREFIX`].
    Store,
    /// A local folder.
    Folder(PathBuf),
}

impl BackupTarget {
    /// `store`, or a folder's path.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "" => Err("--backup-to needs `store` or a folder".into()),
            "store" => Ok(Self::Store),
            path => Ok(Self::Folder(PathBuf::from(path))),
        }
    }

    /// The artifact store when it is remote (it outlives the machine or pod), else the data
    /// folder's `backups/` beside the local store.
    pub fn default_for(settings: &Settings) -> Self {
        if weir_artifacts::layout::local_store_root(&settings.artifacts_url).is_some() {
            Self::Folder(settings.data_dir.join("backups"))
        } else {
            Self::Store
        }
    }
}

/// Takes a backup named `name` to `target`; returns where it went, for people to read.
pub async fn take_backup(
    settings: &Settings,
    store: &SqlStore,
    artifacts: &ArtifactStore,
    target: &BackupTarget,
    name: &str,
) -> anyhow::Result<(String, Manifest)> {
    match target {
        BackupTarget::Folder(dir) => {
            let path = dir.join(name);
            let manifest = write_backup(settings, store, artifacts, &path).await?;
            Ok((path.display().to_string(), manifest))
        }
        BackupTarget::Store => {
            // Written to a local file first (the archive is checksummed and verified as a whole),
            // then uploaded in parts; the local copy goes either way.
            let scratch = tempfile::Builder::new()
                .prefix("weir-backup-")
                .tempdir_in(scratch_dir(settings))
                .context("cannot make a scratch folder for the backup")?;
            let local = scratch.path().join(name);
            let manifest = write_backup(settings, store, artifacts, &local).await?;
            let key = format!("{BACKUP_PREFIX}{name}");
            artifacts.put_file(&key, &local).await.with_context(|| format!("cannot store the backup as {key}"))?;
            Ok((format!("{}/{key}", artifacts.url().trim_end_matches('/')), manifest))
        }
    }
}

/// The data folder when it can be written, else the system's temporary folder.
fn scratch_dir(settings: &Settings) -> PathBuf {
    if std::fs::create_dir_all(&settings.data_dir).is_ok() {
        settings.data_dir.clone()
    } else {
        std::env::temp_dir()
    }
}

/// `weir storage backups`: list the backups in the object store, or fetch one.
pub async fn run(
    args: &StorageArgs,
    get: Option<&str>,
    output_file: Option<&Path>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let opened = open(args).await?;
    let artifacts = &opened.artifacts;
    if let Some(name) = get {
        let Some(file) = output_file else { anyhow::bail!("--get needs -o FILE, the file to write") };
        let name = name.strip_prefix(BACKUP_PREFIX).unwrap_or(name);
        if name.is_empty() || name.contains('/') {
            anyhow::bail!("{name:?} is not a backup's name; `weir storage backups` lists them");
        }
        let key = format!("{BACKUP_PREFIX}{name}");
        if !artifacts.exists(&key).await? {
            anyhow::bail!("no backup named {name} in {}; `weir storage backups` lists them", artifacts.url());
        }
        let size = artifacts.get_to_file(&key, file).await.with_context(|| format!("cannot fetch {key}"))?;
        eprintln!("{name}: {size} bytes -> {}", file.display());
        opened.store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let listed = artifacts.list_meta(BACKUP_PREFIX).await?;
    opened.store.close().await;
    match output {
        Output::Json => {
            let rows: Vec<_> = listed
                .iter()
                .map(|o| {
                    json!({
                        "name": o.key.strip_prefix(BACKUP_PREFIX).unwrap_or(&o.key),
                        "key": o.key, "size": o.size,
                        "modified": weir_api_model::serde_helpers::format_timestamp(
                            &weir_api_model::serde_helpers::from_millis(o.modified_ms)),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json!({ "backups": rows }))?);
        }
        Output::Text => {
            if listed.is_empty() {
                println!("no backups in {}", artifacts.url());
            }
            for o in &listed {
                let modified = weir_api_model::serde_helpers::format_timestamp(
                    &weir_api_model::serde_helpers::from_millis(o.modified_ms),
                );
                println!("{}  {:>12} bytes  {modified}", o.key.strip_prefix(BACKUP_PREFIX).unwrap_or(&o.key), o.size);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
