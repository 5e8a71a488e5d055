//! `weir storage purge --yes --confirm-name NAME`: the only command that deletes data.

use std::process::ExitCode;

use weir_store::{SchemaState, StoreAdmin};

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
    // What proves the caller means this storage: the name it was initialised under, or its
    // identity. The default name `weir` proves nothing (every deployment left unnamed has
    // it), so such storage, and storage initialised before names were kept, takes the
    // identity only.
    let recorded = match store.schema_state().await? {
        SchemaState::Weir { identity: Some(identity), .. } => Some(identity),
        _ => None,
    };
    let marker = artifacts.read_identity().await?;
    let mut accepted: Vec<String> = Vec::new();
    if let Some(identity) = &recorded {
        if !identity.deployment.is_empty() && identity.deployment != crate::config::DEFAULT_NAME {
            accepted.push(identity.deployment.clone());
        }
        accepted.push(identity.id.clone());
    }
    if let Some(marker) = &marker {
        accepted.push(marker.id.clone());
    }
    if accepted.is_empty() {
        // Neither store has an identity: no deployment finished initialising here.
        accepted.push(settings.name.clone());
    }
    if !confirm_name.is_some_and(|given| accepted.iter().any(|a| a == given)) {
        eprintln!(
            "weir: type back the name this storage was initialised under, or its identity (see `weir storage \
             status`): --confirm-name {} (got {})",
            accepted[0],
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
