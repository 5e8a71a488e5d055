//! `GET /runs/{id}` for runs of any size: the answer is assembled from each task's detail,
//! serialised once and kept, plus the tasks written since the last read.
//!
//! A ParallelFor of 10,000 steps has 20,000 tasks, and KFP's client polls `get_run` for the
//! whole run, every task included (`run_details.task_details`, as KFP's own server answers
//! it). Reading 20,000 rows, converting and serialising them again on every poll took
//! seconds and competed with the steps for the same cores. Instead each run keeps its tasks'
//! JSON here; a read asks the store only for the tasks written since the version it saw
//! (migration 11's task versions), so a poll costs the rows that changed and a copy of bytes.
//! The spec is passed through as the stored JSON text, never parsed or written again.
//!
//! Entries are per process and checked against the store on every read, so several replicas
//! (or a run changed by the engine of another) answer the same; a few runs are kept, the
//! least recently read go first.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use weir_store::{Run, Task};

use crate::convert;

/// Runs whose details are kept, and the bytes they may hold together: a few big runs being
/// watched at once, bounded so a server's memory stays small.
const MAX_RUNS: usize = 16;
const MAX_BYTES: usize = 96 << 20;

/// Where a task comes in a run's details: the order the store lists tasks in.
type Key = (i64, String);

/// One task's JSON, without its children (they change as tasks are created under it).
struct Fragment {
    key: Key,
    parent: String,
    /// `PipelineTaskDetail` without `child_tasks`: a JSON object, ending in `}`.
    detail: Vec<u8>,
    /// Its `ChildTask` entry in its parent's detail.
    as_child: Vec<u8>,
}

impl Fragment {
    fn new(task: &Task) -> Self {
        Self {
            key: (task.created_at, task.id.clone()),
            parent: task.parent_id.clone(),
            detail: to_json(&convert::task_detail(task)),
            as_child: to_json(&convert::child_task(task)),
        }
    }

    fn size(&self) -> usize {
        self.detail.len() + self.as_child.len() + self.key.1.len() + self.parent.len()
    }
}

#[derive(Default)]
struct Entry {
    /// The task version read so far; `None` until the first read.
    version: Option<i64>,
    order: BTreeSet<Key>,
    tasks: HashMap<String, Fragment>,
    children: HashMap<String, BTreeSet<Key>>,
    bytes: usize,
}

impl Entry {
    fn clear(&mut self) {
        *self = Entry::default();
    }

    fn upsert(&mut self, task: &Task) {
        let fragment = Fragment::new(task);
        if let Some(old) = self.tasks.remove(&task.id) {
            self.bytes -= old.size();
            self.order.remove(&old.key);
            if let Some(siblings) = self.children.get_mut(&old.parent) {
                siblings.remove(&old.key);
            }
        }
        self.bytes += fragment.size();
        self.order.insert(fragment.key.clone());
        self.children.entry(fragment.parent.clone()).or_default().insert(fragment.key.clone());
        self.tasks.insert(task.id.clone(), fragment);
    }

    /// `,"run_details":{"task_details":[…]}` for the answer, or nothing for a run without
    /// tasks (as the answer leaves `run_details` out then).
    fn write_details(&self, out: &mut Vec<u8>) {
        if self.order.is_empty() {
            return;
        }
        out.extend_from_slice(b",\"run_details\":{\"task_details\":[");
        for (i, (_, id)) in self.order.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let fragment = &self.tasks[id];
            match self.children.get(id).filter(|c| !c.is_empty()) {
                None => out.extend_from_slice(&fragment.detail),
                Some(children) => {
                    // The detail's closing brace makes way for its children.
                    out.extend_from_slice(&fragment.detail[..fragment.detail.len() - 1]);
                    out.extend_from_slice(b",\"child_tasks\":[");
                    for (j, (_, child)) in children.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(&self.tasks[child].as_child);
                    }
                    out.extend_from_slice(b"]}");
                }
            }
        }
        out.extend_from_slice(b"]}");
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("wire types serialise")
}

/// One run's entry: read by one request at a time, the others wait for its answer.
type Shared = Arc<tokio::sync::Mutex<Entry>>;

/// The details of recently read runs.
#[derive(Default)]
pub struct RunDetailsCache {
    entries: Mutex<HashMap<String, (Shared, Instant)>>,
}

impl RunDetailsCache {
    fn entry(&self, run_id: &str) -> Shared {
        let mut entries = self.entries.lock().expect("run details");
        let (entry, used) = entries.entry(run_id.to_string()).or_insert_with(|| (Default::default(), Instant::now()));
        *used = Instant::now();
        entry.clone()
    }

    pub fn forget(&self, run_id: &str) {
        self.entries.lock().expect("run details").remove(run_id);
    }

    /// Drops the least recently read runs beyond the limits (entries being read count as empty).
    fn trim(&self) {
        let mut entries = self.entries.lock().expect("run details");
        let mut sizes: Vec<(String, Instant, usize)> = entries
            .iter()
            .map(|(id, (entry, used))| (id.clone(), *used, entry.try_lock().map_or(0, |e| e.bytes)))
            .collect();
        sizes.sort_by_key(|(_, used, _)| std::cmp::Reverse(*used));
        let mut total = 0;
        for (i, (id, _, bytes)) in sizes.into_iter().enumerate() {
            total += bytes;
            if i >= MAX_RUNS || (i > 0 && total > MAX_BYTES) {
                entries.remove(&id);
            }
        }
    }

    /// The run's answer: `run` (as converted for the wire), its stored spec text spliced in,
    /// and its tasks, brought up to date through `changes`.
    pub async fn answer<F, Fut>(&self, run: &Run, spec: &str, changes: F) -> Result<Vec<u8>, weir_store::StoreError>
    where
        F: FnOnce(Option<i64>) -> Fut,
        Fut: std::future::Future<Output = Result<weir_store::TaskChanges, weir_store::StoreError>>,
    {
        let entry = self.entry(&run.id);
        let mut entry = entry.lock().await;
        let changed = changes(entry.version).await?;
        if changed.complete {
            entry.clear();
        }
        for task in &changed.tasks {
            entry.upsert(task);
        }
        entry.version = Some(changed.version);

        let mut wire_run = convert::run(run);
        let inline_spec = wire_run.pipeline_spec.take().is_some();
        let mut out = to_json(&wire_run);
        out.reserve(spec.len() + entry.bytes + 64);
        out.pop(); // the closing brace: the spec and the details follow
        if inline_spec {
            out.extend_from_slice(b",\"pipeline_spec\":");
            match &run.platform_spec {
                // KFP answers `{pipeline_spec, platform_spec}` for a run with a platform spec.
                Some(platform) => {
                    out.extend_from_slice(b"{\"pipeline_spec\":");
                    out.extend_from_slice(spec.as_bytes());
                    out.extend_from_slice(b",\"platform_spec\":");
                    out.extend_from_slice(&to_json(platform));
                    out.push(b'}');
                }
                None => out.extend_from_slice(spec.as_bytes()),
            }
        }
        entry.write_details(&mut out);
        out.push(b'}');
        drop(entry);
        self.trim();
        Ok(out)
    }
}
