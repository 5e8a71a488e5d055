//! `weir storage check`: every object the metadata refers to exists; objects nothing refers to
//! are listed. Exits 1 when something the metadata needs is missing or the stores disagree.

use std::process::ExitCode;

use serde_json::json;
use weir_store::{SchemaState, StoreAdmin};

use super::{now_ms, open, Output};
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
    let scan = weir_gc::orphans::scan(store.as_ref(), artifacts).await?;
    let (missing, referenced) = (&scan.missing, scan.referenced);
    let orphans: Vec<&String> = scan.orphans.iter().map(|o| &o.key).collect();
    let objects = scan.objects.len();
    if !missing.is_empty() {
        problems.push(format!("{} object(s) the metadata refers to are missing", missing.len()));
    }
    store.close().await;
    let ok = problems.is_empty();
    // The report stays with the storage it describes (not with stores that disagree), for
    // the UI's storage page.
    if identity.is_some() && identity == marker {
        let report = json!({
            "at": now_ms(), "ok": ok, "problems": problems, "missing": missing.len(), "orphans": orphans.len(),
            "referenced": referenced, "objects": objects,
        });
        if let Err(e) = artifacts.put(weir_artifacts::LAST_CHECK_KEY, serde_json::to_vec(&report)?.into()).await {
            eprintln!("warning: could not record this check's report: {e}");
        }
    }
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": ok, "problems": problems, "missing": missing, "orphans": orphans,
                "referenced": referenced, "objects": objects,
            }))?
        );
    } else {
        println!("checked {referenced} references against {objects} objects");
        for m in missing {
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
