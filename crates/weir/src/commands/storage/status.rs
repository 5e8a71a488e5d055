//! `weir storage status`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::json;
use weir_store::{SchemaState, StoreAdmin};
use weir_store_sql::redact_url;

use super::{now_ms, object_keys, open, Output, LEASE_TTL_MS};
use crate::config::StorageArgs;

pub async fn run(args: &StorageArgs, output: Output) -> anyhow::Result<ExitCode> {
    let opened = open(args).await?;
    let (store, artifacts, settings) = (&opened.store, &opened.artifacts, &opened.settings);
    let schema = store.schema_state().await?;
    let marker = artifacts.read_identity().await?;
    let (recorded, initialising, applied, known) = match &schema {
        SchemaState::Empty => (None, false, Vec::new(), weir_store_sql::migration_versions(store.dialect())),
        SchemaState::Weir { identity, initialising, applied, known } => {
            (identity.clone(), *initialising, applied.clone(), known.clone())
        }
    };
    let identity = recorded.as_ref().map(|i| i.id.clone());
    // The name the storage was initialised under (what a purge asks for), if it has one.
    let initialised_as = recorded.as_ref().map(|i| i.deployment.clone()).filter(|n| !n.is_empty());
    let pending: Vec<i64> = known.iter().filter(|v| !applied.contains(v)).copied().collect();
    let rows: BTreeMap<String, i64> = if matches!(schema, SchemaState::Empty) {
        BTreeMap::new()
    } else {
        store.table_counts().await?.into_iter().collect()
    };
    let keys = object_keys(artifacts).await?;
    let mut by_prefix: BTreeMap<String, usize> = BTreeMap::new();
    for key in &keys {
        *by_prefix.entry(key.split('/').next().unwrap_or_default().to_string()).or_default() += 1;
    }
    let now = now_ms();
    let leases: Vec<serde_json::Value> = store
        .leases()
        .await?
        .iter()
        .map(|l| {
            json!({
                "id": l.id, "deployment": l.deployment, "host": l.host, "pid": l.pid, "version": l.version,
                "heartbeat_age_ms": now - l.heartbeat_at, "live": now - l.heartbeat_at < LEASE_TTL_MS,
            })
        })
        .collect();
    let paired = match (&identity, &marker) {
        (Some(a), Some(b)) => a == &b.id,
        _ => false,
    };
    let report = json!({
        "deployment": settings.name,
        "paired": paired,
        "metadata": {
            "url": redact_url(&settings.metadata_url),
            "dialect": StoreAdmin::dialect(store.as_ref()),
            "identity": identity,
            "deployment": initialised_as,
            "initialising": initialising,
            "schema_version": applied.iter().max(),
            "head_version": known.iter().max(),
            "pending_migrations": pending,
            "rows": rows,
        },
        "artifacts": {
            "url": settings.artifacts_url,
            "identity": marker.map(|m| m.id),
            "objects": keys.len(),
            "objects_by_prefix": by_prefix,
        },
        "servers": leases,
    });
    store.close().await;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let m = &report["metadata"];
    let a = &report["artifacts"];
    println!("deployment:        {}", settings.name);
    println!(
        "metadata store:    {} ({})",
        m["url"].as_str().unwrap_or_default(),
        m["dialect"].as_str().unwrap_or_default()
    );
    println!("  identity:        {}", m["identity"].as_str().unwrap_or("(none: empty)"));
    if let Some(name) = m["deployment"].as_str() {
        println!("  initialised as:  {name}");
    }
    println!("  schema version:  {} (this weir: {})", m["schema_version"], m["head_version"]);
    println!("  pending:         {}", m["pending_migrations"]);
    for (table, count) in &rows {
        println!("  {table:<24} {count} rows");
    }
    println!("artifact store:    {}", settings.artifacts_url);
    println!("  identity:        {}", a["identity"].as_str().unwrap_or("(none)"));
    println!("  objects:         {}", keys.len());
    for (prefix, count) in &by_prefix {
        println!("  {prefix:<24} {count} objects");
    }
    println!("paired:            {}", if paired { "yes" } else { "no" });
    if leases.is_empty() {
        println!("servers:           none");
    }
    for lease in &leases {
        println!(
            "server:            {} on {} (pid {}), heartbeat {} s ago{}",
            lease["deployment"].as_str().unwrap_or_default(),
            lease["host"].as_str().unwrap_or_default(),
            lease["pid"],
            lease["heartbeat_age_ms"].as_i64().unwrap_or_default() / 1000,
            if lease["live"] == true { "" } else { " (stale)" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
