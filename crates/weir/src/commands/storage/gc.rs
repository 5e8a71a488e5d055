//! `weir storage gc`: what the retention policies would remove, and orphan objects; with
//! `--apply`, removes them. A dry run by default: it writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use serde_json::{json, Value};
use weir_artifacts::ObjectInfo;
use weir_gc::{orphans, retention, Collector, Drained};
use weir_store::{GcRecord, MetadataStore, SchemaState, StoreAdmin, SystemClock};

use super::{now_ms, open, Output};
use crate::config::StorageArgs;

/// Objects and bytes of one kind.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    objects: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, size: u64) {
        self.objects += 1;
        self.bytes += size;
    }

    fn json(self) -> Value {
        json!({"objects": self.objects, "bytes": self.bytes})
    }
}

pub async fn run(
    args: &StorageArgs,
    apply: bool,
    grace_seconds: Option<u64>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let opened = open(args).await?;
    let (store, artifacts, settings) = (opened.store.clone(), opened.artifacts.clone(), &opened.settings);
    // Deleting objects of another deployment's store, or by rows of an older schema, would
    // lose data: both stores must be this deployment's, at this weir's schema.
    let identity = match store.schema_state().await? {
        SchemaState::Empty => bail!("the metadata store is empty: nothing to collect"),
        SchemaState::Weir { identity, applied, known, .. } => {
            if let Some(v) = known.iter().find(|v| !applied.contains(v)) {
                bail!("the metadata store is at an older schema (migration {v} pending): run `weir storage upgrade` first");
            }
            identity.map(|i| i.id)
        }
    };
    let marker = artifacts.read_identity().await?.map(|m| m.id);
    if identity.is_none() || identity != marker {
        bail!(
            "the stores disagree (metadata: {}, artifacts: {}): nothing is collected from stores of different deployments",
            identity.as_deref().unwrap_or("none"),
            marker.as_deref().unwrap_or("none")
        );
    }
    let retention = &settings.retention;
    let grace_ms = grace_seconds.unwrap_or(retention.orphan_grace_seconds) as i64 * 1000;
    let collector = Collector::new(store.clone() as Arc<dyn MetadataStore>, artifacts.clone(), Arc::new(SystemClock))
        .keeping_artifacts(retention.keep_artifacts);
    let result = if apply {
        collect(&collector, retention, grace_ms, output).await
    } else {
        preview(&collector, &retention.policies, grace_ms, output).await
    };
    store.close().await;
    result
}

/// The dry run: per policy, the runs it would remove with their objects; orphans; the journal.
async fn preview(
    collector: &Collector,
    policies: &[weir_store::RetentionPolicy],
    grace_ms: i64,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let store = collector.store().as_ref();
    let now = now_ms();
    let pending = store.pending_deletions(i64::MAX / 2).await?;
    let chosen = retention::choose(store, policies, now).await?;
    let scan = orphans::scan(store, collector.artifacts()).await?;
    // Each object is counted for the run whose id is one of its key's segments (logs/<run>/…,
    // <root>/<pipeline>/<run>/…). Outputs a cache hit of another run uses are kept by the
    // removal: the figures are what it deletes at most.
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, c) in chosen.iter().enumerate() {
        for run in &c.runs {
            owner.entry(run.id.as_str()).or_insert(i);
        }
    }
    let mut per_policy: Vec<(Tally, Tally)> = vec![Default::default(); chosen.len()];
    for object in &scan.objects {
        let Some(i) = object.key.split('/').find_map(|segment| owner.get(segment)) else { continue };
        let (logs, outputs) = &mut per_policy[*i];
        if object.key.starts_with("logs/") {
            logs.add(object.size)
        } else {
            outputs.add(object.size)
        }
    }
    let cutoff = now - grace_ms;
    let mut old = Tally::default();
    let mut young = Tally::default();
    for o in &scan.orphans {
        if o.modified_ms < cutoff {
            old.add(o.size)
        } else {
            young.add(o.size)
        }
    }
    let policies_json: Vec<Value> = chosen
        .iter()
        .zip(&per_policy)
        .map(|(c, (logs, outputs))| {
            let mut states: BTreeMap<&str, u64> = BTreeMap::new();
            for run in &c.runs {
                *states.entry(run.state.as_str()).or_default() += 1;
            }
            json!({
                "policy": c.policy.name,
                "experiment_id": c.experiment_id,
                "action": if c.policy.action == weir_store::RetentionAction::Archive { "archive" } else { "delete" },
                "runs": c.runs.len(),
                "by_state": states,
                "logs": logs.json(),
                "artifacts": outputs.json(),
                "keep_artifacts": c.policy.keep_artifacts,
                "oldest_finished_at": c.runs.first().map(|r| r.finished_at),
            })
        })
        .collect();
    let report = json!({
        "dry_run": true,
        "policies": policies_json,
        "orphans": {"older_than_grace": old.json(), "within_grace": young.json(), "grace_seconds": grace_ms / 1000},
        "journal": {"entries": pending.len()},
        "objects": scan.objects.len(),
        "missing": scan.missing.len(),
    });
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("dry run: nothing is removed (add --apply)");
    if chosen.is_empty() {
        println!("no retention policies (the retention section of weir.yaml, or an experiment's own)");
    }
    for (c, (logs, outputs)) in chosen.iter().zip(&per_policy) {
        let scope = c.experiment_id.as_deref().map(|e| format!(" (experiment {e})")).unwrap_or_default();
        let verb = if c.policy.action == weir_store::RetentionAction::Archive { "archive" } else { "delete" };
        println!(
            "policy {}{scope}: {verb} {} run(s); logs {} object(s), {}; artifacts {} object(s), {}{}",
            c.policy.name,
            c.runs.len(),
            logs.objects,
            human(logs.bytes),
            outputs.objects,
            human(outputs.bytes),
            if c.policy.keep_artifacts { " (artifacts kept)" } else { "" }
        );
    }
    println!(
        "orphan objects: {} ({}) older than {} s; {} younger, left",
        old.objects,
        human(old.bytes),
        grace_ms / 1000,
        young.objects
    );
    if !pending.is_empty() {
        println!("unfinished deletions: {} journal entries (a serving weir or --apply finishes them)", pending.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--apply`: finishes the journal, applies the policies, then deletes old orphans.
async fn collect(
    collector: &Collector,
    retention: &weir_gc::worker::RetentionSettings,
    grace_ms: i64,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let bar = if output == Output::Text { Some(super::progress_spinner("collecting")) } else { None };
    let show = |d: Drained| {
        if let Some(bar) = &bar {
            bar.set_message(format!("deleted {} object(s), {}", d.objects, human(d.bytes)));
        }
    };
    let runs = std::sync::atomic::AtomicU64::new(0);
    let on_run = |record: GcRecord| {
        let n = runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Some(bar) = &bar {
            bar.set_prefix(format!("{n} run(s); last {} by {}", record.target_id, record.policy));
        }
    };
    let journal = collector.drain(&show).await?;
    let applied = retention::apply(
        collector,
        &retention.policies,
        retention.keep_artifacts,
        retention.batch_size,
        &on_run,
        &show,
    )
    .await?;
    let store = collector.store().as_ref();
    let scan = orphans::scan(store, collector.artifacts()).await?;
    let old: Vec<ObjectInfo> = scan.orphans_before(now_ms() - grace_ms);
    let mut total = Drained::default();
    let (deleted, bytes, kept) = collector.delete_unreferenced(&old, &show, &mut total).await?;
    if deleted > 0 {
        let now = now_ms();
        let record = GcRecord {
            id: uuid::Uuid::new_v4().to_string(),
            at: now,
            kind: "orphans".into(),
            target_id: String::new(),
            display_name: format!("{deleted} orphan object(s)"),
            policy: format!("orphans older than {} s", grace_ms / 1000),
            detail: json!({"action": "delete", "kept_referenced": kept}),
            objects: deleted as i64,
            bytes: bytes as i64,
            done_at: now,
        };
        store.record_removal(&record, &[]).await?;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = json!({
        "dry_run": false,
        "journal": {"entries": journal.entries, "objects": journal.objects, "bytes": journal.bytes},
        "runs": {"deleted": applied.deleted, "archived": applied.archived,
                 "objects": applied.drained.objects, "bytes": applied.drained.bytes,
                 "kept_for_cache": applied.drained.kept},
        "orphans": {"objects": deleted, "bytes": bytes},
    });
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "removed {} run(s) and archived {}; deleted {} object(s), {} ({} left from earlier removals, {} orphan(s), {})",
            applied.deleted,
            applied.archived,
            journal.objects + applied.drained.objects + deleted,
            human(journal.bytes + applied.drained.bytes + bytes),
            journal.objects,
            deleted,
            human(bytes),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
