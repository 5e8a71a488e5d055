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
//!
//! While a run under way is being watched, the server also catches its entry up in the
//! background a few times a second (`keep_fresh`). A poll once a second otherwise found a
//! second's worth of changed tasks to read and write (1,200 tasks in a 10,000-step run): its
//! reads took 12–39 ms under load against 2–11 ms for the polls just after it. Every request
//! still makes a read of its own, begun after it arrived; it finds only what changed since the
//! last catch-up.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

// tokio's clock, so tests can move it.
use tokio::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use weir_store::{Run, Task};

use crate::convert;

/// Runs whose details are kept, and the bytes they may hold together: a few big runs being
/// watched at once, bounded so a server's memory stays small.
const MAX_RUNS: usize = 16;
const MAX_BYTES: usize = 96 << 20;

/// How often a watched run's entry is caught up: a poll finds at most this much of changes.
const CATCH_UP_EVERY: Duration = Duration::from_millis(200);
/// A run is watched this long after a client last read it: longer than `kfp.Client`'s
/// `wait_for_run_completion` waits between its reads (5 s by default).
const WATCHED_FOR: Duration = Duration::from_secs(15);

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

/// Tasks per block of the answer: a block is written again only when one of its tasks (or a
/// child of one) changed, so a poll of a big run copies the few blocks that did.
const BLOCK: usize = 256;

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
    /// The answer's tasks in blocks of consecutive keys, by the key each starts at: each
    /// block's tasks as written, every one preceded by a comma, or `None` when one changed.
    /// Rewriting all 20,000 tasks' 11 MB whenever one changed took a poll 4 ms of copying at
    /// the median and 13 ms at p90 under load.
    blocks: BTreeMap<Key, Option<Bytes>>,
    /// `task_details` as last answered, and the version it was answered at.
    written: Option<(i64, Vec<Bytes>)>,
    /// The last answer, and the number of the read it came from (see `SharedEntry`).
    answered: Option<(u64, Vec<Bytes>)>,
    /// The run had not ended when last read: its tasks may still change.
    live: bool,
}

impl Entry {
    fn clear(&mut self) {
        *self = Entry::default();
    }

    /// The bytes the entry holds: its slots, its blocks as written and the last answer's head.
    fn held(&self) -> usize {
        let head = self.answered.as_ref().and_then(|(_, parts)| parts.first()).map_or(0, Bytes::len);
        self.bytes + self.blocks.values().flatten().map(Bytes::len).sum::<usize>() + head
    }

    /// The block holding `key` is to be written again. A key before the first block starts
    /// that block.
    fn touch(&mut self, key: &Key) {
        if let Some((_, block)) = self.blocks.range_mut(..=key.clone()).next_back() {
            *block = None;
            return;
        }
        self.blocks.pop_first();
        self.blocks.insert(key.clone(), None);
    }

    /// The block of a task's parent, whose detail lists the task among its children.
    fn touch_parent(&mut self, parent_id: &str) {
        if let Some(&parent) = self.by_id.get(parent_id) {
            let key = self.slots[parent].key.clone();
            self.touch(&key);
        }
    }

    fn upsert(&mut self, task: &Task) {
        let key: Key = (task.created_at, task.id.clone());
        let detail = to_json(&convert::task_detail(task));
        let as_child = to_json(&convert::child_task(task));
        self.touch(&key);
        if let Some(&at) = self.by_id.get(&task.id) {
            let slot = &mut self.slots[at];
            self.bytes -= slot.size();
            let old_key = std::mem::replace(&mut slot.key, key.clone());
            slot.detail = detail;
            let child_changed = slot.as_child != as_child;
            slot.as_child = as_child;
            self.bytes += slot.size();
            let moved = old_key != key;
            if moved {
                self.touch(&old_key);
                self.order.remove(&old_key);
                self.order.insert(key.clone(), at);
                // Its place among its parent's children moves too, read or not yet read.
                let siblings = match self.by_id.get(&task.parent_id) {
                    Some(&parent) => Some(&mut self.slots[parent].children),
                    None => self.orphans.get_mut(&task.parent_id),
                };
                if let Some(siblings) = siblings {
                    siblings.remove(&old_key);
                    siblings.insert(key, at);
                }
            }
            if child_changed || moved {
                self.touch_parent(&task.parent_id);
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
                self.touch_parent(&task.parent_id);
            }
            None => {
                self.orphans.entry(task.parent_id.clone()).or_default().insert(key, at);
            }
        }
    }

    /// Writes one task's detail, its children's entries spliced in, preceded by a comma.
    fn write_task(&self, at: usize, out: &mut Vec<u8>) {
        let slot = &self.slots[at];
        out.push(b',');
        if slot.children.is_empty() {
            out.extend_from_slice(&slot.detail);
            return;
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

    /// Writes the blocks that changed, splitting one grown past twice its size.
    fn write_blocks(&mut self) {
        let starts: Vec<Key> = self.blocks.iter().filter(|(_, b)| b.is_none()).map(|(k, _)| k.clone()).collect();
        for start in starts {
            let end = self.blocks.range((Excluded(start.clone()), Unbounded)).next().map(|(k, _)| k.clone());
            let members: Vec<(Key, usize)> = match &end {
                Some(end) => self.order.range(start.clone()..end.clone()),
                None => self.order.range(start.clone()..),
            }
            .map(|(k, &at)| (k.clone(), at))
            .collect();
            let size = if members.len() > 2 * BLOCK { BLOCK } else { members.len().max(1) };
            self.blocks.remove(&start);
            let mut chunks = members.chunks(size).peekable();
            if chunks.peek().is_none() {
                // Its tasks moved away; the range stays covered by an empty block.
                self.blocks.insert(start, Some(Bytes::new()));
                continue;
            }
            for (i, chunk) in chunks.enumerate() {
                let mut out = Vec::new();
                for (_, at) in chunk {
                    self.write_task(*at, &mut out);
                }
                // The first block keeps the range's start, which may precede its first task.
                let key = if i == 0 { start.clone() } else { chunk[0].0.clone() };
                self.blocks.insert(key, Some(Bytes::from(out)));
            }
        }
    }

    /// `"task_details":[…]` as the answer's `run_details` holds it, in parts: the blocks
    /// that did not change are shared as they were written.
    fn task_details(&mut self) -> Vec<Bytes> {
        let version = self.version.unwrap_or_default();
        if let Some((at, written)) = &self.written {
            if *at == version {
                return written.clone();
            }
        }
        self.write_blocks();
        let mut parts = vec![Bytes::from_static(b"\"task_details\":[")];
        for block in self.blocks.values().flatten().filter(|b| !b.is_empty()) {
            // Every task is preceded by a comma; the first one is not.
            parts.push(if parts.len() == 1 { block.slice(1..) } else { block.clone() });
        }
        parts.push(Bytes::from_static(b"]"));
        self.written = Some((version, parts.clone()));
        parts
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("wire types serialise")
}

/// One run's entry, read from the store by one request at a time.
///
/// Clients polling a run tend to come together (pollers started at once stay in step), and
/// each waited for every read ahead of it: the fourth of four waited for three reads of the
/// store. A request that finds a read begun after it arrived already answered takes that
/// answer, which is as fresh as a read of its own would be; so however many come at once, none
/// waits for more than the read under way and one more.
#[derive(Default)]
struct SharedEntry {
    /// Reads of the store begun for this run so far.
    reads: AtomicU64,
    entry: tokio::sync::Mutex<Entry>,
}

type Shared = Arc<SharedEntry>;

/// The details of recently read runs.
#[derive(Default)]
pub struct RunDetailsCache {
    entries: Mutex<HashMap<String, (Shared, Instant)>>,
    /// A catch-up task is running (see `keep_fresh`).
    catching_up: AtomicBool,
}

impl RunDetailsCache {
    fn entry(&self, run_id: &str) -> Shared {
        let mut entries = self.entries.lock().expect("run details");
        let (entry, used) = entries.entry(run_id.to_string()).or_insert_with(|| (Default::default(), Instant::now()));
        *used = Instant::now();
        entry.clone()
    }

    /// Runs read by a client within `WATCHED_FOR` that had not ended when last read.
    fn watched(&self) -> Vec<(String, Shared)> {
        let entries = self.entries.lock().expect("run details");
        entries
            .iter()
            .filter(|(_, (_, used))| used.elapsed() < WATCHED_FOR)
            .filter(|(_, (entry, _))| entry.entry.try_lock().map_or(true, |e| e.live))
            .map(|(id, (entry, _))| (id.clone(), entry.clone()))
            .collect()
    }

    /// Keeps the entries of watched runs under way caught up with the store, through
    /// `read_changes` (a run's tasks written since a version), on a task started here when
    /// none runs; it ends when no run is watched.
    pub fn keep_fresh<R, Fut>(self: &Arc<Self>, read_changes: R)
    where
        R: Fn(String, i64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<weir_store::TaskChanges, weir_store::StoreError>> + Send,
    {
        if self.catching_up.swap(true, Ordering::SeqCst) {
            return;
        }
        let cache: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CATCH_UP_EVERY).await;
                let Some(cache) = cache.upgrade() else { return };
                let watched = cache.watched();
                if watched.is_empty() {
                    cache.catching_up.store(false, Ordering::SeqCst);
                    // A run read since the list was made starts a task of its own, unless
                    // this one goes on.
                    if cache.watched().is_empty() || cache.catching_up.swap(true, Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                for (run_id, shared) in watched {
                    let read = |after| read_changes(run_id.clone(), after);
                    if let Err(weir_store::StoreError::NotFound(_)) = Self::catch_up(&shared, read).await {
                        // Deleted, through another replica perhaps: nothing more to catch up.
                        cache.forget(&run_id);
                    }
                }
            }
        });
    }

    /// Reads and writes the tasks changed since the entry's version, unless a request is
    /// reading it now (which does the same) or no request has read it yet. A store's error is
    /// given back, and left for the next request to answer.
    async fn catch_up<F, Fut>(shared: &SharedEntry, read_changes: F) -> Result<(), weir_store::StoreError>
    where
        F: FnOnce(i64) -> Fut,
        Fut: std::future::Future<Output = Result<weir_store::TaskChanges, weir_store::StoreError>>,
    {
        let Ok(mut entry) = shared.entry.try_lock() else { return Ok(()) };
        let Some(version) = entry.version else { return Ok(()) };
        let changed = read_changes(version).await?;
        if changed.version == version && changed.tasks.is_empty() {
            return Ok(());
        }
        if changed.complete {
            entry.clear();
        }
        for task in &changed.tasks {
            entry.upsert(task);
        }
        entry.version = Some(changed.version);
        if !entry.order.is_empty() {
            entry.task_details();
        }
        Ok(())
    }

    pub fn forget(&self, run_id: &str) {
        self.entries.lock().expect("run details").remove(run_id);
    }

    /// Drops the least recently read runs beyond the limits (entries being read count as empty).
    fn trim(&self) {
        let mut entries = self.entries.lock().expect("run details");
        let mut sizes: Vec<(String, Instant, usize)> = entries
            .iter()
            .map(|(id, (entry, used))| (id.clone(), *used, entry.entry.try_lock().map_or(0, |e| e.held())))
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

    /// The run's answer, in parts to send one after the other: the run (as converted for the
    /// wire), its stored spec text spliced in, and its tasks, brought up to date through
    /// `read`, which gives the run and its tasks written since the version asked for.
    pub async fn answer<F, Fut>(&self, run_id: &str, read: F) -> Result<Vec<Bytes>, weir_store::StoreError>
    where
        F: FnOnce(Option<i64>) -> Fut,
        Fut: std::future::Future<Output = Result<(Run, String, weir_store::TaskChanges), weir_store::StoreError>>,
    {
        let shared = self.entry(run_id);
        let arrived = shared.reads.load(Ordering::SeqCst);
        let mut entry = shared.entry.lock().await;
        if let Some((read_no, parts)) = &entry.answered {
            if *read_no > arrived {
                return Ok(parts.clone());
            }
        }
        let read_no = shared.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let (run, spec, changed) = read(entry.version).await?;
        if changed.complete {
            entry.clear();
        }
        for task in &changed.tasks {
            entry.upsert(task);
        }
        entry.version = Some(changed.version);
        entry.live = !run.state.is_terminal();

        let details = (!entry.order.is_empty()).then(|| entry.task_details());

        let mut wire_run = convert::run(&run);
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
                let mut parts = Vec::with_capacity(details.len() + 2);
                parts.push(Bytes::from(head));
                parts.extend(details);
                parts.push(Bytes::from_static(b"}}"));
                parts
            }
            None => {
                head.push(b'}');
                vec![Bytes::from(head)]
            }
        };
        entry.answered = Some((read_no, parts.clone()));
        drop(entry);
        self.trim();
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use weir_store::testsuite::task;
    use weir_store::{RuntimeState, TaskKind};

    use super::*;

    /// The answer as it would be written from scratch: every task in order, its children's
    /// entries in order.
    fn expected(tasks: &[Task]) -> Value {
        let mut ordered: Vec<&Task> = tasks.iter().collect();
        ordered.sort_by_key(|t| (t.created_at, t.id.clone()));
        let details: Vec<Value> = ordered
            .iter()
            .map(|t| {
                let mut detail = serde_json::to_value(convert::task_detail(t)).unwrap();
                let children: Vec<Value> = ordered
                    .iter()
                    .filter(|c| c.parent_id == t.id)
                    .map(|c| serde_json::to_value(convert::child_task(c)).unwrap())
                    .collect();
                if !children.is_empty() {
                    detail["child_tasks"] = Value::Array(children);
                }
                detail
            })
            .collect();
        serde_json::json!({ "task_details": details })
    }

    fn answered(parts: &[Bytes]) -> Value {
        let mut text = b"{".to_vec();
        for part in parts {
            text.extend_from_slice(part);
        }
        text.push(b'}');
        serde_json::from_slice(&text).unwrap()
    }

    /// A loop of `n` iterations, each with one step, created a few to a second as a
    /// ParallelFor's are (ids are random, so a second's tasks come in no particular order).
    fn fan_out(n: usize) -> Vec<Task> {
        let root = task("r", "root", TaskKind::Dag, 1);
        let lp = Task { parent_id: root.id.clone(), ..task("r", "loop", TaskKind::Loop, 1) };
        let mut tasks = vec![root, lp.clone()];
        for i in 0..n {
            let at = 2 + (i / 50) as i64;
            let iteration = Task { parent_id: lp.id.clone(), ..task("r", "iteration", TaskKind::Iteration, at) };
            let step = Task { parent_id: iteration.id.clone(), ..task("r", "noop", TaskKind::Container, at) };
            tasks.extend([iteration, step]);
        }
        tasks
    }

    #[test]
    fn a_poll_rewrites_only_the_blocks_whose_tasks_changed() {
        let mut tasks = fan_out(1_000);
        let mut entry = Entry::default();
        for t in &tasks {
            entry.upsert(t);
        }
        entry.version = Some(1);
        let first = entry.task_details();
        assert_eq!(answered(&first), expected(&tasks));
        // 2,002 tasks written at once go in blocks of BLOCK, not one.
        assert!(first.len() >= 2 + 2_002 / BLOCK, "{} parts", first.len());

        // One step in the middle ends, and new iterations come at the end.
        let middle = tasks.iter().position(|t| t.name == "noop" && t.created_at == 12).unwrap();
        tasks[middle].state = RuntimeState::Succeeded;
        tasks[middle].finished_at = 13_000;
        let lp = tasks[1].id.clone();
        let late = Task { parent_id: lp, ..task("r", "iteration", TaskKind::Iteration, 30) };
        let mut changed = vec![tasks[middle].clone(), late.clone()];
        tasks.push(late);
        // Tasks' creation times change too: a step moves, and an iteration moves far from its
        // old block and from its parent's (the loop's list of iterations is reordered).
        let moved = tasks.iter().position(|t| t.name == "noop" && t.created_at == 5).unwrap();
        tasks[moved].created_at = 25;
        changed.push(tasks[moved].clone());
        let far = tasks.iter().position(|t| t.name == "iteration" && t.created_at == 15).unwrap();
        tasks[far].created_at = 29;
        changed.push(tasks[far].clone());
        for t in &changed {
            entry.upsert(t);
        }
        entry.version = Some(2);
        let second = entry.task_details();
        assert_eq!(answered(&second), expected(&tasks));
        let before: Vec<*const u8> = first.iter().map(|p| p.as_ptr()).collect();
        let shared = second.iter().filter(|p| before.contains(&p.as_ptr())).count();
        // The blocks of the ended step, of the moved tasks' old and new places, and of the
        // loop (whose children grew and moved) are written again; the rest are the same bytes.
        assert!(shared + 8 >= second.len(), "{shared} of {} parts shared", second.len());
        assert!(shared > 0);

        // Nothing new: the same parts.
        let third = entry.task_details();
        assert_eq!(
            third.iter().map(|p| p.as_ptr()).collect::<Vec<_>>(),
            second.iter().map(|p| p.as_ptr()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn children_read_before_their_parent_are_listed_under_it() {
        let tasks = fan_out(300);
        let mut entry = Entry::default();
        // The steps first, then the loop and iterations, then the root: each arrives before
        // its parent.
        for t in tasks.iter().rev() {
            entry.upsert(t);
        }
        entry.version = Some(1);
        assert_eq!(answered(&entry.task_details()), expected(&tasks));
        // A child that moves before its parent is read is listed in its new place.
        let mut entry = Entry::default();
        let mut moving = tasks.clone();
        let step = moving.iter().position(|t| t.name == "noop").unwrap();
        let iteration = moving.iter().position(|t| t.id == moving[step].parent_id).unwrap();
        let sibling = Task { parent_id: moving[iteration].id.clone(), ..task("r", "other", TaskKind::Container, 8) };
        moving.push(sibling.clone());
        entry.upsert(&moving[step]);
        entry.upsert(&sibling);
        moving[step].created_at = 9;
        entry.upsert(&moving[step]);
        for t in moving.iter().filter(|t| t.id != moving[step].id && t.id != sibling.id) {
            entry.upsert(t);
        }
        entry.version = Some(1);
        assert_eq!(answered(&entry.task_details()), expected(&moving));

        // A task added one at a time before every block's first key.
        let early = Task { parent_id: tasks[0].id.clone(), ..task("r", "early", TaskKind::Container, 0) };
        entry.upsert(&early);
        entry.version = Some(2);
        let mut all = moving.clone();
        all.push(early);
        assert_eq!(answered(&entry.task_details()), expected(&all));
    }

    #[tokio::test]
    async fn requests_that_come_during_a_read_share_the_next_one() {
        use std::sync::atomic::AtomicUsize;

        let cache = Arc::new(RunDetailsCache::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let run = weir_store::testsuite::run("e", "polled", 1);
        let request = || {
            let (cache, reads, gate, run) = (cache.clone(), reads.clone(), gate.clone(), run.clone());
            async move {
                let id = run.id.clone();
                cache
                    .answer(&id, |after| async move {
                        let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == 1 {
                            // The first read lasts until the others have come.
                            gate.acquire().await.unwrap().forget();
                        }
                        let changes =
                            weir_store::TaskChanges { version: n as i64, complete: after.is_none(), tasks: vec![] };
                        Ok((run, "{}".to_string(), changes))
                    })
                    .await
                    .unwrap()
            }
        };
        let first = tokio::spawn(request());
        while reads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let others: Vec<_> = (0..3).map(|_| tokio::spawn(request())).collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.add_permits(1);
        first.await.unwrap();
        for other in others {
            other.await.unwrap();
        }
        // The first read, and one begun after the three came; not one each.
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // A request that comes after every read ended reads again.
        request().await;
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watched_run_under_way_is_caught_up_between_reads() {
        use std::sync::atomic::AtomicUsize;

        let cache = Arc::new(RunDetailsCache::default());
        let tasks = fan_out(20);
        let (first, later) = tasks.split_at(10);
        let mut run = weir_store::testsuite::run("e", "watched", 1);
        run.state = RuntimeState::Running;
        let read = |run: Run, tasks: Vec<Task>, version: i64| {
            move |after: Option<i64>| async move {
                let changes = weir_store::TaskChanges { version, complete: after.is_none(), tasks };
                Ok((run, "{}".to_string(), changes))
            }
        };
        cache.answer(&run.id, read(run.clone(), first.to_vec(), 1)).await.unwrap();

        // The catch-up reads what was written since version 1; the next request finds it
        // done and reads from version 2.
        let catch_ups = Arc::new(AtomicUsize::new(0));
        let keep_fresh = |later: Vec<Task>| {
            let catch_ups = catch_ups.clone();
            move |_id: String, after: i64| {
                let (catch_ups, later) = (catch_ups.clone(), later.clone());
                async move {
                    catch_ups.fetch_add(1, Ordering::SeqCst);
                    let tasks = if after < 2 { later } else { vec![] };
                    Ok(weir_store::TaskChanges { version: 2, complete: false, tasks })
                }
            }
        };
        cache.keep_fresh(keep_fresh(later.to_vec()));
        tokio::time::sleep(CATCH_UP_EVERY * 2).await;
        assert!(catch_ups.load(Ordering::SeqCst) >= 1);
        let asked = Arc::new(Mutex::new(None));
        let parts = cache
            .answer(&run.id, |after| {
                *asked.lock().unwrap() = after;
                read(run.clone(), vec![], 2)(after)
            })
            .await
            .unwrap();
        assert_eq!(*asked.lock().unwrap(), Some(2));
        let body = answered_run(&parts);
        assert_eq!(body["run_details"], expected(&tasks));

        // Nobody reads it: the task ends once the run is no longer watched.
        tokio::time::sleep(WATCHED_FOR + CATCH_UP_EVERY * 2).await;
        assert!(!cache.catching_up.load(Ordering::SeqCst));
        let before = catch_ups.load(Ordering::SeqCst);
        tokio::time::sleep(CATCH_UP_EVERY * 5).await;
        assert_eq!(catch_ups.load(Ordering::SeqCst), before);

        // A run that has ended is not caught up, however closely it is watched.
        run.state = RuntimeState::Succeeded;
        cache.answer(&run.id, read(run.clone(), vec![], 3)).await.unwrap();
        let ended = catch_ups.load(Ordering::SeqCst);
        cache.keep_fresh(keep_fresh(vec![]));
        tokio::time::sleep(CATCH_UP_EVERY * 5).await;
        assert_eq!(catch_ups.load(Ordering::SeqCst), ended);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_deleted_elsewhere_is_no_longer_caught_up() {
        use std::sync::atomic::AtomicUsize;

        let cache = Arc::new(RunDetailsCache::default());
        let mut run = weir_store::testsuite::run("e", "deleted", 1);
        run.state = RuntimeState::Running;
        let tasks = fan_out(2);
        let answer = |run: Run, tasks: Vec<Task>| {
            move |_after: Option<i64>| async move {
                Ok((run, "{}".to_string(), weir_store::TaskChanges { version: 1, complete: true, tasks }))
            }
        };
        cache.answer(&run.id, answer(run.clone(), tasks)).await.unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        cache.keep_fresh(move |id: String, _after: i64| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Err::<weir_store::TaskChanges, _>(weir_store::StoreError::not_found("run", &id))
            }
        });
        tokio::time::sleep(CATCH_UP_EVERY * 5).await;
        // One read found it gone; the entry went with it, and the task ended.
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(cache.entries.lock().unwrap().is_empty());
        assert!(!cache.catching_up.load(Ordering::SeqCst));
    }

    fn answered_run(parts: &[Bytes]) -> Value {
        serde_json::from_slice(&parts.concat()).unwrap()
    }
}
