//! `weir storage purge --yes --confirm-name NAME`: the only command that deletes data.

use std::process::ExitCode;

use weir_store::StoreAdmin;

use super::{describe_leases, live_leases, object_keys, open};
use crate::config::StorageArgs;

pub async fn run(args: &StorageArgs, yes: bool, confirm_name: Option<&str>) -> anyhow::Result<ExitCode> {
    let opened = open(args).await?;
    let (store, artifacts, settings) = (&opened.store, &opened.artifacts, &opened.settings);
    if !yes {
        eprintln!(
            "weir: purge deletes every pipeline, run and artifact of deployment {:?}; add --yes to go ahead",
            settings.name
        );
        return Ok(ExitCode::from(2));
    }
    if confirm_name != Some(settings.name.as_str()) {
        eprintln!(
            "weir: type the deployment's name back: --confirm-name {} (got {})",
            settings.name,
            confirm_name.map(|n| format!("{n:?}")).unwrap_or_else(|| "nothing".into())
        );
        return Ok(ExitCode::from(2));
    }
    let live = live_leases(store.as_ref()).await?;
    if !live.is_empty() {
        eprintln!("weir: refusing to purge while weir is serving this storage: {}", describe_leases(&live));
        return Ok(ExitCode::from(2));
    }
    let keys = object_keys(artifacts).await?;
    for key in &keys {
        artifacts.delete(key).await?;
    }
    artifacts.delete(weir_artifacts::IDENTITY_KEY).await?;
    store.purge().await?;
    store.close().await;
    eprintln!("purged deployment {:?}: {} objects and every weir table deleted", settings.name, keys.len());
    Ok(ExitCode::SUCCESS)
}
