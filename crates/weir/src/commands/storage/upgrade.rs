//! `weir storage upgrade`: show the plan, refuse while a weir still serves the storage, take a
//! backup, then apply migrations one version at a time. Safe to run again after a failure:
//! applied versions are recorded and skipped.

use std::process::ExitCode;

use anyhow::bail;
use weir_artifacts::ArtifactStore;
use weir_store::{SchemaState, StoreAdmin};
use weir_store_sql::SqlStore;

use super::backups::{take_backup, BackupTarget};
use super::{describe_leases, live_leases, open};
use crate::config::{Settings, StorageArgs};

pub async fn run(args: &StorageArgs, dry_run: bool, backup_to: Option<BackupTarget>) -> anyhow::Result<ExitCode> {
    let opened = open(args).await?;
    let target = backup_to.unwrap_or_else(|| BackupTarget::default_for(&opened.settings));
    let code = match upgrade_storage(&opened.settings, &opened.store, &opened.artifacts, dry_run, &target).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e:#}");
            ExitCode::from(2)
        }
    };
    opened.store.close().await;
    Ok(code)
}

/// The whole upgrade procedure, shared with `weir server` under `upgrade: auto`.
pub async fn upgrade_storage(
    settings: &Settings,
    store: &SqlStore,
    artifacts: &ArtifactStore,
    dry_run: bool,
    backup_to: &BackupTarget,
) -> anyhow::Result<()> {
    let (identity, applied, known) = match store.schema_state().await? {
        SchemaState::Empty => bail!("the metadata store is empty: `weir server` initialises new storage"),
        SchemaState::Weir { identity, applied, known, .. } => (identity, applied, known),
    };
    let marker = artifacts.read_identity().await?;
    match (&identity, &marker) {
        (Some(a), Some(b)) if a.id == b.id => {}
        _ => bail!(
            "refusing to upgrade: the metadata store belongs to {} and the artifact store to {}",
            identity.map(|i| i.id).unwrap_or_else(|| "no deployment".into()),
            marker.map(|m| m.id).unwrap_or_else(|| "no deployment".into())
        ),
    }
    let head = known.iter().copied().max().unwrap_or_default();
    let current = applied.iter().copied().max().unwrap_or_default();
    if let Some(newer) = applied.iter().copied().filter(|v| !known.contains(v)).max() {
        bail!("the schema (version {newer}) is newer than this weir's ({head}); an old binary never writes a newer schema");
    }
    let pending: Vec<i64> = known.iter().copied().filter(|v| !applied.contains(v)).collect();
    if pending.is_empty() {
        eprintln!("schema version {current} is this weir's; nothing to do");
        return Ok(());
    }
    let migrator = weir_store_sql::MIGRATORS.iter().find(|(d, _)| *d == store.dialect()).map(|(_, m)| *m);
    eprintln!("upgrade plan: schema version {current} -> {head}");
    for version in &pending {
        let description = migrator
            .and_then(|m| m.iter().find(|x| x.version == *version))
            .map(|m| m.description.to_string())
            .unwrap_or_default();
        eprintln!("  {version}: {description}");
    }
    if dry_run {
        eprintln!("dry run: nothing changed");
        return Ok(());
    }
    let live = live_leases(store).await?;
    if !live.is_empty() {
        bail!("refusing to upgrade while weir is serving this storage: {}; stop it first", describe_leases(&live));
    }
    // Unique even for two upgrades started in the same millisecond.
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("weir-backup-v{current}-{}-{}.tar.gz", super::now_ms(), &unique[..8]);
    let (place, _) = take_backup(settings, store, artifacts, backup_to, &name).await?;
    eprintln!("backup taken: {place}");
    let bar = super::backup::progress(pending.len() as u64, "migrating");
    // Another upgrade may be applying the same migrations: each is applied once, under the
    // migration lock, by whichever upgrade gets there first.
    let mut applied_here = Vec::new();
    for version in pending {
        bar.set_message(format!("applying {version}"));
        applied_here.extend(store.migrate_to(version).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if applied_here.is_empty() {
        eprintln!("schema version {head}: another upgrade applied the pending migrations meanwhile (applied here: [])");
    } else {
        eprintln!("upgraded to schema version {head} (applied here: {applied_here:?})");
    }
    Ok(())
}
