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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
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
struct Slot {
    key: Key,
    /// `PipelineTaskDetail` without `child_tasks`: a JSON object, ending in `}`.
    detail: Vec<u8>,
    /// Its `ChildTask` entry in its parent's detail.
    as_child: Vec<u8>,
    /// Its children's slots, in order.
    children: BTreeMap<Key, usize>,
}

impl Slot {
    fn size(&self) -> usize {
        self.detail.len() + self.as_child.len() + self.key.1.len() + 48 * (1 + self.children.len())
    }
}

/// A run's tasks as slots, found by position while the answer is written: writing 20,000
/// tasks by looking each one and its children up by id spent most of a read hashing.
#[derive(Default)]
struct Entry {
    /// The task version read so far; `None` until the first read.
    version: Option<i64>,
    slots: Vec<Slot>,
    by_id: HashMap<String, usize>,
    order: BTreeMap<Key, usize>,
    /// Children read before their parent, by the parent's id.
    orphans: HashMap<String, BTreeMap<Key, usize>>,
    bytes: usize,
    /// `task_details` as last written, and the version it was written at: a run that did not
    /// change since is answered without writing it again.
    written: Option<(i64, Bytes)>,
}

impl Entry {
    fn clear(&mut self) {
        *self = Entry::default();
    }

    /// The bytes the entry holds: its slots and the details last written.
    fn held(&self) -> usize {
        self.bytes + self.written.as_ref().map_or(0, |(_, written)| written.len())
    }

    fn upsert(&mut self, task: &Task) {
        let key: Key = (task.created_at, task.id.clone());
        let detail = to_json(&convert::task_detail(task));
        let as_child = to_json(&convert::child_task(task));
        if let Some(&at) = self.by_id.get(&task.id) {
            let slot = &mut self.slots[at];
            self.bytes -= slot.size();
            let old_key = std::mem::replace(&mut slot.key, key.clone());
            slot.detail = detail;
            slot.as_child = as_child;
            self.bytes += slot.size();
            if old_key != key {
                self.order.remove(&old_key);
                self.order.insert(key.clone(), at);
                if let Some(&parent) = self.by_id.get(&task.parent_id) {
                    let siblings = &mut self.slots[parent].children;
                    siblings.remove(&old_key);
                    siblings.insert(key, at);
                }
            }
            return;
        }
        let at = self.slots.len();
        let children = self.orphans.remove(&task.id).unwrap_or_default();
        let slot = Slot { key: key.clone(), detail, as_child, children };
        self.bytes += slot.size();
        self.slots.push(slot);
        self.by_id.insert(task.id.clone(), at);
        self.order.insert(key.clone(), at);
        match self.by_id.get(&task.parent_id) {
            Some(&parent) => {
                self.slots[parent].children.insert(key, at);
            }
            None => {
                self.orphans.entry(task.parent_id.clone()).or_default().insert(key, at);
            }
        }
    }

    /// `"task_details":[…]` as the answer's `run_details` holds it.
    fn task_details(&mut self) -> Bytes {
        let version = self.version.unwrap_or_default();
        if let Some((at, written)) = &self.written {
            if *at == version {
                return written.clone();
            }
        }
        let mut out = Vec::with_capacity(self.bytes + 32);
        out.extend_from_slice(b"\"task_details\":[");
        for (i, &at) in self.order.values().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let slot = &self.slots[at];
            if slot.children.is_empty() {
                out.extend_from_slice(&slot.detail);
                continue;
            }
            // The detail's closing brace makes way for its children.
            out.extend_from_slice(&slot.detail[..slot.detail.len() - 1]);
            out.extend_from_slice(b",\"child_tasks\":[");
            for (j, &child) in slot.children.values().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&self.slots[child].as_child);
            }
            out.extend_from_slice(b"]}");
        }
        out.push(b']');
        let written = Bytes::from(out);
        self.written = Some((version, written.clone()));
        written
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
            .map(|(id, (entry, used))| (id.clone(), *used, entry.try_lock().map_or(0, |e| e.held())))
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

    /// The run's answer, in parts to send one after the other: `run` (as converted for the
    /// wire), its stored spec text spliced in, and its tasks, brought up to date through
    /// `changes`.
    pub async fn answer<F, Fut>(&self, run: &Run, spec: &str, changes: F) -> Result<Vec<Bytes>, weir_store::StoreError>
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

        let details = (!entry.order.is_empty()).then(|| entry.task_details());
        drop(entry);

        let mut wire_run = convert::run(run);
        let inline_spec = wire_run.pipeline_spec.take().is_some();
        let mut head = to_json(&wire_run);
        head.reserve(spec.len() + 64);
        head.pop(); // the closing brace: the spec and the details follow
        if inline_spec {
            head.extend_from_slice(b",\"pipeline_spec\":");
            match &run.platform_spec {
                // KFP answers `{pipeline_spec, platform_spec}` for a run with a platform spec.
                Some(platform) => {
                    head.extend_from_slice(b"{\"pipeline_spec\":");
                    head.extend_from_slice(spec.as_bytes());
                    head.extend_from_slice(b",\"platform_spec\":");
                    head.extend_from_slice(&to_json(platform));
                    head.push(b'}');
                }
                None => head.extend_from_slice(spec.as_bytes()),
            }
        }
        // The details are shared, not copied, into the answer.
        let parts = match details {
            Some(details) => {
                head.extend_from_slice(b",\"run_details\":{");
                vec![Bytes::from(head), details, Bytes::from_static(b"}}")]
            }
            None => {
                head.push(b'}');
                vec![Bytes::from(head)]
            }
        };
        self.trim();
        Ok(parts)
    }
}
