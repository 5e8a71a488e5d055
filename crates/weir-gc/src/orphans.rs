//! Objects no row refers to, and objects rows refer to that are missing: one pass over the
//! store's listing and the metadata, which streams past chunk by chunk.

use std::collections::{BTreeMap, BTreeSet};

use weir_artifacts::{ArtifactStore, ObjectInfo, RESERVED_PREFIX};
use weir_store::{MetadataStore, RuntimeState, TableDump};

use crate::references::{covered, references};
use crate::GcResult;

/// Where the Kubernetes driver stages an attempt's files (`.weir/attempts/<task>/<attempt>/`).
const ATTEMPTS_PREFIX: &str = ".weir/attempts/";

/// What a scan found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Every object of the store, the identity marker and reports left out.
    pub objects: Vec<ObjectInfo>,
    /// References the metadata holds.
    pub referenced: usize,
    /// Referenced keys that are missing (with what refers to them).
    pub missing: BTreeSet<String>,
    /// Objects nothing refers to (outside the folders of runs still under way), and staged
    /// files of attempts that ended or whose task is gone.
    pub orphans: Vec<ObjectInfo>,
}

impl Scan {
    /// Orphans last changed before `cutoff` (ms): younger ones may belong to a step or a
    /// removal still under way.
    pub fn orphans_before(&self, cutoff: i64) -> Vec<ObjectInfo> {
        self.orphans.iter().filter(|o| o.modified_ms < cutoff).cloned().collect()
    }
}

fn staged_task(key: &str) -> Option<&str> {
    key.strip_prefix(ATTEMPTS_PREFIX)?.split('/').next().filter(|t| !t.is_empty())
}

/// Lists the store and reads the metadata once.
pub async fn scan(store: &dyn MetadataStore, artifacts: &ArtifactStore) -> GcResult<Scan> {
    let listed = artifacts.list_meta("").await?;
    let mut objects = Vec::new();
    let mut staged: Vec<ObjectInfo> = Vec::new();
    for object in listed {
        if staged_task(&object.key).is_some() {
            staged.push(object);
        } else if !object.key.starts_with(RESERVED_PREFIX) {
            objects.push(object);
        }
    }
    let keys: BTreeSet<String> = objects.iter().map(|o| o.key.clone()).collect();
    let staged_tasks: BTreeSet<String> =
        staged.iter().filter_map(|o| staged_task(&o.key)).map(str::to_string).collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<TableDump>(8);
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut referenced = 0usize;
    // The state of each task that has staged files.
    let mut task_states: BTreeMap<String, String> = BTreeMap::new();
    // Runs still under way: their steps write outputs (in place, in a folder store) before
    // the rows naming them exist, for as long as a step runs.
    let mut active_runs: BTreeSet<String> = BTreeSet::new();
    let url = artifacts.url().to_string();
    let tally = async {
        while let Some(chunk) = rx.recv().await {
            if chunk.name == "runs" {
                let id = chunk.columns.iter().position(|c| c == "id");
                let state = chunk.columns.iter().position(|c| c == "state");
                for row in &chunk.rows {
                    let text =
                        |i: Option<usize>| i.and_then(|i| row.get(i)).and_then(|v| v.as_str()).unwrap_or_default();
                    if RuntimeState::parse(text(state)).is_none_or(|s| !s.is_terminal()) {
                        active_runs.insert(text(id).to_string());
                    }
                }
            }
            if chunk.name == "tasks" && !staged_tasks.is_empty() {
                let id = chunk.columns.iter().position(|c| c == "id");
                let state = chunk.columns.iter().position(|c| c == "state");
                for row in &chunk.rows {
                    let text =
                        |i: Option<usize>| i.and_then(|i| row.get(i)).and_then(|v| v.as_str()).unwrap_or_default();
                    if staged_tasks.contains(text(id)) {
                        task_states.insert(text(id).to_string(), text(state).to_string());
                    }
                }
            }
            for reference in references(&chunk, &url) {
                referenced += 1;
                match covered(&reference, &keys) {
                    Some(found) => used.extend(found.into_iter().cloned()),
                    None => {
                        missing.insert(format!("{} ({})", reference.key, reference.what));
                    }
                }
            }
        }
    };
    let (exported, ()) = tokio::join!(store.export_tables(tx), tally);
    exported?;
    // An object under a run still under way (`logs/<run>/…`, `<root>/<pipeline>/<run>/…`) is
    // that run's, referred to or not yet.
    let of_active_run = |key: &str| key.split('/').any(|segment| active_runs.contains(segment));
    let mut orphans: Vec<ObjectInfo> =
        objects.iter().filter(|o| !used.contains(&o.key) && !of_active_run(&o.key)).cloned().collect();
    // A staged file is left over once its attempt can no longer need it: its task ended or
    // was removed. (A running step's files are its own.)
    orphans.extend(staged.into_iter().filter(|o| {
        let task = staged_task(&o.key).unwrap_or_default();
        task_states.get(task).is_none_or(|state| RuntimeState::parse(state).is_none_or(|s| s.is_terminal()))
    }));
    Ok(Scan { objects, referenced, missing, orphans })
}
