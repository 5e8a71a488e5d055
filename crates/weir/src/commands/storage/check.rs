//! `weir storage check`: every object the metadata refers to exists; objects nothing refers to
//! are listed. Exits 1 when something the metadata needs is missing or the stores disagree.

use std::collections::BTreeSet;
use std::process::ExitCode;

use serde_json::json;
use weir_store::{SchemaState, StoreAdmin};

use super::references::{covered, references};
use super::{object_keys, open, Output};
use crate::config::StorageArgs;

pub async fn run(args: &StorageArgs, output: Output) -> anyhow::Result<ExitCode> {
    let opened = open(args).await?;
    let (store, artifacts) = (&opened.store, &opened.artifacts);
    let mut problems = Vec::new();
    let identity = match store.schema_state().await? {
        SchemaState::Empty => None,
        SchemaState::Weir { identity, .. } => identity.map(|i| i.id),
    };
    let marker = artifacts.read_identity().await?.map(|m| m.id);
    if identity != marker {
        problems.push(format!(
            "the stores disagree: the metadata store belongs to {}, the artifact store to {}",
            identity.as_deref().unwrap_or("no deployment"),
            marker.as_deref().unwrap_or("no deployment")
        ));
    }
    let snapshot = store.export_snapshot().await?;
    let keys = object_keys(artifacts).await?;
    let refs = references(&snapshot, artifacts.url());
    let mut used: BTreeSet<&String> = BTreeSet::new();
    let mut missing = Vec::new();
    for reference in &refs {
        match covered(reference, &keys) {
            Some(found) => used.extend(found),
            None => missing.push(format!("{} ({})", reference.key, reference.what)),
        }
    }
    let orphans: Vec<&String> = keys.iter().filter(|k| !used.contains(k)).collect();
    if !missing.is_empty() {
        problems.push(format!("{} object(s) the metadata refers to are missing", missing.len()));
    }
    store.close().await;
    let ok = problems.is_empty();
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": ok, "problems": problems, "missing": missing, "orphans": orphans,
                "referenced": refs.len(), "objects": keys.len(),
            }))?
        );
    } else {
        println!("checked {} references against {} objects", refs.len(), keys.len());
        for m in &missing {
            println!("missing: {m}");
        }
        for o in &orphans {
            println!("orphan:  {o} (no metadata refers to it)");
        }
        for p in &problems {
            eprintln!("problem: {p}");
        }
        if ok {
            println!("ok: every object the metadata refers to exists ({} orphan(s))", orphans.len());
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
